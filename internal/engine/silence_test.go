package engine

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
)

const notifyAndContain = `
- playbook: notify-and-contain
  match: {rules: ["Terminal shell in container"]}
  actions:
    - do: slack.notify
      with: {channel: "#ir", text: "shell"}
    - do: container.pause
`

// TestSilences: a silence of scope notify mutes the notification and lets
// containment run; scope all mutes both; the alert is journaled with the
// silence that matched, and its muted actions as skipped, silenced.
func TestSilences(t *testing.T) {
	tests := []struct {
		name        string
		scope       store.SilenceScope // "": no silence
		rules       []string
		wantNotify  store.EntryType // the slack.notify action's last entry
		wantPaused  bool
		wantSilence bool
	}{
		{"no silence", "", nil, store.ActionQueued, true, false},
		{"scope notify", store.ScopeNotify, []string{"Terminal shell*"}, store.ActionSkipped, true, true},
		{"scope all", store.ScopeAll, []string{"Terminal shell*"}, store.ActionSkipped, false, true},
		{"other rule", store.ScopeAll, []string{"Read sensitive file*"}, store.ActionQueued, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Config{}, notifyAndContain)
			ctx := context.Background()
			var sil store.Silence
			if tt.scope != "" {
				var err error
				sil, err = silence.Add(ctx, f.st, store.Silence{Matcher: store.SilenceMatcher{Rules: tt.rules}, Scope: tt.scope,
					StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour), CreatedBy: "op:ops", ApprovedBy: "op:lead"})
				if err != nil {
					t.Fatal(err)
				}
			}
			f.useSilences()
			f.start()
			a := shellAlert("3f9a1c2b7d4e")
			f.submit(a)
			es := f.waitFor("both actions recorded", func(es []store.Entry) bool {
				return count(es, store.ActionPlanned) == 2 && (has(es, store.ActionSucceeded) || count(es, store.ActionSkipped) == 2)
			}, store.Filter{AlertID: a.ID})
			var notify, silenced []store.Entry
			for _, e := range es {
				if e.Action == "slack.notify" && (e.Type == store.ActionQueued || e.Type == store.ActionSkipped) {
					notify = append(notify, e)
				}
				if e.Type == store.AlertSilenced {
					silenced = append(silenced, e)
				}
			}
			if len(notify) != 1 || notify[0].Type != tt.wantNotify {
				t.Fatalf("slack.notify entries %v, want one %s\n%s", types(notify), tt.wantNotify, dump(es))
			}
			if tt.wantNotify == store.ActionSkipped && has(es, store.NotificationSent) {
				t.Errorf("a muted notification was sent\n%s", dump(es))
			}
			if tt.wantNotify == store.ActionSkipped && (notify[0].Detail["reason"] != SkipSilenced || notify[0].Detail["silence"] != sil.ID) {
				t.Errorf("muted notification %v, want reason silenced and silence %s", notify[0].Detail, sil.ID)
			}
			if got := f.rec.count("container.pause") == 1; got != tt.wantPaused {
				t.Errorf("paused %v, want %v\n%s", got, tt.wantPaused, dump(es))
			}
			if got := len(silenced) == 1; got != tt.wantSilence {
				t.Fatalf("alert.silenced entries %d, want silenced %v", len(silenced), tt.wantSilence)
			}
			if tt.wantSilence && (silenced[0].Detail["silence"] != sil.ID || silenced[0].Detail["incident"] == "") {
				t.Errorf("alert.silenced %v", silenced[0].Detail)
			}
			run, err := f.st.GetAction(ctx, store.ActionKey{AlertID: a.ID, Playbook: "notify-and-contain", Index: 0})
			if err != nil || (tt.wantNotify == store.ActionSkipped) != (run.State == store.ActionStateSkipped) {
				t.Errorf("notification run %+v, %v", run, err)
			}
		})
	}
}

// TestSilenceInDryRunPlan: a dry-run playbook's plan records the action a
// silence mutes as skipped, silenced, naming the silence.
func TestSilenceInDryRunPlan(t *testing.T) {
	f := newFixture(t, Config{DryRun: true}, notifyAndContain)
	ctx := context.Background()
	sil, err := silence.Add(ctx, f.st, store.Silence{Matcher: store.SilenceMatcher{Rules: []string{"Terminal shell*"}}, Scope: store.ScopeNotify,
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour), CreatedBy: "op:ops", ApprovedBy: "op:lead"})
	if err != nil {
		t.Fatal(err)
	}
	f.useSilences()
	f.start()
	a := shellAlert("3f9a1c2b7d4e")
	f.submit(a)
	es := f.waitFor("the dry-run plan", func(es []store.Entry) bool { return has(es, store.PlaybookMatched) }, store.Filter{AlertID: a.ID})
	plan, err := store.PlannedActions(es)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0 slack.notify skipped: silenced", "1 container.pause skipped_dry_run"}
	got, named := planLines(plan), ""
	if len(plan) > 0 {
		named = plan[0].Silence
	}
	if !slices.Equal(got, want) || named != sil.ID {
		t.Errorf("planned = %q (silence %q), want %q (silence %q)\n%s", got, named, want, sil.ID, dump(es))
	}
}
