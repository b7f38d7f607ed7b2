package detector

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/detector/enforce"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/internal/alert"
)

// TestStaleAlert: a kernel decision whose exec event was lost becomes the
// enforced rule's alert from the record alone, saying what was done.
func TestStaleAlert(t *testing.T) {
	dir := t.TempDir()
	rule := "- rule: Marker\n  desc: d\n  condition: evt.type == \"exec\" and container.id != \"host\" and proc.name == \"riposte-mark\"\n" +
		"  output: marker ran (proc=%proc.name exe=%proc.exepath)\n  priority: Critical\n  enforce: sigkill\n"
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Rules: []string{dir}, Hostname: "node-1"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	p := newPipeline(d, func(alert.Alert) {})
	entries := []enforce.Entry{{Rule: "Marker", Signal: rules.SigKill, Names: []string{"riposte-mark"}}}
	rec := enforce.Record{Rule: 0, PID: 4242, Signal: rules.SigKill, Outcome: enforce.Signalled, Comm: "riposte-mark",
		Path: "/bin/riposte-mark", BootNanos: 1}
	a, ok := p.staleAlert(context.Background(), rec, entries, event.HostID)
	if !ok {
		t.Fatal("no alert for the record")
	}
	if a.Rule != "Marker" || a.Field(alert.FieldEnforceOutcome) != "signalled" || a.Field(alert.FieldEnforcePID) != "4242" ||
		a.Field("proc.exepath") != "/bin/riposte-mark" || !a.KernelEnforced() ||
		!strings.Contains(a.Output, "enforced: signal SIGKILL sent to pid 4242 exe /bin/riposte-mark") ||
		!strings.Contains(a.Output, "the exec event was lost") || a.ID != alert.DeterministicID(a) {
		t.Fatalf("alert %+v", a)
	}
	rec.Rule = 3
	if _, ok := p.staleAlert(context.Background(), rec, entries, event.HostID); ok {
		t.Fatal("an alert for a rule index the table does not have")
	}
}

// TestApplyRecord: each kernel outcome reads in the alert's fields and
// output as what happened.
func TestApplyRecord(t *testing.T) {
	for _, tc := range []struct {
		outcome enforce.Outcome
		err     int32
		output  string
		reason  string
	}{
		{enforce.Signalled, 0, "(enforced: signal SIGKILL sent to pid 7 exe /bin/x)", ""},
		{enforce.WouldSignal, 0, "(dry run: signal SIGKILL would have been sent to pid 7 exe /bin/x)", ""},
		{enforce.BudgetExhausted, 0, "(not enforced: the signal budget is spent, pid 7 exe /bin/x runs)", "budget spent"},
		{enforce.Failed, -3, "(enforcement failed: signal SIGKILL to pid 7 exe /bin/x: error -3)", "bpf_send_signal returned -3"},
	} {
		t.Run(string(tc.outcome), func(t *testing.T) {
			a := alert.Alert{Output: "x ran", OutputFields: map[string]any{}}
			applyRecord(&a, enforce.Record{PID: 7, Signal: rules.SigKill, Outcome: tc.outcome, Err: tc.err, Path: "/bin/x"})
			if a.Output != "x ran "+tc.output || a.Field(alert.FieldEnforceOutcome) != string(tc.outcome) ||
				a.Field(alert.FieldEnforceSignal) != "SIGKILL" || a.Field(alert.FieldEnforcePID) != "7" ||
				a.Field(alert.FieldEnforceReason) != tc.reason || !a.KernelEnforced() {
				t.Fatalf("alert output %q fields %v", a.Output, a.OutputFields)
			}
		})
	}
}
