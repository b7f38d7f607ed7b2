package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
)

func TestRecordActionTransitions(t *testing.T) {
	all := []ActionState{ActionStatePlanned, ActionStateStarted, ActionStateSucceeded, ActionStateFailed, ActionStateSkipped, ActionStateHeld}
	allowed := map[ActionState][]ActionState{
		"":                   all,
		ActionStatePlanned:   {ActionStateStarted, ActionStateSucceeded, ActionStateFailed, ActionStateSkipped, ActionStateHeld},
		ActionStateHeld:      {ActionStateFailed, ActionStateSkipped},
		ActionStateStarted:   {ActionStateSucceeded, ActionStateFailed, ActionStateSkipped}, // and started when in doubt: TestInDoubt
		ActionStateSucceeded: nil,
		ActionStateFailed:    nil,
		ActionStateSkipped:   nil,
	}
	s := openTest(t, Options{})
	ctx := context.Background()
	n := 0
	for from, ok := range allowed {
		for _, to := range all {
			n++
			want := false
			for _, a := range ok {
				want = want || a == to
			}
			t.Run(string(from)+"→"+string(to), func(t *testing.T) {
				key := ActionKey{AlertID: "a", Playbook: "pb", Index: n}
				if from != "" {
					if _, applied, err := s.RecordAction(ctx, ActionUpdate{Key: key, Action: "container.pause", State: from}); err != nil || !applied {
						t.Fatalf("set up %s: %v %v", from, applied, err)
					}
				}
				seq := headSeq(t, s)
				run, applied, err := s.RecordAction(ctx, ActionUpdate{Key: key, Action: "container.pause", State: to,
					Result: &actions.Result{Note: "n"}}, Entry{Type: Note, AlertID: "a"})
				if err != nil {
					t.Fatal(err)
				}
				if applied != want {
					t.Fatalf("applied %v, want %v", applied, want)
				}
				wantState, wantSeq := to, seq+1
				if !want {
					wantState, wantSeq = from, seq
				}
				if run.State != wantState || headSeq(t, s) != wantSeq {
					t.Fatalf("run %s, journal at %d; want %s and %d", run.State, headSeq(t, s), wantState, wantSeq)
				}
			})
		}
	}
	mustVerify(t, s)
}

func headSeq(t testing.TB, s *Store) int64 {
	t.Helper()
	h, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h.Seq
}

func TestClaimAction(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	key := ActionKey{AlertID: "a-1", Playbook: "contain", Index: 2}
	started := Entry{Type: ActionStarted, AlertID: "a-1", Playbook: "contain", Action: "container.pause"}

	c, err := s.ClaimAction(ctx, ClaimRequest{Key: key, Action: "container.pause", Incident: "inc-1"}, started)
	if err != nil || c.Outcome != ClaimRun || c.Run.State != ActionStateStarted || c.Run.Attempts != 1 || c.Run.Incident != "inc-1" {
		t.Fatalf("first claim %+v, %v", c, err)
	}
	c, err = s.ClaimAction(ctx, ClaimRequest{Key: key, Action: "container.pause"}, started)
	if err != nil || c.Outcome != ClaimBusy {
		t.Fatalf("second claim in the same process %+v, %v", c, err)
	}
	res := &actions.Result{Note: "paused", Detail: map[string]any{"id": "abc"}}
	if _, applied, err := s.RecordAction(ctx, ActionUpdate{Key: key, State: ActionStateSucceeded, Result: res},
		Entry{Type: ActionSucceeded, AlertID: "a-1"}); err != nil || !applied {
		t.Fatalf("record succeeded: %v %v", applied, err)
	}
	c, _ = s.ClaimAction(ctx, ClaimRequest{Key: key, Action: "container.pause"}, started)
	if c.Outcome != ClaimDone || c.Run.Result == nil || c.Run.Result.Note != "paused" {
		t.Fatalf("claim of a finished action %+v", c)
	}
	if n := len(entriesOf(t, s, ActionStarted)); n != 1 {
		t.Fatalf("%d action.started entries, want 1", n)
	}
	if _, err := s.ClaimAction(ctx, ClaimRequest{Key: ActionKey{AlertID: "a-2", Playbook: "p"}}); err == nil {
		t.Fatal("claim of a new run without an action name succeeded")
	}
	runs, err := s.ActionsFor(ctx, "a-1")
	if err != nil || len(runs) != 1 || runs[0].Result.Detail["id"] != "abc" {
		t.Fatalf("actions of a-1: %+v, %v", runs, err)
	}
}

// TestInDoubt: a run started by a process that is gone is in doubt; the
// engine can take it over (RecordAction started) or fail it.
func TestInDoubt(t *testing.T) {
	path := PathIn(filepath.Join(t.TempDir(), "d"))
	ctx := context.Background()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	k1 := ActionKey{AlertID: "a", Playbook: "pb", Index: 0}
	k2 := ActionKey{AlertID: "a", Playbook: "pb", Index: 1}
	for _, k := range []ActionKey{k1, k2} {
		if c, err := s.ClaimAction(ctx, ClaimRequest{Key: k, Action: "container.pause"}); err != nil || c.Outcome != ClaimRun {
			t.Fatal(c, err)
		}
	}
	s.Close() // as good as a crash for this purpose: the owner is gone

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	un, err := s.UnfinishedActions(ctx)
	if err != nil || len(un) != 2 || !un[0].InDoubt || !un[1].InDoubt {
		t.Fatalf("unfinished after restart: %+v, %v", un, err)
	}
	c, _ := s.ClaimAction(ctx, ClaimRequest{Key: k1, Action: "container.pause"})
	if c.Outcome != ClaimInDoubt {
		t.Fatalf("claim after restart: %s", c.Outcome)
	}
	run, applied, err := s.RecordAction(ctx, ActionUpdate{Key: k1, State: ActionStateStarted}, Entry{Type: ActionStarted, Detail: map[string]any{"take_over": true}})
	if err != nil || !applied || run.Attempts != 2 || run.InDoubt {
		t.Fatalf("take-over: %+v %v %v", run, applied, err)
	}
	if c, _ := s.ClaimAction(ctx, ClaimRequest{Key: k1, Action: "container.pause"}); c.Outcome != ClaimBusy {
		t.Fatalf("after take-over: %s", c.Outcome)
	}
	if _, applied, _ := s.RecordAction(ctx, ActionUpdate{Key: k1, State: ActionStateStarted}); applied {
		t.Fatal("took over a run this process is running")
	}
	if _, applied, _ := s.RecordAction(ctx, ActionUpdate{Key: k2, State: ActionStateFailed, Error: "in doubt after restart"}); !applied {
		t.Fatal("could not fail an in-doubt run")
	}
	run, _ = s.GetAction(ctx, k2)
	if run.State != ActionStateFailed || run.Error != "in doubt after restart" {
		t.Fatalf("failed in-doubt run: %+v", run)
	}
	if _, err := s.GetAction(ctx, ActionKey{AlertID: "x", Playbook: "y"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get unknown run: %v", err)
	}
}

func TestClaimBudget(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})
	ctx := context.Background()
	budget := Budget{Max: 2, Window: 10 * time.Minute}
	claim := func(i int, destructive bool) ClaimOutcome {
		t.Helper()
		cl, err := s.ClaimAction(ctx, ClaimRequest{Key: ActionKey{AlertID: "a", Playbook: "pb", Index: i},
			Action: "container.kill", Destructive: destructive, Budget: budget})
		if err != nil {
			t.Fatal(err)
		}
		return cl.Outcome
	}
	for i, want := range []ClaimOutcome{ClaimRun, ClaimRun, ClaimOverBudget, ClaimOverBudget} {
		if got := claim(i, true); got != want {
			t.Fatalf("destructive claim %d: %s, want %s", i, got, want)
		}
	}
	if got := claim(10, false); got != ClaimRun {
		t.Fatalf("non-destructive claim over budget: %s", got)
	}
	if _, err := s.GetAction(ctx, ActionKey{AlertID: "a", Playbook: "pb", Index: 2}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an over-budget claim created a run: %v", err)
	}
	c.Add(11 * time.Minute)
	if got := claim(2, true); got != ClaimRun {
		t.Fatalf("claim after the window: %s", got)
	}
}

// TestRecordActionEnqueues: a notification is queued only when the update
// applies, in the same transaction.
func TestRecordActionEnqueues(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	key := ActionKey{AlertID: "a", Playbook: "pb", Index: 0}
	u := ActionUpdate{Key: key, Action: "slack.notify", State: ActionStateSucceeded,
		Enqueue: []Message{{Key: "slack.notify/" + key.String(), Kind: "slack", Target: "#ir", Payload: []byte(`{"text":"hi"}`)}}}
	for i := 0; i < 2; i++ {
		if _, _, err := s.RecordAction(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil || len(items) != 1 || string(items[0].Payload) != `{"text":"hi"}` {
		t.Fatalf("outbox %+v, %v", items, err)
	}
	u.Key.Index = 1
	u.Enqueue[0].Payload = []byte("{not json")
	if _, _, err := s.RecordAction(ctx, u); err == nil {
		t.Fatal("bad payload accepted")
	}
	if _, err := s.GetAction(ctx, u.Key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("run recorded although its message was refused: %v", err)
	}
}

func TestApprovals(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})
	ctx := context.Background()
	k := func(i int) ActionKey { return ActionKey{AlertID: "a", Playbook: "pb", Index: i} }
	hold := func(i int) Approval {
		t.Helper()
		a, created, err := s.HoldAction(ctx, Hold{Key: k(i), Action: "container.pause", Incident: "inc-1",
			Deadline: c.Now().Add(10 * time.Minute), Detail: map[string]any{"approvers": []any{"U1"}}},
			Entry{Type: ActionHeldForApproval, AlertID: "a"})
		if err != nil || !created || a.State != ApprovalStatePending {
			t.Fatalf("hold %d: %+v %v %v", i, a, created, err)
		}
		return a
	}
	i := 0
	for _, tc := range []struct {
		name      string
		decision  Decision
		wantRun   ActionState
		wantClaim ClaimOutcome
	}{
		{"granted", Decision{State: ApprovalStateGranted, By: "slack:U1 (jane)"}, ActionStatePlanned, ClaimRun},
		{"denied", Decision{State: ApprovalStateDenied, By: "slack:U1 (jane)"}, ActionStateSkipped, ClaimDone},
		{"expired, abort", Decision{State: ApprovalStateExpired, By: "riposte"}, ActionStateSkipped, ClaimDone},
		{"expired, proceed", Decision{State: ApprovalStateExpired, Proceed: true, By: "riposte"}, ActionStatePlanned, ClaimRun},
	} {
		i++
		t.Run(tc.name, func(t *testing.T) {
			a := hold(i)
			again, created, err := s.HoldAction(ctx, Hold{Key: k(i), Action: "container.pause", Deadline: c.Now()})
			if err != nil || created || again.ID != a.ID {
				t.Fatalf("holding again: %+v %v %v", again, created, err)
			}
			if cl, _ := s.ClaimAction(ctx, ClaimRequest{Key: k(i), Action: "container.pause"}); cl.Outcome != ClaimHeld {
				t.Fatalf("claim of a held action: %s", cl.Outcome)
			}
			got, decided, err := s.DecideApproval(ctx, a.ID, tc.decision, Entry{Type: ApprovalGranted})
			if err != nil || !decided || got.State != tc.decision.State || got.DecidedBy != tc.decision.By {
				t.Fatalf("decide: %+v %v %v", got, decided, err)
			}
			if _, decided, _ := s.DecideApproval(ctx, a.ID, Decision{State: ApprovalStateDenied}); decided {
				t.Fatal("decided twice")
			}
			run, _ := s.GetAction(ctx, k(i))
			if run.State != tc.wantRun {
				t.Fatalf("run is %s, want %s", run.State, tc.wantRun)
			}
			if cl, _ := s.ClaimAction(ctx, ClaimRequest{Key: k(i), Action: "container.pause"}); cl.Outcome != tc.wantClaim {
				t.Fatalf("claim after decision: %s, want %s", cl.Outcome, tc.wantClaim)
			}
			stored, err := s.GetApproval(ctx, a.ID)
			if err != nil || stored.State != tc.decision.State || stored.Detail["approvers"] == nil {
				t.Fatalf("stored approval %+v, %v", stored, err)
			}
		})
	}
	if _, _, err := s.DecideApproval(ctx, "apr-nope", Decision{State: ApprovalStateGranted}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("decide unknown approval: %v", err)
	}
	if _, _, err := s.DecideApproval(ctx, "x", Decision{State: ApprovalStatePending}); err == nil {
		t.Fatal("pending accepted as a decision")
	}
	// A run that already ran cannot be held.
	done := ActionKey{AlertID: "b", Playbook: "pb"}
	s.RecordAction(ctx, ActionUpdate{Key: done, Action: "container.pause", State: ActionStateSucceeded})
	if _, _, err := s.HoldAction(ctx, Hold{Key: done, Deadline: c.Now()}); !errors.Is(err, ErrState) {
		t.Fatalf("holding a finished run: %v", err)
	}
	a1 := hold(1000)
	a2 := hold(1001)
	pending, err := s.PendingApprovals(ctx)
	if err != nil || len(pending) != 2 || pending[0].ID != a1.ID || pending[1].ID != a2.ID {
		t.Fatalf("pending %+v, %v", pending, err)
	}
	mustVerify(t, s)
}

// TestApply: one alert's processing in one call; a replay applies nothing
// twice; a batch that fails leaves nothing behind.
func TestApply(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	mustAccept(t, s, "a-1")
	k := func(i int) ActionKey { return ActionKey{AlertID: "a-1", Playbook: "contain", Index: i} }
	dry := func(i int, action string) ActionUpdate {
		return ActionUpdate{Key: k(i), Action: action, State: ActionStateSkipped, Result: &actions.Result{Note: "dry run"},
			Entries: []Entry{
				{Type: ActionPlanned, AlertID: "a-1", Playbook: "contain", Action: action},
				{Type: ActionSkippedDryRun, AlertID: "a-1", Playbook: "contain", Action: action},
			}}
	}
	b := Batch{
		Entries: []Entry{{Type: PlaybookMatched, AlertID: "a-1", Playbook: "contain"}},
		Actions: []ActionUpdate{dry(0, "slack.notify"), dry(1, "container.snapshot"), dry(2, "container.pause")},
		Finish:  []string{"a-1"},
	}
	res, err := s.Apply(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range res.Applied {
		if !ok || res.Runs[i].State != ActionStateSkipped {
			t.Fatalf("action %d: applied %v, run %+v", i, ok, res.Runs[i])
		}
	}
	es, _ := s.Entries(ctx, Filter{AlertID: "a-1"})
	var types []EntryType
	for _, e := range es {
		types = append(types, e.Type)
	}
	want := []EntryType{AlertReceived, PlaybookMatched, ActionPlanned, ActionSkippedDryRun, ActionPlanned, ActionSkippedDryRun, ActionPlanned, ActionSkippedDryRun}
	if len(types) != len(want) {
		t.Fatalf("journal %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("journal %v, want %v", types, want)
		}
	}
	if st, _ := s.Stats(ctx); st.InboxPending+st.InboxProcessing != 0 {
		t.Fatalf("alert not finished: %+v", st)
	}
	// A replay after a crash: no action applies again, none of their entries.
	b.Entries = nil
	res, err = s.Apply(ctx, b)
	if err != nil || res.Applied[0] || res.Applied[2] {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	if n := headSeq(t, s); n != 8 {
		t.Fatalf("replay appended entries: head %d", n)
	}
	// A batch that fails (unknown alert to finish) leaves nothing.
	bad := Batch{Entries: []Entry{{Type: Note}}, Actions: []ActionUpdate{dry(5, "container.kill")}, Finish: []string{"nope"}}
	if _, err := s.Apply(ctx, bad); !errors.Is(err, ErrNotFound) {
		t.Fatalf("batch finishing an unknown alert: %v", err)
	}
	if _, err := s.GetAction(ctx, k(5)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed batch left its action: %v", err)
	}
	if n := headSeq(t, s); n != 8 {
		t.Fatalf("failed batch left entries: head %d", n)
	}
	mustVerify(t, s)
}
