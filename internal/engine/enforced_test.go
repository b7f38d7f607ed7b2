package engine

import (
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

// TestEnforcedJournaled: an alert whose exec the kernel decided about is
// journaled as action.enforced with the playbooks' steps; one the kernel
// did not act on (a protected container) is not.
func TestEnforcedJournaled(t *testing.T) {
	for _, tc := range []struct {
		outcome string
		want    bool
	}{
		{"signalled", true},
		{"dry_run", true},
		{"budget_exhausted", true},
		{"protected", false},
		{"", false},
	} {
		t.Run(tc.outcome, func(t *testing.T) {
			f := newFixture(t, Config{}, containPlaybook)
			f.start()
			a := shellAlert("3f9a1c2b7d4e")
			a.OutputFields["proc.exepath"] = "/bin/riposte-mark"
			if tc.outcome != "" {
				a.OutputFields[alert.FieldEnforceOutcome] = tc.outcome
				a.OutputFields[alert.FieldEnforceSignal] = "SIGKILL"
				a.OutputFields[alert.FieldEnforcePID] = int64(4242)
			}
			f.submit(a)
			es := f.waitFor("note", func(es []store.Entry) bool { return has(es, store.Note) }, store.Filter{AlertID: a.ID})
			if got := count(es, store.ActionEnforced); got != map[bool]int{true: 1, false: 0}[tc.want] {
				t.Fatalf("%d action.enforced entries, want enforced=%v:\n%s", got, tc.want, dump(es))
			}
			if !tc.want {
				return
			}
			for _, e := range es {
				if e.Type != store.ActionEnforced {
					continue
				}
				d := e.Detail
				if d["outcome"] != tc.outcome || d["signal"] != "SIGKILL" || d["pid"] != "4242" || d["exe"] != "/bin/riposte-mark" ||
					d["container"] != "3f9a1c2b7d4e" || e.Actor != "detector" || e.Action != "kernel.signal" {
					t.Fatalf("action.enforced entry %+v", e)
				}
			}
			if got := strings.Join(types(es), "|"); !strings.HasPrefix(got, "alert.received|action.enforced kernel.signal|playbook.matched") {
				t.Fatalf("journal order %s, want the enforcement right after the alert", got)
			}
		})
	}
}
