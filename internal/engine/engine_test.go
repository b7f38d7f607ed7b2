package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/playbooks"
)

// recorder is a test double of a responder or notifier: it records every
// request and answers with what the test says.
type recorder struct {
	mu    sync.Mutex
	calls []actions.Request
	fail  func(req actions.Request, n int) error // n: calls so far for this action
}

func (r *recorder) Run(_ context.Context, req actions.Request) (actions.Result, error) {
	r.mu.Lock()
	n := 0
	for _, c := range r.calls {
		if c.Action == req.Action {
			n++
		}
	}
	r.calls = append(r.calls, req)
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		if err := fail(req, n); err != nil {
			return actions.Result{}, err
		}
	}
	return actions.Result{Note: req.Action + " done", SHA256: strings.Repeat("ab", 32)}, nil
}

func (r *recorder) count(action string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.calls {
		if c.Action == action {
			n++
		}
	}
	return n
}

type fixture struct {
	t    *testing.T
	st   *store.Store
	eng  *Engine
	rec  *recorder
	dir  string
	stop context.CancelFunc
	done chan error
}

// useSilences has the engine read the store's silences (a cache reloaded
// every minute); before start.
func (f *fixture) useSilences() { f.eng.deps.Silences = silence.NewCache(f.st, time.Minute, nil, nil) }

func newFixture(t *testing.T, cfg Config, yml string) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(store.PathIn(dir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	set, err := playbooks.Parse(testCatalog(), playbooks.Source{Name: "test.yaml", Data: []byte(yml)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	runners := map[string]actions.Runner{}
	for _, s := range testSpecs {
		runners[s.Name] = rec
	}
	if cfg.Poll == 0 {
		cfg.Poll = 20 * time.Millisecond
	}
	cfg.Outbox.BaseBackoff = 10 * time.Millisecond
	cfg.Outbox.MaxBackoff = 20 * time.Millisecond
	eng, err := New(cfg, Deps{Store: st, Playbooks: set, Catalog: testCatalog(), Runners: runners})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, st: st, eng: eng, rec: rec, dir: dir}
}

func (f *fixture) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	f.done = make(chan error, 1)
	go func() { f.done <- f.eng.Run(ctx) }()
	f.t.Cleanup(f.shutdown)
	// Running before the test submits: an alert submitted before is stored
	// for the dispatcher, one submitted after may be settled at its accept,
	// and a test must know which path it takes.
	testutil.Eventually(f.t, 10*time.Second, f.eng.running.Load, "the engine runs")
}

func (f *fixture) shutdown() {
	if f.stop == nil {
		return
	}
	f.stop()
	select {
	case err := <-f.done:
		if err != nil {
			f.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		f.t.Error("Run did not return after cancel")
	}
	f.stop = nil
}

var seq int

func shellAlert(container string) alert.Alert {
	seq++
	fields := map[string]any{"proc.cmdline": "sh -i"}
	if container != "" {
		fields["container.id"] = container
		fields["container.name"] = "web-" + container[:4]
	}
	return alert.Alert{ID: fmt.Sprintf("alert-%d-%d", time.Now().UnixNano(), seq), Rule: "Terminal shell in container",
		Priority: alert.PriorityWarning, Time: time.Now().UTC(), Source: "syscall", Hostname: "node-1",
		Output: "shell", OutputFields: fields}
}

func (f *fixture) submit(alerts ...alert.Alert) {
	f.t.Helper()
	if _, err := f.eng.Submit(context.Background(), alerts, "test"); err != nil {
		f.t.Fatal(err)
	}
}

// waitFor polls the journal until cond holds for the alert's entry types.
func (f *fixture) waitFor(what string, cond func([]store.Entry) bool, filter store.Filter) []store.Entry {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		es, err := f.st.Entries(context.Background(), filter)
		if err != nil {
			f.t.Fatal(err)
		}
		if cond(es) {
			return es
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s; journal:\n%s", what, dump(es))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dump(es []store.Entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %d %s %s %s %s %v\n", e.Seq, e.Type, e.Playbook, e.Action, e.Actor, e.Detail)
	}
	return b.String()
}

func types(es []store.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Type)
		if e.Action != "" {
			out[i] += " " + e.Action
		}
	}
	return out
}

func has(es []store.Entry, t store.EntryType) bool {
	for _, e := range es {
		if e.Type == t {
			return true
		}
	}
	return false
}

func count(es []store.Entry, t store.EntryType) int {
	n := 0
	for _, e := range es {
		if e.Type == t {
			n++
		}
	}
	return n
}

const containPlaybook = `
- playbook: contain
  match: {rules: ["Terminal shell in container"]}
  actions:
    - do: container.snapshot
    - do: container.pause
    - do: journal.note
      with: {text: 'contained {{ .Field "container.name" }}'}
`

func TestRunsActionsInOrderAndJournals(t *testing.T) {
	f := newFixture(t, Config{}, containPlaybook)
	f.start()
	a := shellAlert("3f9a1c2b7d4e")
	f.submit(a)
	es := f.waitFor("note", func(es []store.Entry) bool { return has(es, store.Note) }, store.Filter{AlertID: a.ID})
	want := []string{
		"alert.received",
		"playbook.matched container.snapshot", "action.planned container.snapshot", "action.started container.snapshot", "action.succeeded container.snapshot",
		"action.planned container.pause", "action.started container.pause", "action.succeeded container.pause",
		"action.planned journal.note", "note journal.note",
	}
	if got := types(es); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("journal:\n%s\nwant %v", dump(es), want)
	}
	if es[4].SHA256 != strings.Repeat("ab", 32) {
		t.Errorf("evidence hash not journaled: %+v", es[4])
	}
	if es[9].Detail["text"] != "contained web-3f9a" {
		t.Errorf("note = %v", es[9].Detail)
	}
	if f.rec.count("container.pause") != 1 || f.rec.calls[1].Container != "3f9a1c2b7d4e" || f.rec.calls[1].Incident == "" ||
		f.rec.calls[1].Actor != "playbook:contain" || len(f.rec.calls[1].Steps) != 1 {
		t.Errorf("pause request = %+v", f.rec.calls[1])
	}
}

func TestDryRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		yml  string
	}{
		{"global", Config{DryRun: true}, containPlaybook},
		{"playbook", Config{}, strings.Replace(containPlaybook, "  actions:", "  dry_run: true\n  actions:", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.cfg, tc.yml)
			f.start()
			a := shellAlert("3f9a1c2b7d4e")
			f.submit(a)
			es := f.waitFor("the dry-run plan", func(es []store.Entry) bool { return has(es, store.PlaybookMatched) }, store.Filter{AlertID: a.ID})
			if len(f.rec.calls) != 0 || has(es, store.ActionStarted) || has(es, store.Note) {
				t.Errorf("dry run executed something: calls=%d\n%s", len(f.rec.calls), dump(es))
			}
			// The plan is the one entry: no per-action entries, no runs.
			if got := types(es); !slices.Equal(got, []string{"alert.received", "playbook.matched"}) {
				t.Errorf("entries = %q\n%s", got, dump(es))
			}
			plan, err := store.PlannedActions(es)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"0 container.snapshot skipped_dry_run", "1 container.pause skipped_dry_run", "2 journal.note skipped_dry_run"}
			if got := planLines(plan); !slices.Equal(got, want) {
				t.Errorf("planned = %q, want %q", got, want)
			}
			if len(plan) == 3 && plan[2].With["text"] != "contained web-3f9a" {
				t.Errorf("the note's parameters are not in the plan: %v", plan[2].With)
			}
			f.waitFinished()
			if runs, err := f.st.ActionsFor(context.Background(), a.ID); err != nil || len(runs) != 0 {
				t.Errorf("dry run left action runs: %+v %v", runs, err)
			}
		})
	}
}

// planLines shows planned actions as "index action decision[: reason]".
func planLines(plan []store.PlannedAction) []string {
	out := make([]string, len(plan))
	for i, p := range plan {
		out[i] = fmt.Sprintf("%d %s %s", p.Index, p.Action, p.Decision)
		if p.Reason != "" {
			out[i] += ": " + p.Reason
		}
	}
	return out
}

// waitFinished waits until the inbox has nothing left to process.
func (f *fixture) waitFinished() {
	f.t.Helper()
	testutil.Eventually(f.t, 10*time.Second, func() bool {
		st, err := f.st.Stats(context.Background())
		return err == nil && st.InboxPending+st.InboxProcessing == 0
	}, "the inbox is worked off")
}

// TestDryRunPlanDecisions: a dry-run plan records what the engine would
// have skipped anyway, with the reason.
func TestDryRunPlanDecisions(t *testing.T) {
	f := newFixture(t, Config{DryRun: true}, `
- playbook: contain
  match: {rules: ["Terminal shell in container"]}
  actions:
    - do: container.pause
    - do: container.snapshot
      if: 'priority >= Critical'
    - do: journal.note
      with: {text: 'seen {{ .Rule }}'}
`)
	f.start()
	a := shellAlert("") // a host alert: no container to pause
	f.submit(a)
	es := f.waitFor("the dry-run plan", func(es []store.Entry) bool { return has(es, store.PlaybookMatched) }, store.Filter{AlertID: a.ID})
	plan, err := store.PlannedActions(es)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0 container.pause skipped: the alert is not about a container", "1 container.snapshot skipped: if was false",
		"2 journal.note skipped_dry_run"}
	if got := planLines(plan); !slices.Equal(got, want) {
		t.Errorf("planned = %q, want %q\n%s", got, want, dump(es))
	}
}

// lossyStore applies the first batch but reports it failed, as when the
// commit went through and the answer was lost.
type lossyStore struct {
	Store
	lost atomic.Bool
}

func (s *lossyStore) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	res, err := s.Store.Apply(ctx, b)
	if err == nil && s.lost.CompareAndSwap(false, true) {
		return store.BatchResult{}, errors.New("apply batch: connection reset")
	}
	return res, err
}

// TestDryRunPlanJournaledOnce: a dry-run playbook has no action runs to
// make a repeat a no-op, so a retry of a run whose write did go through
// finds the plan in the journal and writes nothing twice.
// The alert's action.enforced and alert.silenced entries are not written
// twice either.
func TestDryRunPlanJournaledOnce(t *testing.T) {
	f := newFixture(t, Config{DryRun: true}, containPlaybook)
	ctx := context.Background()
	if _, err := silence.Add(ctx, f.st, store.Silence{Matcher: store.SilenceMatcher{Rules: []string{"Terminal shell*"}}, Scope: store.ScopeNotify,
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour), CreatedBy: "op:ops"}); err != nil {
		t.Fatal(err)
	}
	ls := &lossyStore{Store: f.st}
	f.eng.deps.Store = ls
	f.useSilences()
	a := shellAlert("3f9a1c2b7d4e")
	a.OutputFields[alert.FieldEnforceOutcome] = "signalled"
	a.OutputFields[alert.FieldEnforceSignal] = "SIGKILL"
	a.OutputFields[alert.FieldEnforcePID] = int64(4242)
	// Stored before the engine runs: the workers process it (an alert
	// submitted to a running engine would be settled at its accept,
	// without the batch whose answer is lost here).
	f.submit(a)
	f.start()
	f.waitFinished()
	testutil.Eventually(t, 10*time.Second, func() bool { return f.eng.InFlight() == 0 }, "the retry is done")
	es, err := f.st.Entries(ctx, store.Filter{AlertID: a.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !ls.lost.Load() || count(es, store.PlaybookMatched) != 1 || count(es, store.ActionEnforced) != 1 || count(es, store.AlertSilenced) != 1 {
		t.Errorf("lost answer %v; want one plan, one action.enforced, one alert.silenced:\n%s", ls.lost.Load(), dump(es))
	}
}

func TestProtectedAndFailures(t *testing.T) {
	f := newFixture(t, Config{}, `
- playbook: p
  actions:
    - do: container.pause
      on_error: continue
    - do: container.kill
    - do: container.stop
`)
	f.rec.fail = func(req actions.Request, _ int) error {
		switch req.Action {
		case "container.pause":
			return fmt.Errorf("pause container x: %w: label riposte.protect=true", actions.ErrProtected)
		case "container.kill":
			return actions.Retryable(errors.New("kill container x: docker daemon unreachable"))
		}
		return nil
	}
	f.start()
	a := shellAlert("3f9a1c2b7d4e")
	f.submit(a)
	es := f.waitFor("pause blocked, kill failed", func(es []store.Entry) bool {
		return has(es, store.ActionBlockedProtected) && has(es, store.ActionFailed)
	}, store.Filter{AlertID: a.ID})
	if f.rec.count("container.stop") != 0 {
		t.Error("stop ran after a failed kill without on_error: continue")
	}
	for _, e := range es {
		if e.Type == store.ActionFailed && e.Detail["retryable"] != true {
			t.Errorf("failure not marked retryable: %v", e.Detail)
		}
	}
}

func TestHostAlertSkipsContainerActions(t *testing.T) {
	f := newFixture(t, Config{}, containPlaybook)
	f.start()
	a := shellAlert("")
	a.OutputFields["container.id"] = "host"
	f.submit(a)
	es := f.waitFor("note", func(es []store.Entry) bool { return has(es, store.Note) }, store.Filter{AlertID: a.ID})
	if count(es, store.ActionSkipped) != 2 || len(f.rec.calls) != 0 {
		t.Errorf("container actions on a host alert:\n%s", dump(es))
	}
}

func TestGatedApproval(t *testing.T) {
	f := newFixture(t, Config{}, `
- playbook: gated
  approval: {approvers: [U1], timeout: 1h}
  actions:
    - do: container.pause
      gated: true
    - do: container.snapshot
`)
	f.start()
	a := shellAlert("3f9a1c2b7d4e")
	f.submit(a)
	f.waitFor("held and snapshot", func(es []store.Entry) bool {
		return has(es, store.ActionHeldForApproval) && has(es, store.ActionSucceeded)
	}, store.Filter{AlertID: a.ID})
	if f.rec.count("container.pause") != 0 || f.rec.count("container.snapshot") != 1 {
		t.Fatalf("calls before approval: %+v", f.rec.calls)
	}
	pending, err := f.st.PendingApprovals(context.Background())
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending approvals: %v %v", pending, err)
	}
	res, err := f.eng.Decide(context.Background(), pending[0].ID, true, "slack:U1 (jane)", "")
	if err != nil || res.Note != "container.pause done" {
		t.Fatalf("Decide: %+v %v", res, err)
	}
	if _, err := f.eng.Decide(context.Background(), pending[0].ID, true, "slack:U1 (jane)", ""); !errors.Is(err, ErrDecided) {
		t.Errorf("second decision: %v", err)
	}
	es, _ := f.st.Entries(context.Background(), store.Filter{AlertID: a.ID})
	if f.rec.count("container.pause") != 1 || !has(es, store.ApprovalGranted) {
		t.Errorf("after approval: calls %d\n%s", f.rec.count("container.pause"), dump(es))
	}
	for _, e := range es {
		if e.Type == store.ActionSucceeded && e.Action == "container.pause" && e.Actor != "slack:U1 (jane)" {
			t.Errorf("approved action journaled with actor %q", e.Actor)
		}
	}
}

func TestApprovalTimeoutProceeds(t *testing.T) {
	f := newFixture(t, Config{}, `
- playbook: gated
  approval: {approvers: [U1], timeout: 1ms, on_timeout: proceed}
  actions:
    - do: container.pause
      gated: true
- playbook: gated-abort
  approval: {approvers: [U1], timeout: 1ms}
  actions:
    - do: container.kill
      gated: true
`)
	f.start()
	a := shellAlert("3f9a1c2b7d4e")
	f.submit(a)
	es := f.waitFor("timeouts", func(es []store.Entry) bool {
		return count(es, store.ApprovalTimeout) == 2 && has(es, store.ActionSucceeded)
	},
		store.Filter{AlertID: a.ID})
	if f.rec.count("container.pause") != 1 || f.rec.count("container.kill") != 0 {
		t.Errorf("after timeouts: pause %d kill %d\n%s", f.rec.count("container.pause"), f.rec.count("container.kill"), dump(es))
	}
}

func TestBlastRadiusHolds(t *testing.T) {
	f := newFixture(t, Config{BlastRadius: BlastRadius{Max: 2, Window: time.Hour}, Approvers: []string{"@oncall"}}, `
- playbook: p
  actions: [{do: container.pause}]
`)
	f.start()
	for i := 0; i < 4; i++ {
		f.submit(shellAlert(fmt.Sprintf("%012d", i)))
	}
	f.waitFor("2 held", func(es []store.Entry) bool {
		return count(es, store.ActionHeldForApproval) == 2 && count(es, store.ActionSucceeded) == 2
	},
		store.Filter{})
	if n := f.rec.count("container.pause"); n != 2 {
		t.Errorf("paused %d containers, limit 2", n)
	}
	pending, _ := f.st.PendingApprovals(context.Background())
	if len(pending) != 2 || !strings.Contains(fmt.Sprint(pending[0].Detail["reason"]), "blast radius") {
		t.Errorf("pending = %+v", pending)
	}
}

func TestNotificationsThroughOutbox(t *testing.T) {
	f := newFixture(t, Config{}, `
- playbook: p
  actions:
    - do: slack.notify
      with: {channel: "#ir"}
    - do: pagerduty.trigger
    - do: container.pause
`)
	f.rec.fail = func(req actions.Request, n int) error {
		switch {
		case req.Action == "slack.notify" && n < 2:
			return actions.Retryable(errors.New("post slack message: 503"))
		case req.Action == "pagerduty.trigger":
			return errors.New("trigger pagerduty: 400 invalid routing key")
		}
		return nil
	}
	f.start()
	a := shellAlert("3f9a1c2b7d4e")
	f.submit(a)
	es := f.waitFor("sent and failed", func(es []store.Entry) bool {
		return has(es, store.NotificationSent) && has(es, store.NotificationFailed)
	}, store.Filter{AlertID: a.ID})
	if f.rec.count("slack.notify") != 3 || f.rec.count("pagerduty.trigger") != 1 || f.rec.count("container.pause") != 1 {
		t.Errorf("calls: slack %d pd %d pause %d", f.rec.count("slack.notify"), f.rec.count("pagerduty.trigger"), f.rec.count("container.pause"))
	}
	if count(es, store.ActionQueued) != 2 {
		t.Errorf("queued entries:\n%s", dump(es))
	}
}

// TestReprocessingIsIdempotent: an alert processed twice (a crash after
// the actions, before FinishAlert) runs nothing twice and journals each
// step once.
func TestReprocessingIsIdempotent(t *testing.T) {
	f := newFixture(t, Config{}, containPlaybook)
	a := shellAlert("3f9a1c2b7d4e")
	if _, err := f.st.Accept(context.Background(), []alert.Alert{a}); err != nil {
		t.Fatal(err)
	}
	items, err := f.st.ClaimAlerts(context.Background(), 10, time.Minute)
	if err != nil || len(items) != 1 {
		t.Fatal(items, err)
	}
	f.eng.process(context.Background(), items)
	items[0].Attempts = 2
	f.eng.process(context.Background(), items)
	es, _ := f.st.Entries(context.Background(), store.Filter{AlertID: a.ID})
	if f.rec.count("container.pause") != 1 || count(es, store.ActionPlanned) != 3 || count(es, store.PlaybookMatched) != 1 || count(es, store.Note) != 1 {
		t.Errorf("second processing repeated work: pause %d\n%s", f.rec.count("container.pause"), dump(es))
	}
}

func TestManualAct(t *testing.T) {
	f := newFixture(t, Config{}, containPlaybook)
	res, err := f.eng.Act(context.Background(), Manual{Action: "container.kill", Container: "web", Params: actions.Params{"signal": "TERM"}, Actor: "cli:root"})
	if err != nil || res.SHA256 == "" {
		t.Fatalf("Act: %+v %v", res, err)
	}
	if len(f.rec.calls) != 1 || f.rec.calls[0].Container != "web" || f.rec.calls[0].Params["signal"] != "TERM" {
		t.Errorf("request %+v", f.rec.calls)
	}
	es, _ := f.st.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.ActionSucceeded}})
	if len(es) != 1 || es[0].Actor != "cli:root" || es[0].Playbook != ManualPlaybook {
		t.Errorf("journal: %s", dump(es))
	}
	if _, err := f.eng.Act(context.Background(), Manual{Action: "container.kill", Container: "web", Params: actions.Params{"signal": "NOPE"}}); err == nil ||
		!strings.Contains(err.Error(), "parameter signal") {
		t.Errorf("bad param: %v", err)
	}
	if _, err := f.eng.Act(context.Background(), Manual{Action: "container.pause"}); err == nil || !strings.Contains(err.Error(), "no container") {
		t.Errorf("no container: %v", err)
	}
	res, err = f.eng.Act(context.Background(), Manual{Action: "container.pause", Container: "web", DryRun: true, Actor: "cli:root"})
	if err != nil || !strings.Contains(res.Note, "dry run") || len(f.rec.calls) != 1 {
		t.Errorf("dry run act: %+v %v calls %d", res, err, len(f.rec.calls))
	}
	f.rec.fail = func(actions.Request, int) error { return fmt.Errorf("pause: %w", actions.ErrProtected) }
	if _, err := f.eng.Act(context.Background(), Manual{Action: "container.pause", Container: "riposte", Actor: "cli:root"}); !errors.Is(err, actions.ErrProtected) {
		t.Errorf("protected act: %v", err)
	}
}

// TestManualActBlastRadius: hand-run destructive actions count against the
// blast-radius budget like playbook ones; beyond it they are refused and
// journaled, unless the operator gives an override reason, which is
// journaled with the action. Non-destructive actions are not counted.
func TestManualActBlastRadius(t *testing.T) {
	f := newFixture(t, Config{BlastRadius: BlastRadius{Max: 2, Window: time.Hour}}, containPlaybook)
	ctx := context.Background()
	act := func(action, container, override string) error {
		_, err := f.eng.Act(ctx, Manual{Action: action, Container: container, Actor: "token:jane", Override: override})
		return err
	}
	for _, c := range []string{"a", "b"} {
		if err := act("container.pause", c, ""); err != nil {
			t.Fatalf("within budget: %v", err)
		}
	}
	err := act("container.kill", "c", "")
	if !errors.Is(err, ErrOverBudget) || !strings.Contains(err.Error(), "more than 2 destructive actions within 1h0m0s") {
		t.Fatalf("third destructive act: %v, want ErrOverBudget", err)
	}
	if n := f.rec.count("container.kill"); n != 0 {
		t.Fatalf("refused kill ran %d times", n)
	}
	if err := act("container.snapshot", "c", ""); err != nil {
		t.Errorf("a snapshot is not destructive and not counted: %v", err)
	}
	if err := act("container.kill", "c", "INC-7 spreading, budget exhausted by the same incident"); err != nil {
		t.Fatalf("override: %v", err)
	}
	if n := f.rec.count("container.kill"); n != 1 {
		t.Errorf("overridden kill ran %d times, want 1", n)
	}
	refused, _ := f.st.Entries(ctx, store.Filter{Types: []store.EntryType{store.ActionRefusedBudget}})
	if len(refused) != 1 || refused[0].Actor != "token:jane" || refused[0].Action != "container.kill" {
		t.Errorf("refusal journal: %s", dump(refused))
	}
	planned, _ := f.st.Entries(ctx, store.Filter{Types: []store.EntryType{store.ActionPlanned}})
	overrides := 0
	for _, e := range planned {
		if e.Detail["blast_radius_override"] == "INC-7 spreading, budget exhausted by the same incident" {
			overrides++
		}
	}
	if overrides != 1 {
		t.Errorf("override journaled %d times, want 1:\n%s", overrides, dump(planned))
	}
}

func TestSameContainerInOrder(t *testing.T) {
	f := newFixture(t, Config{Workers: 4}, `
- playbook: p
  actions: [{do: container.snapshot}]
`)
	var mu sync.Mutex
	running := map[string]bool{}
	f.rec.fail = func(req actions.Request, _ int) error {
		mu.Lock()
		if running[req.Container] {
			mu.Unlock()
			return errors.New("two actions on one container at once")
		}
		running[req.Container] = true
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		running[req.Container] = false
		mu.Unlock()
		return nil
	}
	f.start()
	var alerts []alert.Alert
	for i := 0; i < 30; i++ {
		alerts = append(alerts, shellAlert(fmt.Sprintf("%012d", i%3)))
	}
	f.submit(alerts...)
	es := f.waitFor("30 snapshots", func(es []store.Entry) bool {
		return count(es, store.ActionSucceeded)+count(es, store.ActionFailed) == 30
	}, store.Filter{})
	if count(es, store.ActionFailed) != 0 {
		t.Errorf("overlapping actions on one container:\n%s", dump(es))
	}
	_ = filepath.Join
}

// countingStore counts which intake path the engine took.
type countingStore struct {
	Store
	accepts, claimed, settled atomic.Int64 // calls; settled counts alerts
}

func (s *countingStore) Accept(ctx context.Context, as []alert.Alert) ([]store.Accepted, error) {
	s.accepts.Add(1)
	return s.Store.Accept(ctx, as)
}

func (s *countingStore) AcceptSettled(ctx context.Context, as []alert.Alert, settled []*store.Settled, lease time.Duration) ([]store.Accepted, []store.InboxItem, []string, error) {
	if lease > 0 {
		s.claimed.Add(1)
	}
	for _, st := range settled {
		if st != nil {
			s.settled.Add(1)
		}
	}
	return s.Store.AcceptSettled(ctx, as, settled, lease)
}

// TestAcceptClaimsWhenThereIsRoom: alerts whose playbooks are all in dry
// run are processed in their accept (done when Accept returns); the
// others are stored already claimed while the engine runs with room for
// them; a request larger than the room, or an engine not running, leaves
// them in the inbox for the dispatcher. Either way every alert is
// processed once.
func TestAcceptClaimsWhenThereIsRoom(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		alerts                    int
		running, dryRun           bool
		accepts, claimed, settled int64
	}{
		{"dry run settled at accept", 5, true, true, 0, 0, 5},
		{"room", 2, true, false, 0, 1, 0},
		{"more than the batch", 5, true, false, 0, 0, 0},
		{"not running", 2, false, true, 1, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{Batch: 4, DryRun: tc.dryRun}, containPlaybook)
			cs := &countingStore{Store: f.st}
			f.eng.deps.Store = cs
			if tc.running {
				f.start()
				testutil.Eventually(t, 5*time.Second, func() bool { return f.eng.Ready(context.Background()) == nil }, "the engine runs")
			}
			var as []alert.Alert
			for range tc.alerts {
				as = append(as, shellAlert("3f9a1c2b7d4e"))
			}
			acc, err := f.eng.Accept(context.Background(), as)
			if err != nil || len(acc) != tc.alerts {
				t.Fatalf("accept: %v, %v", acc, err)
			}
			if cs.accepts.Load() != tc.accepts || cs.claimed.Load() != tc.claimed || cs.settled.Load() != tc.settled {
				t.Errorf("Accept %d, claimed %d, settled alerts %d; want %d, %d, %d", cs.accepts.Load(), cs.claimed.Load(), cs.settled.Load(), tc.accepts, tc.claimed, tc.settled)
			}
			if tc.settled > 0 {
				// Done with the accept: nothing pending or in process, the
				// plans journaled, before any worker ran.
				st, err := f.st.Stats(context.Background())
				if err != nil || st.InboxPending != 0 || st.InboxProcessing != 0 {
					t.Fatalf("settled: want nothing left in the inbox, got %+v %v", st, err)
				}
				es, err := f.st.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.PlaybookMatched}})
				if err != nil || len(es) != tc.alerts {
					t.Fatalf("settled: want %d plans at once, got %d (%v)", tc.alerts, len(es), err)
				}
				for _, e := range es {
					if inc, _ := e.Detail["incident"].(string); !strings.HasPrefix(inc, "inc-") {
						t.Errorf("settled plan's incident = %v, want the alert's incident id", e.Detail["incident"])
					}
				}
			}
			if !tc.running {
				st, err := f.st.Stats(context.Background())
				if err != nil || st.InboxPending != int64(tc.alerts) {
					t.Fatalf("not running: want %d pending, got %+v %v", tc.alerts, st, err)
				}
				f.start()
			}
			f.waitFinished()
			es, err := f.st.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.PlaybookMatched}})
			if err != nil || len(es) != tc.alerts {
				t.Errorf("want one plan per alert, got %d (%v)", len(es), err)
			}
		})
	}
}
