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
