package kubernetes

import (
	"errors"
	"net"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/riposte-sec/riposte/internal/actions"
)

func TestAPIErrorMessages(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	cases := []struct {
		name      string
		err       error
		want      string
		retryable bool
		notFound  bool
	}{
		{"forbidden", apierrors.NewForbidden(pods, "web", errors.New("no")), `patch pods in namespace ns: forbidden: riposte's credentials lack verb "patch" on resource "pods"`, false, false},
		{"unauthorized", apierrors.NewUnauthorized("bad token"), "rejected riposte's credentials", false, false},
		{"not found", apierrors.NewNotFound(pods, "web"), "patch pods in namespace ns: not found", false, true},
		{"throttled", apierrors.NewTooManyRequests("slow down", 1), "patch pods in namespace ns", true, false},
		{"unavailable", apierrors.NewServiceUnavailable("etcd"), "patch pods in namespace ns", true, false},
		{"conflict", apierrors.NewConflict(pods, "web", errors.New("rv")), "patch pods in namespace ns", false, false},
		{"unreachable", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, "api server unreachable", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := apiError("patch", "pods", "ns", tc.err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want it to contain %q", err, tc.want)
			}
			if actions.IsRetryable(err) != tc.retryable {
				t.Fatalf("retryable %v, want %v", actions.IsRetryable(err), tc.retryable)
			}
			if errors.Is(err, actions.ErrNotFound) != tc.notFound {
				t.Fatalf("ErrNotFound %v, want %v", errors.Is(err, actions.ErrNotFound), tc.notFound)
			}
			if !errors.Is(err, tc.err) {
				t.Fatal("the API error is not wrapped")
			}
		})
	}
}
