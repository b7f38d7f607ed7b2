package kubetest

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestServerRunsWithRBAC(t *testing.T) {
	s := Start(t)
	ns := s.Namespace(t, "kubetest", nil)
	p := s.Pod(t, ns, "web", map[string]string{"app": "web"})
	if p.UID == "" {
		t.Fatal("pod created without a uid")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The kubeconfig file works like kubectl's.
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig(t, s.AdminConfig()))
	if err != nil {
		t.Fatal(err)
	}
	admin := kubernetes.NewForConfigOrDie(cfg)
	got, err := admin.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || got.UID != p.UID {
		t.Fatalf("get pod through kubeconfig: %v (uid %q, want %q)", err, got.UID, p.UID)
	}

	// RBAC is on: the limited user may not read pods.
	limited := kubernetes.NewForConfigOrDie(s.LimitedConfig())
	_, err = limited.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if err == nil {
		t.Fatal("limited user read a pod; RBAC is off")
	}
}

// TestKwokRunsPods: kwok makes a node Ready and a pod bound to it Running
// and Ready, and removes a deleted pod as a kubelet would.
func TestKwokRunsPods(t *testing.T) {
	s := Start(t)
	ns := s.Namespace(t, "kwok", nil)
	s.KwokNode(t, "kwok-"+ns, nil)
	p := s.ScheduledPod(t, ns, "web", "kwok-"+ns, nil)
	pods := s.Client().CoreV1().Pods(ns)
	err := s.waitFor(30*time.Second, func(ctx context.Context) (bool, error) {
		got, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
		return err == nil && got.Status.Phase == corev1.PodRunning && PodReady(got), err
	})
	if err != nil {
		t.Fatalf("pod never Running and Ready: %v", err)
	}
	if err := pods.Delete(tctx(t), p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = s.waitFor(30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("deleted pod never removed: %v", err)
	}
}
