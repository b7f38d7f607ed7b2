package kubernetes

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/kubetest"
)

// One control plane for the package's tests: starting one takes ~5 s.
var shared struct {
	once sync.Once
	srv  *kubetest.Server
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

func cluster(t testing.TB) *kubetest.Server {
	t.Helper()
	kubetest.Require(t)
	shared.once.Do(func() {
		if shared.dir, shared.err = os.MkdirTemp("", "riposte-kube-"); shared.err != nil {
			return
		}
		shared.srv, shared.err = kubetest.New(shared.dir)
	})
	if shared.err != nil {
		t.Fatalf("start kubernetes control plane: %v", shared.err)
	}
	return shared.srv
}

func newResponder(t *testing.T, s *kubetest.Server, cfg Config) *Responder {
	t.Helper()
	r, err := New(cfg, Deps{REST: s.AdminConfig()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

// falco returns an alert about pod ns/name, as Falco sends it.
func falco(ns, name string) alert.Alert {
	return alert.Alert{ID: fmt.Sprintf("a-%s-%s", ns, name), Time: time.Now(), Rule: "Terminal shell in container",
		Priority: alert.PriorityNotice, OutputFields: map[string]any{"k8s.ns.name": ns, "k8s.pod.name": name, "container.id": "abcdef012345"}}
}

func run(t *testing.T, r *Responder, action string, a alert.Alert, params actions.Params) (actions.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.Run(ctx, actions.Request{Action: action, Alert: a, Params: params, Incident: "inc-1", Actor: "test"})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

var get = metav1.GetOptions{}
