package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/riposte-sec/riposte/internal/testutil"
)

// KwokAnnotation marks the nodes kwok manages.
const KwokAnnotation = "kwok.x-k8s.io/node"

// kwokStages are the kwok stage files used, from its kustomize/stage
// folder: nodes go Ready and keep a heartbeat, pods on them go Running and
// Ready, deleted pods are removed (there is no kubelet to do it).
var kwokStages = []string{
	"node/fast/node-initialize.yaml",
	"node/heartbeat/node-heartbeat.yaml",
	"pod/fast/pod-ready.yaml",
	"pod/fast/pod-complete.yaml",
	"pod/fast/pod-delete.yaml",
}

// RequireKwok skips t locally, or fails it in CI, when kwok is missing.
func RequireKwok(t testing.TB) {
	t.Helper()
	Require(t)
	for _, p := range []string{filepath.Join(BinDir(), "kwok"), filepath.Join(BinDir(), "kwok-stage")} {
		if _, err := os.Stat(p); err != nil {
			testutil.SkipOrFail(t, fmt.Sprintf("kubernetes integration test needs kwok (run scripts/kube-bins.sh): %v", err))
		}
	}
}

// startKwok runs kwok against the server, once, managing the nodes that
// carry KwokAnnotation=fake. Stop ends it with the rest.
func (s *Server) startKwok() error {
	s.kwokOnce.Do(func() {
		kc := clientcmdapi.NewConfig()
		kc.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: s.URL, CertificateAuthorityData: s.ca}
		kc.AuthInfos["kubetest"] = &clientcmdapi.AuthInfo{Token: s.adminToken}
		kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "kubetest"}
		kc.CurrentContext = "kubetest"
		path := filepath.Join(s.dir, "kwok.kubeconfig")
		if err := clientcmd.WriteToFile(*kc, path); err != nil {
			s.kwokErr = fmt.Errorf("write kwok kubeconfig: %w", err)
			return
		}
		args := []string{"--kubeconfig=" + path, "--manage-all-nodes=false",
			"--manage-nodes-with-annotation-selector=" + KwokAnnotation + "=fake", "--cidr=10.244.0.0/16", "--node-ip=10.0.0.1"}
		for _, st := range kwokStages {
			args = append(args, "--config="+filepath.Join(BinDir(), "kwok-stage", st))
		}
		s.kwokErr = s.spawn("kwok", filepath.Join(BinDir(), "kwok"), args...)
	})
	return s.kwokErr
}

// KwokNode creates a node that kwok manages and waits until kwok reports
// it Ready; it is deleted when t ends. Pods given its name in
// spec.nodeName go Running and Ready.
func (s *Server) KwokNode(t testing.TB, name string, labels map[string]string) *corev1.Node {
	t.Helper()
	RequireKwok(t)
	if err := s.startKwok(); err != nil {
		t.Fatalf("start kwok: %v", err)
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels,
		Annotations: map[string]string{KwokAnnotation: "fake"}}}
	if _, err := s.client.CoreV1().Nodes().Create(tctx(t), n, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	})
	var out *corev1.Node
	err := s.waitFor(30*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		out, err = s.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		return err == nil && condition(out.Status.Conditions, corev1.NodeReady), err
	})
	if err != nil {
		t.Fatalf("node %s never Ready under kwok: %v\n%s", name, err, tail(s.logs[len(s.logs)-1]))
	}
	return out
}

// PodReady reports whether the pod's Ready condition is true.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func condition(cs []corev1.NodeCondition, typ corev1.NodeConditionType) bool {
	for _, c := range cs {
		if c.Type == typ {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitFor polls cond (a question to the API server) until it holds or
// timeout passes.
func (s *Server) waitFor(timeout time.Duration, cond func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("not so after %s", timeout), last)
		case <-tick.C:
		}
	}
}
