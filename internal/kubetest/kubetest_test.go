package kubetest

import (
	"context"
	"testing"
	"time"

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
