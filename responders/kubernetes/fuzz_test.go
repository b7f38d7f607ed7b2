package kubernetes

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
)

// FuzzTarget: alert fields and the pod parameter come from outside; target
// and keyValues never panic, and what they accept is a valid reference or
// label set.
func FuzzTarget(f *testing.F) {
	for _, s := range [][3]string{
		{"payments", "api-7d9f", ""}, {"", "", "ns/name"}, {"a", "b", "x/y/z"}, {"Bad", "../..", "/"},
		{"kube-system", "coredns-1", "default/"}, {"n", "p", "riposte.io/x=1"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, ns, pod, param string) {
		req := actions.Request{Alert: alert.Alert{OutputFields: map[string]any{"k8s.ns.name": ns, "k8s.pod.name": pod}}}
		if param != "" {
			req.Params = actions.Params{"pod": param}
		}
		ref, err := target(req)
		if err == nil {
			if len(validation.IsDNS1123Label(ref.ns)) > 0 || len(validation.IsDNS1123Subdomain(ref.name)) > 0 {
				t.Fatalf("accepted invalid ref %q", ref)
			}
		}
		kv, err := keyValues(actions.Params{"labels": []any{param, ns + "=" + pod}}, "labels", true)
		if err != nil {
			return
		}
		for k, v := range kv {
			if len(validation.IsQualifiedName(k)) > 0 || strings.HasPrefix(k, "riposte.io/") {
				t.Fatalf("accepted bad key %q", k)
			}
			if s, ok := v.(string); ok && len(validation.IsValidLabelValue(s)) > 0 {
				t.Fatalf("accepted bad value %q", s)
			}
		}
	})
}
