package playbooks

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/alert"
)

var update = flag.Bool("update", false, "rewrite golden files")

func mustParse(t testing.TB, yml string) *Set {
	t.Helper()
	set, err := Parse(integrations.Catalog(), Source{Name: "test.yaml", Data: []byte(yml)})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func testAlert(rule string, p alert.Priority, fields map[string]any, tags ...string) *alert.Alert {
	if fields == nil {
		fields = map[string]any{}
	}
	return &alert.Alert{ID: "a1", Rule: rule, Priority: p, Source: "syscall", Tags: tags, OutputFields: fields,
		Time: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC), Hostname: "node-1", Output: "out"}
}

func names(plans []Plan) string {
	var n []string
	for _, p := range plans {
		n = append(n, p.Playbook.Name)
	}
	return strings.Join(n, ",")
}

func TestMatchCriteria(t *testing.T) {
	set := mustParse(t, `
- playbook: exact
  match: {rules: ["Terminal shell in container"]}
  actions: [{do: container.pause}]
- playbook: glob
  match: {rules: ["Shell spawned *", "Read sensitive file*"]}
  actions: [{do: container.pause}]
- playbook: warning-up
  match: {priority: ">=warning"}
  actions: [{do: container.pause}]
- playbook: below-error
  match: {priority: "<error"}
  actions: [{do: container.pause}]
- playbook: exactly-notice
  match: {priority: notice}
  actions: [{do: container.pause}]
- playbook: tagged
  match: {tags: [container, shell]}
  actions: [{do: container.pause}]
- playbook: k8s
  match: {sources: [k8s_audit]}
  actions: [{do: container.pause}]
- playbook: staging
  match: {when: 'fields["container.image.repository"] startsWith "staging/" && priority >= Notice'}
  actions: [{do: container.pause}]
`)
	tests := []struct {
		name string
		a    *alert.Alert
		want string
	}{
		{"exact rule, notice", testAlert("Terminal shell in container", alert.PriorityNotice, nil), "exact,below-error,exactly-notice"},
		{"glob rule, warning", testAlert("Shell spawned by python", alert.PriorityWarning, nil), "glob,warning-up,below-error"},
		{"glob prefix", testAlert("Read sensitive file untrusted", alert.PriorityCritical, nil), "glob,warning-up"},
		{"tags all present", testAlert("x", alert.PriorityError, nil, "shell", "container", "mitre"), "warning-up,tagged"},
		{"one tag missing", testAlert("x", alert.PriorityError, nil, "shell"), "warning-up"},
		{"when on fields", testAlert("x", alert.PriorityDebug, map[string]any{"container.image.repository": "staging/api"}), "below-error"},
		{"when true", testAlert("x", alert.PriorityNotice, map[string]any{"container.image.repository": "staging/api"}), "below-error,exactly-notice,staging"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := names(set.Match(tt.a)); got != tt.want {
				t.Errorf("Match = %s, want %s", got, tt.want)
			}
			// Explain agrees with the indexed path.
			m, _ := set.Explain(tt.a)
			if got := names(m); got != tt.want {
				t.Errorf("Explain = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestOrderAndContinue(t *testing.T) {
	set := mustParse(t, `
- playbook: late
  order: 50
  actions: [{do: container.pause}]
- playbook: first-in-file
  order: 10
  actions: [{do: container.pause}]
- playbook: stopper
  order: 10
  match: {rules: [R]}
  continue: false
  actions: [{do: container.pause}]
- playbook: default-order
  actions: [{do: container.pause}]
`)
	if got := names(set.Match(testAlert("other", alert.PriorityNotice, nil))); got != "default-order,first-in-file,late" {
		t.Errorf("order: %s", got)
	}
	if got := names(set.Match(testAlert("R", alert.PriorityNotice, nil))); got != "default-order,first-in-file,stopper" {
		t.Errorf("continue: false: %s", got)
	}
	_, skipped := set.Explain(testAlert("R", alert.PriorityNotice, nil))
	if len(skipped) != 1 || skipped[0].Playbook.Name != "late" || skipped[0].Reason != `playbook "stopper" matched first with continue: false` {
		t.Errorf("skipped = %+v", skipped)
	}
}

func TestSkipReasons(t *testing.T) {
	set := mustParse(t, `
- playbook: rules
  match: {rules: ["A", "B*"]}
  actions: [{do: container.pause}]
- playbook: ge
  match: {priority: ">=Warning"}
  actions: [{do: container.pause}]
- playbook: gt
  match: {priority: ">notice"}
  actions: [{do: container.pause}]
- playbook: le
  match: {priority: "<=debug"}
  actions: [{do: container.pause}]
- playbook: lt
  match: {priority: "<Notice"}
  actions: [{do: container.pause}]
- playbook: eq
  match: {priority: "=error"}
  actions: [{do: container.pause}]
- playbook: tag
  match: {tags: [k8s]}
  actions: [{do: container.pause}]
- playbook: src
  match: {sources: [k8s_audit, aws_cloudtrail]}
  actions: [{do: container.pause}]
- playbook: when
  match: {when: 'hostname == "other"'}
  actions: [{do: container.pause}]
- playbook: when-error
  match: {when: 'fields["n"] > 3'}
  actions: [{do: container.pause}]
`)
	_, skipped := set.Explain(testAlert("C", alert.PriorityNotice, map[string]any{"n": "text"}))
	want := map[string]string{
		"rules": `rule "C" not in ["A", "B*"]`,
		"ge":    "priority Notice < Warning",
		"gt":    "priority Notice <= Notice",
		"le":    "priority Notice > Debug",
		"lt":    "priority Notice >= Notice",
		"eq":    "priority Notice != Error",
		"tag":   `tag "k8s" missing`,
		"src":   `source "syscall" not in ["k8s_audit", "aws_cloudtrail"]`,
		"when":  "when was false",
	}
	got := map[string]string{}
	for _, s := range skipped {
		got[s.Playbook.Name] = s.Reason
	}
	for name, reason := range want {
		if got[name] != reason {
			t.Errorf("%s: reason %q, want %q", name, got[name], reason)
		}
	}
	if r := got["when-error"]; !strings.HasPrefix(r, "when failed: ") {
		t.Errorf("when-error: reason %q, want a 'when failed:' reason", r)
	}
}

func TestPlanRendersAndEvaluates(t *testing.T) {
	set := mustParse(t, `
- playbook: p
  actions:
    - do: slack.notify
      with: {channel: "#ir", text: '{{ .Rule }} in {{ .Field "container.name" }} ({{ .Priority }}) {{ .Field "absent" }}|'}
    - do: pagerduty.trigger
      if: 'priority >= Critical'
    - do: container.stop
      with: {grace: '{{ .Field "grace" }}'}
    - do: capture.start
      with: {duration: 30s, network: false}
`)
	a := testAlert("Terminal shell in container", alert.PriorityError, map[string]any{"container.name": "web", "grace": "soon"})
	plans := set.Match(a)
	if len(plans) != 1 || len(plans[0].Actions) != 4 {
		t.Fatalf("plans = %+v", plans)
	}
	acts := plans[0].Actions
	if got := acts[0].With["text"]; got != "Terminal shell in container in web (Error) |" {
		t.Errorf("rendered text = %q", got)
	}
	if acts[0].With["channel"] != "#ir" || acts[0].Skip != "" || acts[0].Err != nil {
		t.Errorf("action 0 = %+v", acts[0])
	}
	if acts[1].Skip != "if was false" {
		t.Errorf("pagerduty skip = %q", acts[1].Skip)
	}
	if acts[2].Err == nil || acts[2].Err.Error() != `with.grace rendered to "soon": want a duration such as 30s or 5m, got "soon"` {
		t.Errorf("stop err = %v", acts[2].Err)
	}
	if acts[3].With["duration"] != "30s" || acts[3].With["network"] != false {
		t.Errorf("capture with = %#v", acts[3].With)
	}
	a.Priority = alert.PriorityCritical
	if s := set.Match(a)[0].Actions[1].Skip; s != "" {
		t.Errorf("pagerduty skipped at Critical: %q", s)
	}
}

// TestGoldenReports runs every example alert through the example playbooks
// and compares both outputs of `playbook test` with testdata/golden.
func TestGoldenReports(t *testing.T) {
	set, err := Load(integrations.Catalog(), "../examples/playbooks")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../examples/alerts/*")
	for _, f := range files {
		base := filepath.Base(f)
		if strings.HasPrefix(base, "bad-") {
			continue
		}
		t.Run(base, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			alerts, err := alert.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			var text, js strings.Builder
			for _, a := range alerts {
				r := set.Test(a)
				if err := r.WriteText(&text); err != nil {
					t.Fatal(err)
				}
				if err := r.WriteJSON(&js); err != nil {
					t.Fatal(err)
				}
			}
			stem := strings.TrimSuffix(base, filepath.Ext(base))
			golden(t, filepath.Join("testdata", "golden", stem+".txt"), text.String())
			golden(t, filepath.Join("testdata", "golden", stem+".json"), js.String())
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update): %v", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test ./playbooks -run Golden -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// benchSet builds n playbooks, each naming its own exact rule, plus a few
// glob and catch-all playbooks, like a large real deployment.
func benchSet(b *testing.B, n int) *Set {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, `
- playbook: p%d
  match:
    rules: ["Rule number %d"]
    priority: ">=notice"
    when: 'container.image startsWith "staging/"'
  actions:
    - do: slack.notify
      with: {channel: "#ir", text: '{{ .Rule }} in {{ .Field "container.name" }}'}
    - do: container.pause
`, i, i)
	}
	sb.WriteString(`
- playbook: globbed
  match: {rules: ["Shell spawned *"]}
  actions: [{do: container.pause}]
- playbook: catch-all
  order: 100
  match: {priority: ">=critical"}
  actions: [{do: journal.note, with: {text: "{{ .Rule }}"}}]
`)
	set, err := Parse(integrations.Catalog(), Source{Name: "bench.yaml", Data: []byte(sb.String())})
	if err != nil {
		b.Fatal(err)
	}
	return set
}

// BenchmarkSelect: matching an alert against 10, 100 and 1,000 playbooks
// (rule index, priority, `when` expression). Target: ≤ 2 µs/alert at 1,000.
func BenchmarkSelect(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		set := benchSet(b, n)
		a := testAlert(fmt.Sprintf("Rule number %d", n/2), alert.PriorityWarning,
			map[string]any{"container.name": "api", "container.image.repository": "staging/api"})
		b.Run(fmt.Sprintf("playbooks=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if books := set.Select(a); len(books) != 1 {
					b.Fatalf("matched %d", len(books))
				}
			}
		})
	}
}

// BenchmarkMatch: matching plus planning (templates rendered, `if`
// evaluated) against 10, 100 and 1,000 playbooks.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		set := benchSet(b, n)
		a := testAlert(fmt.Sprintf("Rule number %d", n/2), alert.PriorityWarning,
			map[string]any{"container.name": "api", "container.image.repository": "staging/api"})
		b.Run(fmt.Sprintf("playbooks=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				plans := set.Match(a)
				if len(plans) != 1 {
					b.Fatalf("matched %d", len(plans))
				}
			}
		})
		b.Run(fmt.Sprintf("playbooks=%d/no-match", n), func(b *testing.B) {
			miss := testAlert("Unrelated rule", alert.PriorityWarning, nil)
			b.ReportAllocs()
			for b.Loop() {
				if plans := set.Match(miss); len(plans) != 0 {
					b.Fatalf("matched %d", len(plans))
				}
			}
		})
	}
}
