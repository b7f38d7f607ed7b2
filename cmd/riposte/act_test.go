package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/internal/evidence"
	"github.com/riposte-sec/riposte/internal/kubetest"
)

func TestActPodFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no pod", []string{"act", "pod.isolate"}, "pod.isolate needs --pod NAMESPACE/NAME"},
		{"no namespace", []string{"act", "pod.isolate", "--pod", "web"}, `--pod: want NAMESPACE/NAME, got "web"`},
		{"bad namespace", []string{"act", "node.cordon", "--pod", "Pay_ments/web"}, `--pod: bad namespace "Pay_ments"`},
		{"pod on a container action", []string{"act", "container.pause", "--container", "web", "--pod", "a/b"}, "--pod: container.pause does not act on a pod"},
		{"no node", []string{"act", "node.uncordon"}, "node.uncordon needs --pod NAMESPACE/NAME or --node NAME"},
		{"node on a pod action", []string{"act", "pod.isolate", "--pod", "a/b", "--node", "n1"}, "--node: pod.isolate does not act on a node"},
		{"two pods", []string{"act", "pod.label", "--pod", "a/b", "--with", "pod=a/c"}, "--pod a/b and --with pod=a/c name different pods"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errText, code := run(t, "", tt.args...)
			if code != exitBadInput || !strings.Contains(errText, tt.want) {
				t.Fatalf("exit %d error %q, want %d with %q", code, errText, exitBadInput, tt.want)
			}
		})
	}
}

// TestActPodEvidence runs `riposte act pod.evidence --pod NS/NAME` against
// a real API server: the output names the pod and the bundle's manifest
// hash, and the bundle verifies; then `act node.cordon --node NAME`.
func TestActPodEvidence(t *testing.T) {
	k := kubetest.Start(t)
	ns := k.Namespace(t, "cli", nil)
	k.Pod(t, ns, "web", nil)
	dir := t.TempDir()
	pb := filepath.Join(dir, "playbooks.yaml")
	if err := os.WriteFile(pb, []byte("- playbook: none\n  match: {rules: [nothing]}\n  actions: [{do: journal.note, with: {text: x}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "riposte.yaml")
	yml := fmt.Sprintf("data: %q\nplaybooks: [%q]\nkubernetes:\n  kubeconfig: %q\n", filepath.Join(dir, "data"), pb, k.Kubeconfig(t, k.AdminConfig()))
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errText, code := run(t, "", "act", "pod.evidence", "--pod", ns+"/web", "--incident", "inc-cli", "--config", cfgPath)
	if code != exitOK {
		t.Fatalf("exit %d: %s\n%s", code, errText, out)
	}
	if !strings.HasPrefix(out, "pod.evidence "+ns+"/web: evidence: ") {
		t.Fatalf("output does not name the pod:\n%s", out)
	}
	m := regexp.MustCompile(`(?m)^  sha256 ([0-9a-f]{64})$`).FindStringSubmatch(out)
	bundles, _ := filepath.Glob(filepath.Join(dir, "data", "evidence", "inc-cli", ns+"_web", "*"))
	if m == nil || len(bundles) != 1 {
		t.Fatalf("no manifest hash in the output or not one bundle (%v):\n%s", bundles, out)
	}
	if sum, err := evidence.Verify(bundles[0]); err != nil || sum != m[1] {
		t.Fatalf("bundle verify %s %v, output says %s", sum, err, m[1])
	}

	// A node by name, no pod needed.
	node := "n-" + ns
	k.Node(t, node, false)
	out, errText, code = run(t, "", "act", "node.cordon", "--node", node, "--config", cfgPath)
	if code != exitOK || !strings.HasPrefix(out, "node.cordon "+node+": node cordoned") {
		t.Fatalf("act node.cordon --node: exit %d %s\n%s", code, errText, out)
	}
}

func TestCINamespaceFlag(t *testing.T) {
	_, errText, code := run(t, "", "ci", "--data", t.TempDir(), "--namespace", "Bad_NS", "--", "true")
	if code != exitBadInput || !strings.Contains(errText, `--namespace "Bad_NS": not a namespace name`) {
		t.Fatalf("exit %d error %q", code, errText)
	}
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, errText, code = run(t, "", "ci", "--data", t.TempDir(), "--namespace", "staging", "--", "true")
	if code != exitBadInput || !strings.Contains(errText, "load kubeconfig") {
		t.Fatalf("without a kubeconfig: exit %d error %q", code, errText)
	}
}
