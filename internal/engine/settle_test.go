package engine

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// TestSettledAtAccept: in dry run, an alert enforced by the kernel and
// muted by a silence is processed by Accept itself: when Accept returns,
// the journal holds, in this order and nothing between, its alert.received,
// the incident it opened, action.enforced, alert.silenced and the plan, all
// naming the incident the store opened; the alert is done, no worker ran,
// and the journal verifies. A second alert of the same container and rule
// joins the incident; a duplicate is journaled as one and settles nothing.
func TestSettledAtAccept(t *testing.T) {
	f := newFixture(t, Config{DryRun: true}, notifyAndContain)
	ctx := context.Background()
	sil, err := silence.Add(ctx, f.st, store.Silence{Matcher: store.SilenceMatcher{Rules: []string{"Terminal shell*"}}, Scope: store.ScopeNotify,
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour), CreatedBy: "op:ops"})
	if err != nil {
		t.Fatal(err)
	}
	f.useSilences()
	f.start()
	testutil.Eventually(t, 5*time.Second, func() bool { return f.eng.Ready(ctx) == nil }, "the engine runs")

	a := shellAlert("3f9a1c2b7d4e")
	a.OutputFields[alert.FieldEnforceOutcome] = "signalled"
	a.OutputFields[alert.FieldEnforceSignal] = "SIGKILL"
	a.OutputFields[alert.FieldEnforcePID] = int64(4242)
	b := shellAlert("3f9a1c2b7d4e")
	if _, err := f.eng.Accept(ctx, []alert.Alert{a, b, a}); err != nil {
		t.Fatal(err)
	}
	es, err := f.st.Entries(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var seq []string
	for _, e := range es {
		if e.Type != store.SilenceCreated {
			seq = append(seq, string(e.Type))
		}
	}
	want := "alert.received incident.opened action.enforced alert.silenced playbook.matched alert.received alert.silenced playbook.matched alert.duplicate"
	if got := strings.Join(seq, " "); got != want {
		t.Fatalf("journal after Accept:\n got %s\nwant %s\n%s", got, want, dump(es))
	}
	var incident string
	for _, e := range es {
		switch e.Type {
		case store.IncidentOpened:
			incident, _ = e.Detail["incident"].(string)
		case store.AlertSilenced, store.PlaybookMatched:
			if e.Detail["incident"] != incident || incident == "" {
				t.Errorf("%s of %s names incident %v, want %q", e.Type, e.AlertID, e.Detail["incident"], incident)
			}
		}
		if e.Type == store.AlertSilenced && e.Detail["silence"] != sil.ID {
			t.Errorf("alert.silenced names %v, want %s", e.Detail["silence"], sil.ID)
		}
	}
	for _, id := range []string{a.ID, b.ID} {
		mine, err := f.st.Entries(ctx, store.Filter{AlertID: id})
		if err != nil {
			t.Fatal(err)
		}
		steps, err := store.PlannedActions(mine)
		if err != nil || len(steps) != 2 || steps[0].Reason != SkipSilenced || steps[1].Decision != "skipped_dry_run" {
			t.Errorf("plan of %s: %+v, %v", id, steps, err)
		}
	}
	info, err := f.st.GetIncident(ctx, incident)
	if err != nil || info.Alerts != 2 {
		t.Fatalf("incident %+v, %v; want 2 alerts", info, err)
	}
	st, err := f.st.Stats(ctx)
	if err != nil || st.InboxPending != 0 || st.InboxProcessing != 0 {
		t.Fatalf("inbox after Accept: %+v, %v", st, err)
	}
	if f.eng.InFlight() != 0 {
		t.Fatalf("%d alerts went to the workers", f.eng.InFlight())
	}
	if rep, err := f.st.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
}
