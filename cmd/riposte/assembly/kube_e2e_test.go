package assembly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/evidence"
	"github.com/riposte-sec/riposte/internal/kubetest"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/responders/kubernetes"
)

func falcoPodAlertJSON(id, ns, pod string) string {
	b, _ := json.Marshal(map[string]any{
		"uuid": id, "time": time.Now().UTC().Format(time.RFC3339Nano),
		"rule": "Terminal shell in container", "priority": "Warning", "source": "syscall", "hostname": "node-1",
		"tags":   []string{"container", "shell"},
		"output": "A shell was spawned in a container with an attached terminal (shell=sh)",
		"output_fields": map[string]any{"container.id": "0123456789ab", "k8s.ns.name": ns, "k8s.pod.name": pod,
			"proc.cmdline": "sh -i", "user.name": "root"},
	})
	return string(b)
}

// TestE2EFalcoAlertIsolatesPod: a Falco alert with k8s.* fields posted to
// /v1/alerts collects the pod's evidence (a bundle that verifies against
// the journal's hash) and isolates that pod on a real API server (a NetworkPolicy that
// selects it and denies all), and an alert about a pod in a protected
// namespace is journaled as blocked and leaves the pod untouched.
func TestE2EFalcoAlertIsolatesPod(t *testing.T) {
	k := kubetest.Start(t)
	ns := k.Namespace(t, "payments", nil)
	k.Pod(t, ns, "api-7d9f", map[string]string{"app": "api"})
	guarded := k.Namespace(t, "infra", map[string]string{"riposte.protect": "true"})
	k.Pod(t, guarded, "db-0", nil)

	dir := t.TempDir()
	pbPath := filepath.Join(dir, "playbooks.yaml")
	pb := fmt.Sprintf(`
- playbook: k8s-shell
  match:
    rules: ["Terminal shell in container"]
    when: 'fields["k8s.ns.name"] in [%q, %q]'
  actions:
    - do: pod.evidence
    - do: pod.isolate
      with: {allow_namespaces: [kube-system]}
`, ns, guarded)
	if err := os.WriteFile(pbPath, []byte(pb), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf("playbooks: [%q]\nengine: {poll: 20ms}\nkubernetes:\n  kubeconfig: %q\n  timeout: 10s\n",
		pbPath, k.Kubeconfig(t, k.AdminConfig()))
	cfg, err := config.Parse(filepath.Join(dir, "riposte.yaml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = filepath.Join(dir, "data")
	cfg.Listen = "127.0.0.1:0"
	s := serveApp(t, cfg)

	s.postAlert(t, falcoPodAlertJSON("k8s-e2e-1", ns, "api-7d9f"))
	s.postAlert(t, falcoPodAlertJSON("k8s-e2e-2", guarded, "db-0"))

	c := k.Client()
	ctx := context.Background()
	var done []store.Entry
	waitUntil(t, "pod.isolate to succeed", 20*time.Second, func() bool {
		done = journal(t, s.app, store.Filter{AlertID: "k8s-e2e-1", Types: []store.EntryType{store.ActionSucceeded, store.ActionFailed}})
		return len(done) > 0
	})
	waitUntil(t, "pod.evidence and pod.isolate to succeed", 20*time.Second, func() bool {
		done = journal(t, s.app, store.Filter{AlertID: "k8s-e2e-1", Types: []store.EntryType{store.ActionSucceeded, store.ActionFailed}})
		return len(done) > 1
	})
	// The evidence bundle verifies, and its manifest's hash is the journal's.
	if done[0].Type != store.ActionSucceeded || done[0].Action != "pod.evidence" || done[0].SHA256 == "" {
		t.Fatalf("journal: %+v", done[0])
	}
	bundle, _ := done[0].Detail["dir"].(string)
	if sum, err := evidence.Verify(bundle); err != nil || sum != done[0].SHA256 {
		t.Fatalf("evidence bundle %q: verify %s %v, journal says %s", bundle, sum, err, done[0].SHA256)
	}
	if rel, err := filepath.Rel(cfg.Data, bundle); err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("evidence bundle %s is not under the data directory %s", bundle, cfg.Data)
	}
	done = done[1:]
	if done[0].Type != store.ActionSucceeded || done[0].Action != "pod.isolate" {
		t.Fatalf("journal: %+v", done[0])
	}
	pod, err := c.CoreV1().Pods(ns).Get(ctx, "api-7d9f", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	polName, _ := done[0].Detail["policy"].(string)
	pol, err := c.NetworkingV1().NetworkPolicies(ns).Get(ctx, polName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("policy %q from the journal: %v", polName, err)
	}
	if done[0].Detail["policy_uid"] != string(pol.UID) {
		t.Fatalf("journal policy_uid %v, server %s", done[0].Detail["policy_uid"], pol.UID)
	}
	sel, err := metav1.LabelSelectorAsSelector(&pol.Spec.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	if sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
		t.Fatalf("policy selector %s does not select the pod (labels %v)", sel, pod.Labels)
	}
	if len(pol.Spec.PolicyTypes) != 2 || len(pol.Spec.Egress) != 1 || len(pol.Spec.Egress[0].To) != 1 || pol.Spec.Egress[0].To[0].NamespaceSelector == nil {
		t.Fatalf("policy %+v: want ingress and egress denied but for kube-system", pol.Spec)
	}

	var blocked []store.Entry
	waitUntil(t, "pod.isolate to be refused", 20*time.Second, func() bool {
		blocked = journal(t, s.app, store.Filter{AlertID: "k8s-e2e-2", Types: []store.EntryType{store.ActionBlockedProtected, store.ActionSucceeded, store.ActionFailed}})
		return len(blocked) > 0
	})
	if blocked[0].Type != store.ActionBlockedProtected {
		t.Fatalf("protected pod: journal %+v", blocked[0])
	}
	db, err := c.CoreV1().Pods(guarded).Get(ctx, "db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := db.Labels[kubernetes.DefaultQuarantineLabel]; ok {
		t.Fatalf("protected pod labelled: %v", db.Labels)
	}
	pols, err := c.NetworkingV1().NetworkPolicies(guarded).List(ctx, metav1.ListOptions{})
	if err != nil || len(pols.Items) != 0 {
		t.Fatalf("policies in the protected namespace: %d (err %v)", len(pols.Items), err)
	}
}

// TestActPodDirectlyAndThroughServer: `riposte act` on a pod runs the
// action itself when no server holds the data directory, and goes through
// the running server (journaled with the operator as actor) when one does;
// a protected pod is refused either way.
func TestActPodDirectlyAndThroughServer(t *testing.T) {
	k := kubetest.Start(t)
	ns := k.Namespace(t, "act", nil)
	k.Pod(t, ns, "web", nil)
	k.Pod(t, ns, "db", map[string]string{"riposte.protect": "true"})
	dir := t.TempDir()
	pbPath := filepath.Join(dir, "playbooks.yaml")
	if err := os.WriteFile(pbPath, []byte("- playbook: none\n  match: {rules: [nothing]}\n  actions: [{do: journal.note, with: {text: x}}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RIPOSTE_E2E_TOKEN", e2eToken)
	yml := fmt.Sprintf("playbooks: [%q]\nauth: {token_env: RIPOSTE_E2E_TOKEN}\nengine: {poll: 20ms}\nkubernetes:\n  kubeconfig: %q\n",
		pbPath, k.Kubeconfig(t, k.AdminConfig()))
	cfg, err := config.Parse(filepath.Join(dir, "riposte.yaml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = filepath.Join(dir, "data")
	cfg.Listen = "127.0.0.1:0"
	c := k.Client()
	ctx := context.Background()

	res, how, err := Act(ctx, cfg, ActRequest{Action: "pod.label", With: map[string]any{"pod": ns + "/web", "labels": "suspect=true"}})
	if err != nil || !strings.HasPrefix(how, "directly") {
		t.Fatalf("act directly: %v (%s)", err, how)
	}
	if pod, err := c.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil || pod.Labels["suspect"] != "true" {
		t.Fatalf("pod.label did not label: %v %v (result %+v)", pod.Labels, err, res)
	}

	// A dry run is journaled and changes nothing in the cluster.
	before, _ := c.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	res, _, err = Act(ctx, cfg, ActRequest{Action: "pod.isolate", With: map[string]any{"pod": ns + "/web"}, DryRun: true})
	after, _ := c.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	pols, _ := c.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
	if err != nil || res.Note != "dry run: nothing executed" || after.ResourceVersion != before.ResourceVersion || len(pols.Items) != 0 {
		t.Fatalf("dry run: %v %q; pod rv %s → %s, %d policies", err, res.Note, before.ResourceVersion, after.ResourceVersion, len(pols.Items))
	}

	s := serveApp(t, cfg)
	res, how, err = Act(ctx, cfg, ActRequest{Action: "pod.isolate", With: map[string]any{"pod": ns + "/web"}})
	if err != nil || !strings.HasPrefix(how, "via the running server") {
		t.Fatalf("act through the server: %v (%s)", err, how)
	}
	pod, err := c.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || pod.Labels[kubernetes.DefaultQuarantineLabel] == "" || res.Detail["pod"] != "web" {
		t.Fatalf("pod.isolate through the server: labels %v err %v result %+v", pod.Labels, err, res)
	}
	done := journal(t, s.app, store.Filter{Types: []store.EntryType{store.ActionSucceeded}})
	last := done[len(done)-1]
	if want := "cli:" + OSUser() + " via socket"; last.Action != "pod.isolate" || last.Actor != want || last.Detail["namespace"] != ns || last.Detail["pod"] != "web" {
		t.Fatalf("journal: %+v, want pod.isolate by %s naming %s/web", last, want, ns)
	}

	_, _, err = Act(ctx, cfg, ActRequest{Action: "pod.isolate", With: map[string]any{"pod": ns + "/db"}})
	if !errors.Is(err, ErrProtected) {
		t.Fatalf("act on a protected pod: %v, want ErrProtected", err)
	}
	if db, err := c.CoreV1().Pods(ns).Get(ctx, "db", metav1.GetOptions{}); err != nil || db.Labels[kubernetes.DefaultQuarantineLabel] != "" {
		t.Fatalf("protected pod labelled: %v %v", db.Labels, err)
	}
}
