package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

// Harness makes stores of one backend for the suite.
type Harness struct {
	// Fresh returns the location of a new, empty store (a SQLite file path,
	// a PostgreSQL URL): each call a different one.
	Fresh func(t testing.TB) string
	// Open opens the store at loc. The suite closes what it opens.
	Open func(t testing.TB, loc string, opts store.Options) (store.Backend, error)
	// Shared: several handles (processes, replicas) may have one location
	// open at once, and a claim or lease of another open handle holds until
	// it runs out. Not shared: one handle at a time. Either way, what a
	// closed handle had claimed is claimable at once.
	Shared bool
}

// Run runs the conformance suite against h's backend.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"AcceptDuplicates", testAcceptDuplicates},
		{"AcceptRejects", testAcceptRejects},
		{"ClaimAndFinishAlerts", testClaimAndFinish},
		{"AcceptClaimed", testAcceptClaimed},
		{"AcceptSettled", testAcceptSettled},
		{"Journal", testJournal},
		{"AppendRejects", testAppendRejects},
		{"Incidents", testIncidents},
		{"ActionTransitions", testTransitions},
		{"ClaimAction", testClaimAction},
		{"ClaimBudget", testClaimBudget},
		{"InDoubtAfterOwnerGone", testInDoubt},
		{"RecordActionEnqueues", testRecordActionEnqueues},
		{"Apply", testApply},
		{"Approvals", testApprovals},
		{"Outbox", testOutbox},
		{"OutboxFold", testOutboxFold},
		{"OutboxFoldConcurrent", testOutboxFoldConcurrent},
		{"KV", testKV},
		{"Silences", testSilences},
		{"History", testHistory},
		{"Nonces", testNonces},
		{"Prune", testPrune},
		{"ReopenKeepsChain", testReopen},
		{"AbandonedClaims", testAbandoned},
		{"LeasesAcrossHandles", testLeasesAcrossHandles},
		{"ExtendClaims", testExtendClaims},
		{"ConcurrentAcceptAndClaim", testConcurrent},
		{"Urgent", testUrgent},
		{"NodeActions", testNodeActions},
		{"PruneNodeActions", testPruneNodeActions},
	}
	// Only for backends that several handles open at once.
	sharedOnly := map[string]bool{"LeasesAcrossHandles": true}
	for _, tc := range tests {
		if sharedOnly[tc.name] && !h.Shared {
			continue // one handle at a time (SQLite): nothing to share
		}
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// open opens a fresh store and closes it at the end of the test.
func open(t testing.TB, h Harness, opts store.Options) (store.Backend, string) {
	t.Helper()
	loc := h.Fresh(t)
	return reopen(t, h, loc, opts), loc
}

func reopen(t testing.TB, h Harness, loc string, opts store.Options) store.Backend {
	t.Helper()
	s, err := h.Open(t, loc, opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var ctx = context.Background()

// Alert is a realistic Falco alert (about 700 bytes of JSON).
func Alert(id string) alert.Alert {
	return alert.Alert{
		ID:       id,
		Time:     time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Rule:     "Terminal shell in container",
		Priority: alert.PriorityWarning,
		Output:   "A shell was spawned in a container with an attached terminal (user=root container_id=3f9a1c2b4d5e image=staging/api:1.4 shell=bash parent=runc cmdline=bash terminal=34816)",
		OutputFields: map[string]any{
			"container.id":               "3f9a1c2b4d5e",
			"container.name":             "api-7d9f",
			"container.image.repository": "staging/api",
			"evt.time":                   int64(1740830400000000000),
			"proc.cmdline":               "bash",
			"proc.name":                  "bash",
			"user.name":                  "root",
		},
		Source:   "syscall",
		Tags:     []string{"container", "shell"},
		Hostname: "node-1",
	}
}

func mustAccept(t testing.TB, s store.Backend, ids ...string) []store.Accepted {
	t.Helper()
	as := make([]alert.Alert, len(ids))
	for i, id := range ids {
		as[i] = Alert(id)
	}
	got, err := s.Accept(ctx, as)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Clock is a settable clock for store.Options.Now: every reading is a
// microsecond after the last, so times are distinct and increasing. It is
// safe for concurrent use (two handles may share one).
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at 2025-03-01 12:00 UTC.
func NewClock() *Clock { return &Clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Microsecond)
	return c.t
}

// Add moves the clock on.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func entriesOf(t testing.TB, s store.Backend, typ store.EntryType) []store.Entry {
	t.Helper()
	es, err := s.Entries(ctx, store.Filter{Types: []store.EntryType{typ}})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// MustVerify fails t unless s's journal verifies.
func MustVerify(t testing.TB, s store.Backend) store.Report {
	t.Helper()
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("journal does not verify: %s", rep.Problem.Message)
	}
	return rep
}

func headSeq(t testing.TB, s store.Backend) int64 {
	t.Helper()
	h, err := s.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return h.Seq
}

func testAcceptDuplicates(t *testing.T, h Harness) {
	s, _ := open(t, h, store.Options{})
	got := mustAccept(t, s, "a-1", "a-2", "a-1")
	if got[0].Duplicate || got[1].Duplicate || !got[2].Duplicate || got[2].Conflict {
		t.Fatalf("first accept %+v: the repeated id within one call is a duplicate", got)
	}
	got = mustAccept(t, s, "a-2", "a-3")
	if !got[0].Duplicate || got[1].Duplicate {
		t.Fatalf("second accept %+v", got)
	}
	other := Alert("a-3")
	other.Rule = "Something else"
	acc, err := s.Accept(ctx, []alert.Alert{other})
	if err != nil || !acc[0].Duplicate || !acc[0].Conflict {
		t.Fatalf("same id, other content: %+v, %v", acc, err)
	}
	if n := len(entriesOf(t, s, store.AlertReceived)); n != 3 {
		t.Fatalf("%d alert.received, want 3", n)
	}
	dups := entriesOf(t, s, store.AlertDuplicate)
	if len(dups) != 3 || dups[2].Detail["stored_sha256"] == nil || dups[2].Detail["refused"] == nil {
		t.Fatalf("alert.duplicate entries %+v", dups)
	}
	for _, e := range entriesOf(t, s, store.AlertReceived) {
		if e.Actor != store.StoreActor || e.Detail["rule"] != "Terminal shell in container" {
			t.Fatalf("alert.received entry %+v", e)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil || st.InboxPending != 3 || st.JournalSeq != 6 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	MustVerify(t, s)
}

func testAcceptRejects(t *testing.T, h Harness) {
	s, _ := open(t, h, store.Options{})
	for _, id := range []string{"", "nul\x00id", "bad\xffutf8"} {
		if _, err := s.Accept(ctx, []alert.Alert{Alert(id)}); err == nil {
			t.Fatalf("alert id %q accepted", id)
		}
	}
	if got, err := s.Accept(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("accept nothing: %+v, %v", got, err)
	}
	if headSeq(t, s) != 0 {
		t.Fatal("a refused alert was journaled")
	}
}

func testClaimAndFinish(t *testing.T, h Harness) {
	c := NewClock()
	s, _ := open(t, h, store.Options{Now: c.Now})
	mustAccept(t, s, "a-1", "a-2", "a-3")
	items, err := s.ClaimAlerts(ctx, 2, time.Minute)
	if err != nil || len(items) != 2 || items[0].Alert.ID != "a-1" || items[1].Alert.ID != "a-2" || items[0].Attempts != 1 {
		t.Fatalf("first claim %+v, %v", items, err)
	}
	if items[0].Alert.Rule != "Terminal shell in container" || items[0].Alert.Field("evt.time") != "1740830400000000000" {
		t.Fatalf("claimed alert does not round-trip: %+v", items[0].Alert)
	}
	if items[0].ReceivedAt.IsZero() {
		t.Fatal("claimed alert has no receive time")
	}
	items, _ = s.ClaimAlerts(ctx, 10, time.Minute)
	if len(items) != 1 || items[0].Alert.ID != "a-3" {
		t.Fatalf("second claim %+v, want a-3 only (the others are leased)", items)
	}
	if err := s.FinishAlert(ctx, "a-1", store.Entry{Type: store.Note, AlertID: "a-1", Detail: map[string]any{"done": true}}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAlert(ctx, "a-1", store.Entry{Type: store.Note, AlertID: "a-1"}); err != nil {
		t.Fatal(err)
	}
	if n := len(entriesOf(t, s, store.Note)); n != 1 {
		t.Fatalf("finishing twice journaled %d notes, want 1", n)
	}
	if err := s.FinishAlert(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("finish unknown alert: %v", err)
	}
	if _, err := s.ClaimAlerts(ctx, 1, 0); err == nil {
		t.Fatal("claim with no lease accepted")
	}
	c.Add(2 * time.Minute)
	items, _ = s.ClaimAlerts(ctx, 10, time.Minute)
	if len(items) != 2 || items[0].Attempts != 2 {
		t.Fatalf("claim after lease expiry %+v", items)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.InboxProcessing != 2 || st.InboxPending != 0 || st.JournalSeq != 4 {
		t.Fatalf("stats %+v, %v", st, err)
	}
}

func testAcceptClaimed(t *testing.T, h Harness) {
	c := NewClock()
	s, _ := open(t, h, store.Options{Now: c.Now})
	mustAccept(t, s, "a-0")
	as := []alert.Alert{Alert("a-0"), Alert("a-1"), Alert("a-2")}
	acc, items, err := s.AcceptClaimed(ctx, as, time.Minute)
	if err != nil || len(acc) != 3 || !acc[0].Duplicate || len(items) != 2 {
		t.Fatalf("accept claimed: %+v %+v %v", acc, items, err)
	}
	if items[0].Incident == "" || items[0].Incident != items[1].Incident || items[0].Attempts != 1 {
		t.Fatalf("claimed items %+v: both alerts join one incident", items)
	}
	if n := len(entriesOf(t, s, store.IncidentOpened)); n != 1 {
		t.Fatalf("%d incident.opened", n)
	}
	got, _ := s.ClaimAlerts(ctx, 10, time.Minute)
	if len(got) != 1 || got[0].Alert.ID != "a-0" {
		t.Fatalf("claim after accept-claimed: %+v, want only a-0", got)
	}
	if _, _, err := s.AcceptClaimed(ctx, as, 0); err == nil {
		t.Fatal("accept claimed without a lease accepted")
	}
	MustVerify(t, s)
}

func testJournal(t *testing.T, h Harness) {
	c := NewClock()
	s, _ := open(t, h, store.Options{Now: c.Now})
	sum := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	in := []store.Entry{
		{Type: store.PlaybookMatched, AlertID: "a-1", Playbook: "contain", Actor: "engine", Detail: map[string]any{"n": 1.5, "s": "x\"\n<>"}},
		{Type: store.ActionSucceeded, AlertID: "a-1", Playbook: "contain", Action: "container.pause", SHA256: sum},
		{Type: store.Note, AlertID: "a-2", Detail: map[string]any{"text": "héllo\u2028"}},
	}
	out, err := s.Append(ctx, in...)
	if err != nil || len(out) != 3 {
		t.Fatalf("append: %+v, %v", out, err)
	}
	if out[0].Seq != 1 || out[0].PrevHash != store.GenesisHash || out[1].PrevHash != out[0].Hash || out[2].Seq != 3 {
		t.Fatalf("chain %+v", out)
	}
	c.Add(time.Hour)
	mid := c.Now()
	if _, err := s.Append(ctx, store.Entry{Type: store.Note, AlertID: "a-1"}); err != nil {
		t.Fatal(err)
	}
	all, err := s.Entries(ctx, store.Filter{})
	if err != nil || len(all) != 4 {
		t.Fatalf("entries %d, %v", len(all), err)
	}
	for i, e := range all {
		hash, err := store.HashEntry(e)
		if err != nil || hash != e.Hash {
			t.Fatalf("entry %d hashes to %s, stored %s (%v)", e.Seq, hash, e.Hash, err)
		}
		if i < 3 && (e.Hash != out[i].Hash || !e.Time.Equal(out[i].Time)) {
			t.Fatalf("entry %d read back %+v, appended %+v", e.Seq, e, out[i])
		}
		if i > 0 && e.Time.Before(all[i-1].Time) {
			t.Fatalf("time goes back at %d", e.Seq)
		}
	}
	if all[0].Detail["s"] != "x\"\n<>" || fmt.Sprint(all[0].Detail["n"]) != "1.5" || all[1].SHA256 != sum {
		t.Fatalf("fields do not round-trip: %+v", all[:2])
	}
	for _, tc := range []struct {
		name string
		f    store.Filter
		want []int64
	}{
		{"alert", store.Filter{AlertID: "a-1"}, []int64{1, 2, 4}},
		{"types", store.Filter{Types: []store.EntryType{store.Note, store.ActionSucceeded}}, []int64{2, 3, 4}},
		{"after", store.Filter{AfterSeq: 2}, []int64{3, 4}},
		{"limit", store.Filter{Limit: 2}, []int64{1, 2}},
		{"since", store.Filter{Since: mid}, []int64{4}},
		{"combined", store.Filter{AlertID: "a-1", AfterSeq: 1, Limit: 1}, []int64{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := s.Entries(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, e := range es {
				got = append(got, e.Seq)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("seqs %v, want %v", got, tc.want)
			}
		})
	}
	n := 0
	for _, err := range s.Scan(ctx, store.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if n == 2 {
			break
		}
	}
	head, err := s.Head(ctx)
	if err != nil || head.Seq != 4 || head.Hash != all[3].Hash || !head.Time.Equal(all[3].Time) {
		t.Fatalf("head %+v, %v", head, err)
	}
	rep := MustVerify(t, s)
	if rep.Entries != 4 || rep.Head.Seq != 4 || rep.Head.Hash != head.Hash {
		t.Fatalf("report %+v", rep)
	}
}

func testAppendRejects(t *testing.T, h Harness) {
	s, _ := open(t, h, store.Options{})
	for _, e := range []store.Entry{
		{},
		{Type: store.Note, SHA256: "abc"},
		{Type: store.Note, AlertID: "a\x00"},
		{Type: store.Note, Detail: map[string]any{"f": func() {}}},
	} {
		if _, err := s.Append(ctx, store.Entry{Type: store.Note}, e); err == nil {
			t.Fatalf("append %+v succeeded", e)
		}
	}
	if headSeq(t, s) != 0 {
		t.Fatal("a refused append left entries")
	}
}

func testIncidents(t *testing.T, h Harness) {
	c := NewClock()
	s, _ := open(t, h, store.Options{Now: c.Now, IncidentWindow: 10 * time.Minute})
	at := c.Now()
	id1, created, err := s.Incident(ctx, "c1", "r", at)
	if err != nil || !created || id1 == "" {
		t.Fatalf("open: %s %v %v", id1, created, err)
	}
	id, created, _ := s.Incident(ctx, "c1", "r", at.Add(9*time.Minute))
	if id != id1 || created {
		t.Fatalf("within the window: %s %v", id, created)
	}
	id, created, _ = s.Incident(ctx, "c1", "r", at.Add(18*time.Minute)) // within 10m of the last alert
	if id != id1 || created {
		t.Fatalf("within the window of the last alert: %s %v", id, created)
	}
	other, created, _ := s.Incident(ctx, "c2", "r", at)
	if other == id1 || !created {
		t.Fatal("another container joined the incident")
	}
	late, created, _ := s.Incident(ctx, "c1", "r", at.Add(time.Hour))
	if late == id1 || !created {
		t.Fatal("an alert past the window joined the incident")
	}
	info, err := s.GetIncident(ctx, id1)
	if err != nil || info.Alerts != 3 || info.ContainerID != "c1" || info.State != store.IncidentStateOpen || !info.LastSeen.Equal(at.Add(18*time.Minute)) {
		t.Fatalf("incident %+v, %v", info, err)
	}
	changed, err := s.SetIncidentState(ctx, late, store.IncidentStateReleased, store.Entry{Type: store.IncidentReleased})
	if err != nil || !changed {
		t.Fatalf("release: %v %v", changed, err)
	}
	if changed, _ := s.SetIncidentState(ctx, late, store.IncidentStateReleased, store.Entry{Type: store.IncidentReleased}); changed {
		t.Fatal("released twice")
	}
	if n := len(entriesOf(t, s, store.IncidentReleased)); n != 1 {
		t.Fatalf("%d incident.released", n)
	}
	again, created, _ := s.Incident(ctx, "c1", "r", at.Add(time.Hour+time.Minute))
	if again == late || !created {
		t.Fatal("a released incident was joined")
	}
	if _, err := s.SetIncidentState(ctx, "inc-nope", store.IncidentStateReleased); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("release unknown: %v", err)
	}
	if _, err := s.SetIncidentState(ctx, late, "bogus"); err == nil {
		t.Fatal("bogus state accepted")
	}
	if _, err := s.GetIncident(ctx, "inc-nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	refs, err := s.IncidentsFor(ctx, []store.IncidentQuery{
		{ContainerID: "c3", Rule: "r", At: at}, {ContainerID: "c3", Rule: "r", At: at.Add(time.Minute)},
		{ContainerID: "c3", Rule: "r", At: at.Add(24 * time.Hour), ReceivedAt: at.Add(2 * time.Minute)}, // skewed: received time groups
	})
	if err != nil || !refs[0].Created || refs[1].ID != refs[0].ID || refs[1].Created || refs[2].ID != refs[0].ID {
		t.Fatalf("incidents for %+v, %v", refs, err)
	}
	list, err := s.ListIncidents(ctx, store.IncidentFilter{State: store.IncidentStateOpen})
	if err != nil || len(list) != 4 {
		t.Fatalf("open incidents %d, %v", len(list), err)
	}
	for i := 1; i < len(list); i++ {
		if list[i].OpenedAt.After(list[i-1].OpenedAt) {
			t.Fatalf("not newest first: %+v", list)
		}
	}
	if list, _ := s.ListIncidents(ctx, store.IncidentFilter{Limit: 2}); len(list) != 2 {
		t.Fatalf("limit: %d", len(list))
	}
	if n := len(entriesOf(t, s, store.IncidentOpened)); n != 5 {
		t.Fatalf("%d incident.opened, want 5", n)
	}
	MustVerify(t, s)
}

func testTransitions(t *testing.T, h Harness) {
	all := []store.ActionState{store.ActionStatePlanned, store.ActionStateStarted, store.ActionStateSucceeded,
		store.ActionStateFailed, store.ActionStateSkipped, store.ActionStateHeld}
	allowed := map[store.ActionState][]store.ActionState{
		"":                         all,
		store.ActionStatePlanned:   {store.ActionStateStarted, store.ActionStateSucceeded, store.ActionStateFailed, store.ActionStateSkipped, store.ActionStateHeld},
		store.ActionStateHeld:      {store.ActionStateFailed, store.ActionStateSkipped},
		store.ActionStateStarted:   {store.ActionStateSucceeded, store.ActionStateFailed, store.ActionStateSkipped},
		store.ActionStateSucceeded: nil,
		store.ActionStateFailed:    nil,
		store.ActionStateSkipped:   nil,
	}
	s, _ := open(t, h, store.Options{})
	n := 0
	for from, ok := range allowed {
		for _, to := range all {
			n++
			want := false
			for _, a := range ok {
				want = want || a == to
			}
			t.Run(string(from)+"→"+string(to), func(t *testing.T) {
				key := store.ActionKey{AlertID: "a", Playbook: "pb", Index: n}
				if from != "" {
					if _, applied, err := s.RecordAction(ctx, store.ActionUpdate{Key: key, Action: "container.pause", State: from}); err != nil || !applied {
						t.Fatalf("set up %s: %v %v", from, applied, err)
					}
				}
				seq := headSeq(t, s)
				run, applied, err := s.RecordAction(ctx, store.ActionUpdate{Key: key, Action: "container.pause", State: to,
					Result: &actions.Result{Note: "n"}}, store.Entry{Type: store.Note, AlertID: "a"})
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
	if _, _, err := s.RecordAction(ctx, store.ActionUpdate{Key: store.ActionKey{AlertID: "a", Playbook: "pb"}, Action: "x", State: "bogus"}); err == nil {
		t.Fatal("bogus state accepted")
	}
	if _, _, err := s.RecordAction(ctx, store.ActionUpdate{Key: store.ActionKey{Index: -1}, Action: "x", State: store.ActionStatePlanned}); err == nil {
		t.Fatal("bad key accepted")
	}
	MustVerify(t, s)
}

func testClaimAction(t *testing.T, h Harness) {
	s, _ := open(t, h, store.Options{})
	key := store.ActionKey{AlertID: "a-1", Playbook: "contain", Index: 2}
	started := store.Entry{Type: store.ActionStarted, AlertID: "a-1", Playbook: "contain", Action: "container.pause"}
	c, err := s.ClaimAction(ctx, store.ClaimRequest{Key: key, Action: "container.pause", Incident: "inc-1"}, started)
	if err != nil || c.Outcome != store.ClaimRun || c.Run.State != store.ActionStateStarted || c.Run.Attempts != 1 || c.Run.Incident != "inc-1" {
		t.Fatalf("first claim %+v, %v", c, err)
	}
	c, err = s.ClaimAction(ctx, store.ClaimRequest{Key: key, Action: "container.pause"}, started)
	if err != nil || c.Outcome != store.ClaimBusy {
		t.Fatalf("second claim by the same owner %+v, %v", c, err)
	}
	res := &actions.Result{Note: "paused", Detail: map[string]any{"id": "abc"}}
	if _, applied, err := s.RecordAction(ctx, store.ActionUpdate{Key: key, State: store.ActionStateSucceeded, Result: res},
		store.Entry{Type: store.ActionSucceeded, AlertID: "a-1"}); err != nil || !applied {
		t.Fatalf("record succeeded: %v %v", applied, err)
	}
	c, _ = s.ClaimAction(ctx, store.ClaimRequest{Key: key, Action: "container.pause"}, started)
	if c.Outcome != store.ClaimDone || c.Run.Result == nil || c.Run.Result.Note != "paused" {
		t.Fatalf("claim of a finished action %+v", c)
	}
	if n := len(entriesOf(t, s, store.ActionStarted)); n != 1 {
		t.Fatalf("%d action.started entries, want 1", n)
	}
	if _, err := s.ClaimAction(ctx, store.ClaimRequest{Key: store.ActionKey{AlertID: "a-2", Playbook: "p"}}); err == nil {
		t.Fatal("claim of a new run without an action name succeeded")
	}
	runs, err := s.ActionsFor(ctx, "a-1")
	if err != nil || len(runs) != 1 || runs[0].Result.Detail["id"] != "abc" || runs[0].StartedAt.IsZero() {
		t.Fatalf("actions of a-1: %+v, %v", runs, err)
	}
	if _, err := s.GetAction(ctx, store.ActionKey{AlertID: "x", Playbook: "y"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown run: %v", err)
	}
	MustVerify(t, s)
}

func testClaimBudget(t *testing.T, h Harness) {
	c := NewClock()
	s, _ := open(t, h, store.Options{Now: c.Now})
	budget := store.Budget{Max: 2, Window: 10 * time.Minute}
	claim := func(i int, destructive bool) store.ClaimOutcome {
		t.Helper()
		cl, err := s.ClaimAction(ctx, store.ClaimRequest{Key: store.ActionKey{AlertID: "a", Playbook: "pb", Index: i},
			Action: "container.kill", Destructive: destructive, Budget: budget})
		if err != nil {
			t.Fatal(err)
		}
		return cl.Outcome
	}
	for i, want := range []store.ClaimOutcome{store.ClaimRun, store.ClaimRun, store.ClaimOverBudget, store.ClaimOverBudget} {
		if got := claim(i, true); got != want {
			t.Fatalf("destructive claim %d: %s, want %s", i, got, want)
		}
	}
	if got := claim(10, false); got != store.ClaimRun {
		t.Fatalf("non-destructive claim over budget: %s", got)
	}
	if _, err := s.GetAction(ctx, store.ActionKey{AlertID: "a", Playbook: "pb", Index: 2}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an over-budget claim created a run: %v", err)
	}
	c.Add(11 * time.Minute)
	if got := claim(2, true); got != store.ClaimRun {
		t.Fatalf("claim after the window: %s", got)
	}
}

// testInDoubt: a run started by an owner that is gone is in doubt; the
// next owner can take it over (RecordAction started) or fail it.
func testInDoubt(t *testing.T, h Harness) {
	loc := h.Fresh(t)
	s, err := h.Open(t, loc, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k1 := store.ActionKey{AlertID: "a", Playbook: "pb", Index: 0}
	k2 := store.ActionKey{AlertID: "a", Playbook: "pb", Index: 1}
	for _, k := range []store.ActionKey{k1, k2} {
		if c, err := s.ClaimAction(ctx, store.ClaimRequest{Key: k, Action: "container.pause"}); err != nil || c.Outcome != store.ClaimRun {
			t.Fatal(c, err)
		}
	}
	s.Close()
	s = reopen(t, h, loc, store.Options{})
	un, err := s.UnfinishedActions(ctx)
	if err != nil || len(un) != 2 || !un[0].InDoubt || !un[1].InDoubt {
		t.Fatalf("unfinished after the owner left: %+v, %v", un, err)
	}
	if c, _ := s.ClaimAction(ctx, store.ClaimRequest{Key: k1, Action: "container.pause"}); c.Outcome != store.ClaimInDoubt {
		t.Fatalf("claim after the owner left: %s", c.Outcome)
	}
	run, applied, err := s.RecordAction(ctx, store.ActionUpdate{Key: k1, State: store.ActionStateStarted},
		store.Entry{Type: store.ActionStarted, Detail: map[string]any{"take_over": true}})
	if err != nil || !applied || run.Attempts != 2 || run.InDoubt {
		t.Fatalf("take-over: %+v %v %v", run, applied, err)
	}
	if c, _ := s.ClaimAction(ctx, store.ClaimRequest{Key: k1, Action: "container.pause"}); c.Outcome != store.ClaimBusy {
		t.Fatalf("after take-over: %s", c.Outcome)
	}
	if _, applied, _ := s.RecordAction(ctx, store.ActionUpdate{Key: k1, State: store.ActionStateStarted}); applied {
		t.Fatal("took over a run this owner is running")
	}
	if _, applied, _ := s.RecordAction(ctx, store.ActionUpdate{Key: k2, State: store.ActionStateFailed, Error: "in doubt after restart"}); !applied {
		t.Fatal("could not fail an in-doubt run")
	}
	run, _ = s.GetAction(ctx, k2)
	if run.State != store.ActionStateFailed || run.Error != "in doubt after restart" {
		t.Fatalf("failed in-doubt run: %+v", run)
	}
	MustVerify(t, s)
}

func testRecordActionEnqueues(t *testing.T, h Harness) {
	s, _ := open(t, h, store.Options{})
	key := store.ActionKey{AlertID: "a", Playbook: "pb", Index: 0}
	u := store.ActionUpdate{Key: key, Action: "slack.notify", State: store.ActionStateSucceeded,
		Enqueue: []store.Message{{Key: "slack.notify/" + key.String(), Kind: "slack", Target: "#ir", Payload: []byte(`{"text":"hi"}`)}}}
	for range 2 {
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
	if _, err := s.GetAction(ctx, u.Key); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("run recorded although its message was refused: %v", err)
	}
}

func testApply(t *testing.T, h Harness) {
	s, _ := open(t, h, store.Options{})
	mustAccept(t, s, "a-1")
	k := func(i int) store.ActionKey { return store.ActionKey{AlertID: "a-1", Playbook: "pb", Index: i} }
	b := store.Batch{
		Entries: []store.Entry{{Type: store.PlaybookMatched, AlertID: "a-1", Playbook: "pb"}},
		Actions: []store.ActionUpdate{
			{Key: k(0), Action: "container.pause", State: store.ActionStateSkipped, Entries: []store.Entry{{Type: store.ActionSkippedDryRun, AlertID: "a-1"}}},
			{Key: k(1), Action: "slack.notify", State: store.ActionStateSucceeded,
				Enqueue: []store.Message{{Key: "slack.notify/" + k(1).String(), Kind: "slack"}},
				Entries: []store.Entry{{Type: store.ActionSucceeded, AlertID: "a-1"}}},
			{Key: k(0), Action: "container.pause", State: store.ActionStateStarted}, // not allowed after skipped
		},
		Finish: []string{"a-1"},
	}
	res, err := s.Apply(ctx, b)
	if err != nil || len(res.Runs) != 3 || !res.Applied[0] || !res.Applied[1] || res.Applied[2] || res.Runs[2].State != store.ActionStateSkipped {
		t.Fatalf("apply %+v, %v", res, err)
	}
	if headSeq(t, s) != 4 {
		t.Fatalf("journal at %d, want 4 (received, matched, skipped, succeeded)", headSeq(t, s))
	}
	if got, _ := s.ClaimAlerts(ctx, 10, time.Minute); len(got) != 0 {
		t.Fatalf("finished alert claimed: %+v", got)
	}
	b.Entries = nil
	res, err = s.Apply(ctx, b)
	if err != nil || res.Applied[0] || res.Applied[1] || headSeq(t, s) != 4 {
		t.Fatalf("replay applied again: %+v, %v, journal at %d", res, err, headSeq(t, s))
	}
	if items, _ := s.ClaimOutbox(ctx, 10, time.Minute); len(items) != 1 {
		t.Fatalf("outbox holds %d, want 1", len(items))
	}
	bad := store.Batch{
		Entries: []store.Entry{{Type: store.Note}},
		Actions: []store.ActionUpdate{{Key: k(5), Action: "container.kill", State: store.ActionStateSucceeded}},
		Finish:  []string{"no-such-alert"},
	}
	if _, err := s.Apply(ctx, bad); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("batch finishing an unknown alert: %v", err)
	}
	if _, err := s.GetAction(ctx, k(5)); !errors.Is(err, store.ErrNotFound) || headSeq(t, s) != 4 {
		t.Fatalf("a failed batch left changes: %v, journal at %d", err, headSeq(t, s))
	}
	MustVerify(t, s)
}

func testApprovals(t *testing.T, h Harness) {
	c := NewClock()
	s, _ := open(t, h, store.Options{Now: c.Now})
	k := func(i int) store.ActionKey { return store.ActionKey{AlertID: "a", Playbook: "pb", Index: i} }
	hold := func(t *testing.T, i int) store.Approval {
		t.Helper()
		a, created, err := s.HoldAction(ctx, store.Hold{Key: k(i), Action: "container.pause", Incident: "inc-1",
			Deadline: c.Now().Add(10 * time.Minute), Detail: map[string]any{"approvers": []any{"U1"}}},
			store.Entry{Type: store.ActionHeldForApproval, AlertID: "a"})
		if err != nil || !created || a.State != store.ApprovalStatePending {
			t.Fatalf("hold %d: %+v %v %v", i, a, created, err)
		}
		return a
	}
	for i, tc := range []struct {
		name      string
		decision  store.Decision
		wantRun   store.ActionState
		wantClaim store.ClaimOutcome
	}{
		{"granted", store.Decision{State: store.ApprovalStateGranted, By: "slack:U1 (jane)"}, store.ActionStatePlanned, store.ClaimRun},
		{"denied", store.Decision{State: store.ApprovalStateDenied, By: "slack:U1 (jane)"}, store.ActionStateSkipped, store.ClaimDone},
		{"expired, abort", store.Decision{State: store.ApprovalStateExpired, By: "riposte"}, store.ActionStateSkipped, store.ClaimDone},
		{"expired, proceed", store.Decision{State: store.ApprovalStateExpired, Proceed: true, By: "riposte"}, store.ActionStatePlanned, store.ClaimRun},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := hold(t, i)
			again, created, err := s.HoldAction(ctx, store.Hold{Key: k(i), Action: "container.pause", Deadline: c.Now()})
			if err != nil || created || again.ID != a.ID {
				t.Fatalf("holding again: %+v %v %v", again, created, err)
			}
			if cl, _ := s.ClaimAction(ctx, store.ClaimRequest{Key: k(i), Action: "container.pause"}); cl.Outcome != store.ClaimHeld {
				t.Fatalf("claim of a held action: %s", cl.Outcome)
			}
			got, decided, err := s.DecideApproval(ctx, a.ID, tc.decision, store.Entry{Type: store.ApprovalGranted})
			if err != nil || !decided || got.State != tc.decision.State || got.DecidedBy != tc.decision.By || got.DecidedAt.IsZero() {
				t.Fatalf("decide: %+v %v %v", got, decided, err)
			}
			if _, decided, _ := s.DecideApproval(ctx, a.ID, store.Decision{State: store.ApprovalStateDenied}); decided {
				t.Fatal("decided twice")
			}
			run, _ := s.GetAction(ctx, k(i))
			if run.State != tc.wantRun {
				t.Fatalf("run is %s, want %s", run.State, tc.wantRun)
			}
			if cl, _ := s.ClaimAction(ctx, store.ClaimRequest{Key: k(i), Action: "container.pause"}); cl.Outcome != tc.wantClaim {
				t.Fatalf("claim after decision: %s, want %s", cl.Outcome, tc.wantClaim)
			}
			stored, err := s.GetApproval(ctx, a.ID)
			if err != nil || stored.State != tc.decision.State || stored.Detail["approvers"] == nil || stored.Incident != "inc-1" {
				t.Fatalf("stored approval %+v, %v", stored, err)
			}
		})
	}
	if _, _, err := s.DecideApproval(ctx, "apr-nope", store.Decision{State: store.ApprovalStateGranted}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("decide unknown approval: %v", err)
	}
	if _, err := s.GetApproval(ctx, "apr-nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown approval: %v", err)
	}
	if _, _, err := s.DecideApproval(ctx, "x", store.Decision{State: store.ApprovalStatePending}); err == nil {
		t.Fatal("pending accepted as a decision")
	}
	done := store.ActionKey{AlertID: "b", Playbook: "pb"}
	if _, _, err := s.RecordAction(ctx, store.ActionUpdate{Key: done, Action: "container.pause", State: store.ActionStateSucceeded}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.HoldAction(ctx, store.Hold{Key: done, Deadline: c.Now()}); !errors.Is(err, store.ErrState) {
		t.Fatalf("holding a finished run: %v", err)
	}
	if _, _, err := s.HoldAction(ctx, store.Hold{Key: k(99), Action: "x"}); err == nil {
		t.Fatal("hold without a deadline accepted")
	}
	a1 := hold(t, 1000)
	a2 := hold(t, 1001)
	pending, err := s.PendingApprovals(ctx)
	if err != nil || len(pending) != 2 || pending[0].ID != a1.ID || pending[1].ID != a2.ID {
		t.Fatalf("pending %+v, %v", pending, err)
	}
	if st, _ := s.Stats(ctx); st.ApprovalsPending != 2 {
		t.Fatalf("stats: %d approvals pending", st.ApprovalsPending)
	}
	MustVerify(t, s)
}

func testOutbox(t *testing.T, h Harness) {
	c := NewClock()
	s, _ := open(t, h, store.Options{Now: c.Now})
	msg := func(key string) store.Message {
		return store.Message{Key: key, Kind: "slack", Target: "#ir", Incident: "inc-1", Payload: []byte(`{"text":"` + key + `"}`)}
	}
	enq, err := s.Enqueue(ctx, []store.Message{msg("m1"), msg("m2")}, store.Entry{Type: store.Note, Detail: map[string]any{"queued": 2}})
	if err != nil || len(enq) != 2 || enq[0].Duplicate || enq[0].ID == enq[1].ID {
		t.Fatalf("enqueue %+v, %v", enq, err)
	}
	again, err := s.Enqueue(ctx, []store.Message{msg("m1")}, store.Entry{Type: store.Note})
	if err != nil || !again[0].Duplicate || again[0].ID != enq[0].ID {
		t.Fatalf("enqueue again %+v, %v", again, err)
	}
	if n := len(entriesOf(t, s, store.Note)); n != 1 {
		t.Fatalf("a duplicate enqueue journaled: %d notes", n)
	}
	if st, _ := s.Stats(ctx); st.OutboxPending != 2 {
		t.Fatalf("stats: %d pending messages", st.OutboxPending)
	}
	later := c.Now().Add(time.Hour)
	if _, err := s.Enqueue(ctx, []store.Message{{Key: "m3", Kind: "email", NotBefore: later}}); err != nil {
		t.Fatal(err)
	}
	items, err := s.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil || len(items) != 2 || items[0].Key != "m1" || items[0].Attempts != 1 || items[0].State != store.OutboxLeased ||
		items[0].Target != "#ir" || string(items[0].Payload) != `{"text":"m1"}` || items[0].CreatedAt.IsZero() {
		t.Fatalf("claim %+v, %v", items, err)
	}
	if more, _ := s.ClaimOutbox(ctx, 10, time.Minute); len(more) != 0 {
		t.Fatalf("leased messages claimed again: %+v", more)
	}
	for range 2 {
		if err := s.AckOutbox(ctx, items[0].ID, store.Entry{Type: store.NotificationSent}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(entriesOf(t, s, store.NotificationSent)); n != 1 {
		t.Fatalf("acked twice, %d entries", n)
	}
	retry := c.Now().Add(store.Backoff(items[1].Attempts, 30*time.Second, 10*time.Minute))
	if err := s.FailOutbox(ctx, items[1].ID, retry, "slack: 503"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ClaimOutbox(ctx, 10, time.Minute); len(got) != 0 {
		t.Fatalf("claimed before the retry time: %+v", got)
	}
	c.Add(31 * time.Second)
	got, _ := s.ClaimOutbox(ctx, 10, time.Minute)
	if len(got) != 1 || got[0].Key != "m2" || got[0].Attempts != 2 || got[0].LastError != "slack: 503" {
		t.Fatalf("claim after the retry time %+v", got)
	}
	if err := s.FailOutbox(ctx, got[0].ID, time.Time{}, "slack: channel_not_found"); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Hour)
	got, _ = s.ClaimOutbox(ctx, 10, time.Minute)
	if len(got) != 1 || got[0].Key != "m3" {
		t.Fatalf("a dead message came back, or the delayed one did not: %+v", got)
	}
	c.Add(2 * time.Minute)
	got, _ = s.ClaimOutbox(ctx, 10, time.Minute)
	if len(got) != 1 || got[0].Key != "m3" || got[0].Attempts != 2 {
		t.Fatalf("after lease expiry %+v", got)
	}
	if err := s.AckOutbox(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ack unknown: %v", err)
	}
	for _, bad := range [][]store.Message{{{Kind: "slack"}}, {{Key: "k"}}, {{Key: "k", Kind: "x", Payload: []byte("{")}}} {
		if _, err := s.Enqueue(ctx, bad); err == nil {
			t.Fatalf("enqueue %+v succeeded", bad)
		}
	}
	MustVerify(t, s)
}

// testOutboxFold throttles one key: the first message goes out at once,
// the next waits for the interval, later ones join it (latest payload,
// count), one that comes while the waiting one is leased waits for the
// one after, a new key is independent, and the state survives a reopen.
func testOutboxFold(t *testing.T, h Harness) {
	c := NewClock()
	s, loc := open(t, h, store.Options{Now: c.Now})
	const every = time.Minute
	msg := func(key, fold string) store.Message {
		return store.Message{Key: key, Kind: "slack.notify", Incident: fold, Payload: []byte(`{"text":"` + key + `"}`),
			Fold: &store.Fold{Key: "slack.notify/" + fold, Every: every,
				Held: store.Entry{Type: store.NotificationThrottled, AlertID: key, Action: "slack.notify"}}}
	}
	enqueue := func(m store.Message) store.Enqueued {
		t.Helper()
		got, err := s.Enqueue(ctx, []store.Message{m})
		if err != nil {
			t.Fatal(err)
		}
		return got[0]
	}
	claim := func() []store.OutboxItem {
		t.Helper()
		items, err := s.ClaimOutbox(ctx, 10, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return items
	}
	first := enqueue(msg("a1", "inc-1"))
	if first.Held || first.Folded {
		t.Fatalf("the first message was held: %+v", first)
	}
	second := enqueue(msg("a2", "inc-1"))
	if !second.Held || second.Folded || !near(second.Due, c.Now().Add(every)) {
		t.Fatalf("the second message within the interval: %+v", second)
	}
	for _, k := range []string{"a3", "a4"} {
		if e := enqueue(msg(k, "inc-1")); !e.Folded || e.ID != second.ID {
			t.Fatalf("%s did not join the waiting message %d: %+v", k, second.ID, e)
		}
	}
	if e := enqueue(msg("b1", "inc-2")); e.Held {
		t.Fatalf("another incident's first message was held: %+v", e)
	}
	for _, k := range []string{"a1", "a3"} {
		if again := enqueue(msg(k, "inc-1")); !again.Duplicate {
			t.Fatalf("a repeated key %s folded: %+v", k, again)
		}
	}
	items := claim()
	if len(items) != 2 || items[0].Key != "a1" || items[0].Folded != 0 || items[1].Key != "b1" {
		t.Fatalf("claim before the interval: %+v", items)
	}
	for _, it := range items {
		if err := s.AckOutbox(ctx, it.ID); err != nil {
			t.Fatal(err)
		}
	}
	// Restart mid-interval: the waiting message and its count are kept.
	s.Close()
	s = reopen(t, h, loc, store.Options{Now: c.Now})
	c.Add(every)
	items = claim()
	if len(items) != 1 || items[0].ID != second.ID || items[0].Folded != 3 || string(items[0].Payload) != `{"text":"a4"}` {
		t.Fatalf("claim after the interval: %+v", items)
	}
	// The waiting one is leased: the next waits for the one after it.
	next := enqueue(msg("a5", "inc-1"))
	if !next.Held || next.Folded || next.ID == second.ID || !near(next.Due, c.Now().Add(every)) {
		t.Fatalf("a message while the update is leased: %+v", next)
	}
	if err := s.AckOutbox(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	// Quiet for longer than the interval: the next goes out at once.
	c.Add(3 * every)
	if items := claim(); len(items) != 1 || items[0].ID != next.ID || items[0].Folded != 1 {
		t.Fatalf("claim of the second update: %+v", items)
	}
	if e := enqueue(msg("a6", "inc-1")); e.Held {
		t.Fatalf("a message after a quiet interval was held: %+v", e)
	}
	held := entriesOf(t, s, store.NotificationThrottled)
	if len(held) != 4 {
		t.Fatalf("%d notification.throttled entries, want 4 (a2..a5)", len(held))
	}
	if held[2].AlertID != "a4" || fmt.Sprint(held[2].Detail["outbox_id"]) != fmt.Sprint(second.ID) || fmt.Sprint(held[2].Detail["folded"]) != "3" {
		t.Fatalf("the entry of a4: %+v", held[2])
	}
	for _, bad := range []*store.Fold{{Every: every}, {Key: "k"}, {Key: "k", Every: -1}} {
		m := msg("bad", "inc-3")
		m.Fold = bad
		if _, err := s.Enqueue(ctx, []store.Message{m}); err == nil {
			t.Fatalf("enqueue with fold %+v succeeded", bad)
		}
	}
	MustVerify(t, s)
}

// testOutboxFoldConcurrent: messages of one fold key recorded at once by
// several writers (two handles, as two replicas, where the backend is
// shared) yield exactly one message sent at once and one waiting message
// that stands for all the others, each journaled once.
func testOutboxFoldConcurrent(t *testing.T, h Harness) {
	const writers, per = 4, 25
	c := NewClock()
	loc := h.Fresh(t)
	handles := []store.Backend{reopen(t, h, loc, store.Options{Now: c.Now})}
	if h.Shared {
		handles = append(handles, reopen(t, h, loc, store.Options{Now: c.Now}))
	}
	fold := func(key string) *store.Fold {
		return &store.Fold{Key: "slack.notify/inc-1", Every: time.Hour, Held: store.Entry{Type: store.NotificationThrottled, AlertID: key}}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*per)
	for w := range writers {
		s := handles[w%len(handles)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				key := fmt.Sprintf("w%d-%d", w, i)
				u := store.ActionUpdate{Key: store.ActionKey{AlertID: key, Playbook: "pb"}, Action: "slack.notify", State: store.ActionStateSucceeded,
					Enqueue: []store.Message{{Key: key, Kind: "slack.notify", Incident: "inc-1", Payload: []byte(`{"k":"` + key + `"}`), Fold: fold(key)}}}
				if _, err := s.Apply(ctx, store.Batch{Actions: []store.ActionUpdate{u}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	now, err := handles[0].ClaimOutbox(ctx, 100, time.Minute)
	if err != nil || len(now) != 1 || now[0].Folded != 0 {
		t.Fatalf("due at once: %+v, %v; want the one first message", now, err)
	}
	if err := handles[0].AckOutbox(ctx, now[0].ID); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	later, err := handles[0].ClaimOutbox(ctx, 100, time.Minute)
	if err != nil || len(later) != 1 || later[0].Folded != writers*per-1 {
		t.Fatalf("due after the interval: %+v, %v; want one message standing for %d", later, err, writers*per-1)
	}
	if held := entriesOf(t, handles[0], store.NotificationThrottled); len(held) != writers*per-1 {
		t.Fatalf("%d notification.throttled entries, want %d", len(held), writers*per-1)
	}
	MustVerify(t, handles[0])
}

// near: within a millisecond (the test clock ticks a microsecond a read).
func near(a, b time.Time) bool { return a.Sub(b).Abs() < time.Millisecond }

func testKV(t *testing.T, h Harness) {
	s, _ := open(t, h, store.Options{})
	if err := s.Put(ctx, "ns", "k", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "ns", "k", []byte(`{"a":2}`)); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(ctx, "ns", "k"); err != nil || !ok || string(v) != `{"a":2}` {
		t.Fatalf("get %s %v %v", v, ok, err)
	}
	if _, ok, err := s.Get(ctx, "ns", "other"); err != nil || ok {
		t.Fatalf("get missing: %v %v", ok, err)
	}
	if err := s.Put(ctx, "ns", "k", []byte("\xff")); err == nil {
		t.Fatal("invalid UTF-8 value accepted")
	}
}

func testNonces(t *testing.T, h Harness) {
	c := NewClock()
	b, _ := open(t, h, store.Options{Now: c.Now})
	s, ok := b.(store.Nonces)
	if !ok {
		t.Skip("backend keeps no nonces (callers use an in-memory cache)")
	}
	exp := c.Now().Add(5 * time.Minute)
	if first, err := s.FirstUse(ctx, "slack", "k1", exp); err != nil || !first {
		t.Fatalf("first use: %v %v", first, err)
	}
	if first, err := s.FirstUse(ctx, "slack", "k1", exp); err != nil || first {
		t.Fatalf("replay: %v %v", first, err)
	}
	if first, _ := s.FirstUse(ctx, "other", "k1", exp); !first {
		t.Fatal("namespaces are not apart")
	}
	c.Add(6 * time.Minute)
	if first, _ := s.FirstUse(ctx, "slack", "k1", c.Now().Add(5*time.Minute)); !first {
		t.Fatal("an expired key is still refused")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := 0
	for range 8 {
		wg.Go(func() {
			first, err := s.FirstUse(ctx, "slack", "race", c.Now().Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if first {
				mu.Lock()
				firsts++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firsts != 1 {
		t.Fatalf("%d concurrent callers were first, want 1", firsts)
	}
	if _, err := s.FirstUse(ctx, "", "k", exp); err == nil {
		t.Fatal("empty namespace accepted")
	}
}

func testPrune(t *testing.T, h Harness) {
	c := NewClock()
	s, _ := open(t, h, store.Options{Now: c.Now, DuplicateWindow: time.Hour})
	mustAccept(t, s, "old", "open")
	if _, _, err := s.RecordAction(ctx, store.ActionUpdate{Key: store.ActionKey{AlertID: "old", Playbook: "pb"}, Action: "container.pause", State: store.ActionStateSucceeded}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.HoldAction(ctx, store.Hold{Key: store.ActionKey{AlertID: "old", Playbook: "pb", Index: 1}, Action: "container.kill", Deadline: c.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAlert(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	enq, err := s.Enqueue(ctx, []store.Message{{Key: "m", Kind: "slack"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AckOutbox(ctx, enq[0].ID); err != nil {
		t.Fatal(err)
	}
	fold := &store.Fold{Key: "slack.notify/inc-1", Every: time.Minute}
	folded, err := s.Enqueue(ctx, []store.Message{{Key: "f1", Kind: "slack", Fold: fold}, {Key: "f2", Kind: "slack", Fold: fold}})
	if err != nil || !folded[1].Held {
		t.Fatalf("enqueue folded: %+v, %v", folded, err)
	}
	for _, e := range folded {
		if err := s.AckOutbox(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	seq := headSeq(t, s)
	c.Add(2 * time.Hour)
	p, err := s.Prune(ctx)
	if err != nil || p.Alerts != 1 || p.Outbox != 3 {
		t.Fatalf("prune %+v, %v", p, err)
	}
	for ns, key := range map[string]string{store.FoldNS: fold.Key, store.FoldedNS: fmt.Sprint(folded[1].ID)} {
		if _, ok, err := s.Get(ctx, ns, key); err != nil || ok {
			t.Fatalf("fold state %s/%s survived the prune of its messages: %v, %v", ns, key, ok, err)
		}
	}
	if _, err := s.GetAction(ctx, store.ActionKey{AlertID: "old", Playbook: "pb"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pruned alert's action run: %v", err)
	}
	if ap, _ := s.PendingApprovals(ctx); len(ap) != 0 {
		t.Fatalf("pruned alert's approval still there: %+v", ap)
	}
	if headSeq(t, s) != seq {
		t.Fatal("prune touched the journal")
	}
	got := mustAccept(t, s, "old", "open")
	if got[0].Duplicate || !got[1].Duplicate {
		t.Fatalf("after prune: %+v", got)
	}
	MustVerify(t, s)
}

// testReopen: the chain continues across a close and open.
func testReopen(t *testing.T, h Harness) {
	loc := h.Fresh(t)
	s, err := h.Open(t, loc, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAccept(t, s, "a-1", "a-2")
	head, _ := s.Head(ctx)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Append(ctx, store.Entry{Type: store.Note}); err == nil {
		t.Fatal("append after close succeeded")
	}
	if _, err := s.Accept(ctx, []alert.Alert{Alert("a-9")}); err == nil {
		t.Fatal("accept after close succeeded")
	}
	s = reopen(t, h, loc, store.Options{})
	out, err := s.Append(ctx, store.Entry{Type: store.Note})
	if err != nil || out[0].Seq != head.Seq+1 || out[0].PrevHash != head.Hash {
		t.Fatalf("after reopen %+v, %v; head was %+v", out, err, head)
	}
	if got := mustAccept(t, s, "a-1"); !got[0].Duplicate {
		t.Fatal("inbox forgotten across reopen")
	}
	MustVerify(t, s)
}

// testAbandoned: what a closed handle had claimed comes back at once: the
// process is gone (SQLite), or it released its claims on Close (shared).
func testAbandoned(t *testing.T, h Harness) {
	c := NewClock()
	loc := h.Fresh(t)
	s, err := h.Open(t, loc, store.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	mustAccept(t, s, "a-1", "a-2")
	if _, err := s.Enqueue(ctx, []store.Message{{Key: "m1", Kind: "slack"}}); err != nil {
		t.Fatal(err)
	}
	if items, _ := s.ClaimAlerts(ctx, 10, time.Hour); len(items) != 2 {
		t.Fatalf("claimed %d", len(items))
	}
	if items, _ := s.ClaimOutbox(ctx, 10, time.Hour); len(items) != 1 {
		t.Fatalf("leased %d", len(items))
	}
	s.Close()
	s = reopen(t, h, loc, store.Options{Now: c.Now})
	items, err := s.ClaimAlerts(ctx, 10, time.Hour)
	if err != nil || len(items) != 2 || items[0].Attempts != 2 {
		t.Fatalf("abandoned alerts: %+v, %v", items, err)
	}
	msgs, err := s.ClaimOutbox(ctx, 10, time.Hour)
	if err != nil || len(msgs) != 1 || msgs[0].Attempts != 2 {
		t.Fatalf("abandoned messages: %+v, %v", msgs, err)
	}
}

// testLeasesAcrossHandles (shared backends): another open handle's claims
// and leases hold until they run out, then any handle takes the work over;
// its started actions are in doubt for the handle that takes over.
func testLeasesAcrossHandles(t *testing.T, h Harness) {
	c := NewClock()
	loc := h.Fresh(t)
	a := reopen(t, h, loc, store.Options{Now: c.Now})
	b := reopen(t, h, loc, store.Options{Now: c.Now})
	mustAccept(t, a, "a-1", "a-2")
	if _, err := a.Enqueue(ctx, []store.Message{{Key: "m1", Kind: "slack"}}); err != nil {
		t.Fatal(err)
	}
	if items, _ := a.ClaimAlerts(ctx, 10, time.Minute); len(items) != 2 {
		t.Fatalf("a claimed %d", len(items))
	}
	if items, _ := a.ClaimOutbox(ctx, 10, time.Minute); len(items) != 1 {
		t.Fatalf("a leased %d", len(items))
	}
	key := store.ActionKey{AlertID: "a-1", Playbook: "pb"}
	if cl, err := a.ClaimAction(ctx, store.ClaimRequest{Key: key, Action: "container.pause"}); err != nil || cl.Outcome != store.ClaimRun {
		t.Fatalf("a claims the action: %+v %v", cl, err)
	}
	if items, _ := b.ClaimAlerts(ctx, 10, time.Minute); len(items) != 0 {
		t.Fatalf("b took alerts a holds: %+v", items)
	}
	if items, _ := b.ClaimOutbox(ctx, 10, time.Minute); len(items) != 0 {
		t.Fatalf("b took messages a holds: %+v", items)
	}
	c.Add(time.Minute + time.Second)
	items, err := b.ClaimAlerts(ctx, 10, time.Minute)
	if err != nil || len(items) != 2 || items[0].Attempts != 2 {
		t.Fatalf("b after a's lease: %+v, %v", items, err)
	}
	if items, _ := a.ClaimAlerts(ctx, 10, time.Minute); len(items) != 0 {
		t.Fatalf("a took back what b now holds: %+v", items)
	}
	msgs, err := b.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil || len(msgs) != 1 || msgs[0].Attempts != 2 {
		t.Fatalf("b's messages after a's lease: %+v, %v", msgs, err)
	}
	if cl, _ := b.ClaimAction(ctx, store.ClaimRequest{Key: key, Action: "container.pause"}); cl.Outcome != store.ClaimInDoubt {
		t.Fatalf("b claims a's started action: %s, want in doubt", cl.Outcome)
	}
	if cl, _ := a.ClaimAction(ctx, store.ClaimRequest{Key: key, Action: "container.pause"}); cl.Outcome != store.ClaimBusy {
		t.Fatalf("a claims its own started action: %s, want busy", cl.Outcome)
	}
}

// testExtendClaims: a renewed lease keeps claimed alerts from being taken
// over (by this handle's next claim, or another handle's) until it runs out.
func testExtendClaims(t *testing.T, h Harness) {
	c := NewClock()
	loc := h.Fresh(t)
	a := reopen(t, h, loc, store.Options{Now: c.Now})
	other := a
	if h.Shared {
		other = reopen(t, h, loc, store.Options{Now: c.Now})
	}
	mustAccept(t, a, "a-1", "a-2", "a-3")
	if items, _ := a.ClaimAlerts(ctx, 2, time.Minute); len(items) != 2 {
		t.Fatalf("claimed %d", len(items))
	}
	if err := a.FinishAlert(ctx, "a-2"); err != nil {
		t.Fatal(err)
	}
	c.Add(50 * time.Second)
	n, err := a.ExtendClaims(ctx, []string{"a-1", "a-2", "a-3", "nope"}, time.Minute)
	if err != nil || n != 1 {
		t.Fatalf("extend: %d, %v; want 1 (a-2 is finished, a-3 and nope not claimed)", n, err)
	}
	if n, _ := other.ExtendClaims(ctx, []string{"a-1"}, time.Minute); h.Shared && n != 0 {
		t.Fatal("another handle renewed a's lease")
	}
	c.Add(30 * time.Second) // past the first lease, within the renewed one
	items, _ := other.ClaimAlerts(ctx, 10, time.Minute)
	if len(items) != 1 || items[0].Alert.ID != "a-3" {
		t.Fatalf("claim within the renewed lease: %+v, want only a-3", items)
	}
	c.Add(31 * time.Second)
	items, _ = other.ClaimAlerts(ctx, 10, time.Minute)
	if len(items) != 1 || items[0].Alert.ID != "a-1" || items[0].Attempts != 2 {
		t.Fatalf("claim after the renewed lease: %+v", items)
	}
	if _, err := a.ExtendClaims(ctx, []string{"a-1"}, 0); err == nil {
		t.Fatal("extend with no lease accepted")
	}
}

// testConcurrent: writers accept and claim at once (on two handles of one
// database when the backend is shared): every alert is stored once and
// claimed once, and the journal is one intact chain.
func testConcurrent(t *testing.T, h Harness) {
	loc := h.Fresh(t)
	handles := []store.Backend{reopen(t, h, loc, store.Options{})}
	if h.Shared {
		handles = append(handles, reopen(t, h, loc, store.Options{}))
	}
	const writers, perWriter = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		s := handles[w%len(handles)]
		wg.Go(func() {
			for i := range perWriter {
				id := fmt.Sprintf("w%d-%d", w, i)
				// Every alert is sent twice, to two handles: a retried
				// webhook, two senders.
				for j := range 2 {
					if _, err := handles[(w+j)%len(handles)].Accept(ctx, []alert.Alert{Alert(id)}); err != nil {
						t.Error(err)
						return
					}
				}
				if i%5 == 0 {
					if _, err := s.Append(ctx, store.Entry{Type: store.Note, AlertID: id}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	done := make(chan struct{})
	var claimers sync.WaitGroup
	for i := range 4 {
		s := handles[i%len(handles)]
		claimers.Go(func() {
			for {
				items, err := s.ClaimAlerts(ctx, 7, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				for _, it := range items {
					if err := s.FinishAlert(ctx, it.Alert.ID, store.Entry{Type: store.Note, AlertID: it.Alert.ID}); err != nil {
						t.Error(err)
						return
					}
				}
				mu.Lock()
				for _, it := range items {
					claimed[it.Alert.ID]++
				}
				n := len(claimed)
				mu.Unlock()
				if n == writers*perWriter {
					return
				}
				if len(items) == 0 {
					select {
					case <-done:
						// One last round after the writers stopped.
						items, err := s.ClaimAlerts(ctx, writers*perWriter, time.Hour)
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						for _, it := range items {
							claimed[it.Alert.ID]++
						}
						mu.Unlock()
						return
					default:
					}
				}
			}
		})
	}
	wg.Wait()
	close(done)
	claimers.Wait()
	if t.Failed() {
		return
	}
	if len(claimed) != writers*perWriter {
		t.Fatalf("%d alerts claimed, want %d", len(claimed), writers*perWriter)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Fatalf("alert %s claimed %d times", id, n)
		}
	}
	s := handles[0]
	if n := len(entriesOf(t, s, store.AlertReceived)); n != writers*perWriter {
		t.Fatalf("%d alert.received, want %d", n, writers*perWriter)
	}
	if n := len(entriesOf(t, s, store.AlertDuplicate)); n != writers*perWriter {
		t.Fatalf("%d alert.duplicate, want %d", n, writers*perWriter)
	}
	rep := MustVerify(t, s)
	want := int64(writers*perWriter*3 + writers*((perWriter+4)/5))
	if rep.Entries != want {
		t.Fatalf("%d entries, want %d", rep.Entries, want)
	}
}

// testSilences: a silence is stored as given and survives a reopen;
// expiring moves its end to now and deleting hides it, each once and
// journaled; its natural end is journaled once.
func testSilences(t *testing.T, h Harness) {
	c := NewClock()
	loc := h.Fresh(t)
	s := reopen(t, h, loc, store.Options{Now: c.Now})
	start := c.Now()
	base := store.Silence{
		Matcher: store.SilenceMatcher{Rules: []string{"Read sensitive file*"}, Containers: []string{"backup-*"}, When: `priority <= Warning`},
		Scope:   store.ScopeNotify, StartsAt: start, EndsAt: start.Add(time.Hour),
		CreatedBy: "op:ops", Comment: "backup job",
	}
	for _, tc := range []struct {
		name   string
		change func(*store.Silence)
	}{
		{"unknown scope", func(s *store.Silence) { s.Scope = "some" }},
		{"end before start", func(s *store.Silence) { s.EndsAt = s.StartsAt.Add(-time.Minute) }},
		{"no creator", func(s *store.Silence) { s.CreatedBy = "" }},
		{"empty matcher", func(s *store.Silence) { s.Matcher = store.SilenceMatcher{} }},
		{"creator approves", func(s *store.Silence) { s.Scope, s.ApprovedBy = store.ScopeAll, s.CreatedBy }},
		{"NUL in comment", func(s *store.Silence) { s.Comment = "a\x00b" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := base
			tc.change(&bad)
			if _, err := s.AddSilence(ctx, bad); err == nil {
				t.Fatalf("added %+v", bad)
			}
		})
	}
	a, err := s.AddSilence(ctx, base, store.Entry{Type: store.SilenceCreated, Actor: "op:ops"})
	if err != nil || a.ID == "" || a.State != store.SilenceStateActive || a.CreatedAt.IsZero() {
		t.Fatalf("add: %+v, %v", a, err)
	}
	all := base
	all.Scope, all.ApprovedBy, all.StartsAt, all.EndsAt = store.ScopeAll, "slack:U1", start.Add(time.Minute), start.Add(2*time.Minute)
	b, err := s.AddSilence(ctx, all, store.Entry{Type: store.SilenceCreated})
	if err != nil {
		t.Fatal(err)
	}
	if got := entriesOf(t, s, store.SilenceCreated); len(got) != 2 || got[0].Detail["silence"] != a.ID || got[1].Detail["silence"] != b.ID {
		t.Fatalf("silence.created entries %+v", got)
	}

	// Scope all without an approver waits for another person's approval.
	pend := all
	pend.ApprovedBy = ""
	p, err := s.AddSilence(ctx, pend)
	if err != nil || p.State != store.SilenceStatePending || p.InForce(pend.StartsAt.Add(time.Second)) {
		t.Fatalf("add pending: %+v, %v", p, err)
	}
	if _, err := s.ApproveSilence(ctx, p.ID, "op:ops"); !errors.Is(err, store.ErrState) {
		t.Fatalf("approved by its creator: %v", err)
	}
	ap, err := s.ApproveSilence(ctx, p.ID, "op:lead", store.Entry{Type: store.SilenceApproved})
	if err != nil || ap.State != store.SilenceStateActive || ap.ApprovedBy != "op:lead" || !ap.InForce(pend.StartsAt.Add(time.Second)) {
		t.Fatalf("approve: %+v, %v", ap, err)
	}
	if _, err := s.ApproveSilence(ctx, p.ID, "op:lead"); !errors.Is(err, store.ErrState) {
		t.Fatalf("approved twice: %v", err)
	}
	if es := entriesOf(t, s, store.SilenceApproved); len(es) != 1 || es[0].Detail["silence"] != p.ID {
		t.Fatalf("silence.approved entries %+v", es)
	}
	if _, _, err := s.EndSilence(ctx, p.ID, store.SilenceEnd{Delete: true, By: "op:ops"}); err != nil {
		t.Fatal(err)
	}

	// Restart: the silences are still there, as stored.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, h, loc, store.Options{Now: c.Now})
	got, err := s.GetSilence(ctx, a.ID)
	if err != nil || got.Comment != "backup job" || got.Matcher.When != base.Matcher.When || got.Matcher.Containers[0] != "backup-*" ||
		!got.StartsAt.Equal(a.StartsAt) || !got.EndsAt.Equal(a.EndsAt) || got.CreatedBy != "op:ops" {
		t.Fatalf("after reopen %+v, %v", got, err)
	}
	if !got.InForce(start.Add(30*time.Minute)) || got.InForce(start.Add(time.Hour)) || got.InForce(start.Add(-time.Second)) {
		t.Fatal("InForce does not follow [start, end)")
	}
	if _, err := s.GetSilence(ctx, "sil-nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown silence: %v", err)
	}
	list, err := s.ListSilences(ctx, store.SilenceFilter{EndsAfter: start.Add(90 * time.Minute)})
	if err != nil || len(list) != 0 {
		t.Fatalf("silences ending after 90 minutes: %+v, %v", list, err)
	}
	list, _ = s.ListSilences(ctx, store.SilenceFilter{})
	if len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID || list[1].ApprovedBy != "slack:U1" {
		t.Fatalf("all silences %+v", list)
	}

	// Expire a: its end is now, once.
	c.Add(10 * time.Minute)
	exp, changed, err := s.EndSilence(ctx, a.ID, store.SilenceEnd{By: "op:ops"}, store.Entry{Type: store.SilenceExpired})
	if err != nil || !changed || exp.State != store.SilenceStateExpired || !exp.EndsAt.Before(c.Now()) || exp.EndedBy != "op:ops" {
		t.Fatalf("expire: %+v %v %v", exp, changed, err)
	}
	if _, changed, _ := s.EndSilence(ctx, a.ID, store.SilenceEnd{By: "op:ops"}, store.Entry{Type: store.SilenceExpired}); changed {
		t.Fatal("expired twice")
	}
	if n := len(entriesOf(t, s, store.SilenceExpired)); n != 1 {
		t.Fatalf("%d silence.expired entries", n)
	}
	// Delete b: hidden from lists unless asked for.
	if _, changed, err := s.EndSilence(ctx, b.ID, store.SilenceEnd{Delete: true, By: "op:ops"}, store.Entry{Type: store.SilenceDeleted}); err != nil || !changed {
		t.Fatalf("delete: %v %v", changed, err)
	}
	if list, _ := s.ListSilences(ctx, store.SilenceFilter{}); len(list) != 1 || list[0].ID != a.ID {
		t.Fatalf("after delete %+v", list)
	}
	if list, _ := s.ListSilences(ctx, store.SilenceFilter{Deleted: true}); len(list) != 3 || list[1].InForce(all.StartsAt.Add(time.Second)) {
		t.Fatalf("with deleted %+v", list)
	}
	if _, _, err := s.EndSilence(ctx, "sil-nope", store.SilenceEnd{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("end unknown silence: %v", err)
	}

	// A natural end is journaled once.
	short := base
	short.StartsAt, short.EndsAt = c.Now(), c.Now().Add(time.Minute)
	d, err := s.AddSilence(ctx, short)
	if err != nil {
		t.Fatal(err)
	}
	if ended, err := s.CloseEndedSilences(ctx); err != nil || len(ended) != 0 {
		t.Fatalf("ended before the end: %+v, %v", ended, err)
	}
	c.Add(2 * time.Minute)
	ended, err := s.CloseEndedSilences(ctx)
	if err != nil || len(ended) != 1 || ended[0].ID != d.ID || ended[0].State != store.SilenceStateEnded {
		t.Fatalf("ended %+v, %v", ended, err)
	}
	if again, _ := s.CloseEndedSilences(ctx); len(again) != 0 {
		t.Fatalf("ended twice: %+v", again)
	}
	if es := entriesOf(t, s, store.SilenceEnded); len(es) != 1 || es[0].Detail["silence"] != d.ID {
		t.Fatalf("silence.ended entries %+v", es)
	}
	MustVerify(t, s)
}

// testHistory: the kept processed alerts are read back whole, in the
// order received, from a given time on; those not finished are left out.
func testHistory(t *testing.T, h Harness) {
	c := NewClock()
	s, _ := open(t, h, store.Options{Now: c.Now})
	mustAccept(t, s, "h-1")
	c.Add(time.Minute)
	since := c.Now()
	mustAccept(t, s, "h-2")
	c.Add(time.Minute)
	mustAccept(t, s, "h-3")
	mustAccept(t, s, "h-4")
	if _, err := s.ClaimAlerts(ctx, 4, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"h-1", "h-2", "h-3"} { // h-4 stays in processing
		if err := s.FinishAlert(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.AlertsSince(ctx, since)
	if err != nil || len(got) != 2 || got[0].Alert.ID != "h-2" || got[1].Alert.ID != "h-3" {
		t.Fatalf("alerts since: %+v, %v", got, err)
	}
	want := Alert("h-2")
	if a := got[0].Alert; a.Rule != want.Rule || a.Field("container.name") != "api-7d9f" || !a.Time.Equal(want.Time) ||
		got[0].ReceivedAt.Before(since) || !got[1].ReceivedAt.After(got[0].ReceivedAt) {
		t.Fatalf("alert read back %+v at %s", a, got[0].ReceivedAt)
	}
	all, err := s.AlertsSince(ctx, time.Time{})
	if err != nil || len(all) != 3 || all[0].Alert.ID != "h-1" {
		t.Fatalf("all alerts: %d, %v", len(all), err)
	}
}

// settledPlan is what the engine hands AcceptSettled for an alert matched
// by one playbook in dry run, and a note: TheIncident at the top of a
// detail, in a plan step's parameters and in a list.
func settledPlan(id string) *store.Settled {
	return &store.Settled{Entries: []store.Entry{
		{Type: store.PlaybookMatched, AlertID: id, Playbook: "contain", Actor: "playbook:contain", Detail: map[string]any{
			"incident": store.TheIncident, "dry_run": true,
			store.PlanDetail: []store.PlanStep{{Index: 0, Action: "slack.post", Decision: "dry_run",
				With: map[string]any{"text": "incident {{ .incident }}", "ref": store.TheIncident}}},
		}},
		{Type: store.Note, AlertID: id, Actor: "engine", Detail: map[string]any{"seen": []any{"x", store.TheIncident}}},
	}}
}

// checkSettled fails t unless entries, from the alert.received of
// settled alert id on, are: alert.received, incident.opened of inc when
// opens, then settledPlan's two entries with inc in place of TheIncident.
// It returns the entries after them.
func checkSettled(t *testing.T, entries []store.Entry, id, inc string, opens bool) []store.Entry {
	t.Helper()
	k := slices.IndexFunc(entries, func(e store.Entry) bool { return e.Type == store.AlertReceived && e.AlertID == id })
	if k < 0 {
		t.Fatalf("no alert.received of %s", id)
	}
	es := entries[k+1:]
	if opens {
		if len(es) == 0 || es[0].Type != store.IncidentOpened || es[0].Detail["incident"] != inc {
			t.Fatalf("entry after %s's alert.received: %+v, want incident.opened of %s", id, es[:min(1, len(es))], inc)
		}
		es = es[1:]
	}
	if len(es) < 2 {
		t.Fatalf("%s: %d entries after alert.received, want its settled entries", id, len(es))
	}
	m, n := es[0], es[1]
	if m.Type != store.PlaybookMatched || m.AlertID != id || m.Playbook != "contain" || m.Actor != "playbook:contain" || m.Detail["incident"] != inc || m.Detail["dry_run"] != true {
		t.Fatalf("%s: playbook.matched %+v, want incident %s", id, m, inc)
	}
	steps, _ := m.Detail[store.PlanDetail].([]any)
	step, _ := steps[0].(map[string]any)
	with, _ := step["with"].(map[string]any)
	if len(steps) != 1 || step["do"] != "slack.post" || with["ref"] != inc || with["text"] != "incident {{ .incident }}" {
		t.Fatalf("%s: plan %+v, want the incident %s in the step's parameters", id, m.Detail[store.PlanDetail], inc)
	}
	if seen, _ := n.Detail["seen"].([]any); n.Type != store.Note || n.AlertID != id || len(seen) != 2 || seen[0] != "x" || seen[1] != inc {
		t.Fatalf("%s: note %+v, want the incident %s in a list", id, n, inc)
	}
	return es[2:]
}

func testAcceptSettled(t *testing.T, h Harness) {
	c := NewClock()
	s, _ := open(t, h, store.Options{Now: c.Now})
	mustAccept(t, s, "s-0")
	entriesFrom := func(after int64) []store.Entry {
		t.Helper()
		es, err := s.Entries(ctx, store.Filter{AfterSeq: after})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	matched := func(id string) int {
		t.Helper()
		es, err := s.Entries(ctx, store.Filter{AlertID: id, Types: []store.EntryType{store.PlaybookMatched, store.Note}})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}

	// Lease 0: settled alerts done, the others pending.
	other := Alert("s-4")
	other.OutputFields["container.id"] = "c-other"
	as := []alert.Alert{Alert("s-0"), Alert("s-1"), Alert("s-2"), Alert("s-3"), Alert("s-1"), other, Alert("s-5")}
	settled := []*store.Settled{settledPlan("s-0"), settledPlan("s-1"), settledPlan("s-2"), nil, settledPlan("s-1"), {}}
	seq := headSeq(t, s)
	acc, items, incs, err := s.AcceptSettled(ctx, as, settled, 0)
	if err != nil || len(acc) != len(as) || len(incs) != len(as) || len(items) != 0 {
		t.Fatalf("accept settled, lease 0: %+v %+v %v %v", acc, items, incs, err)
	}
	for i, a := range acc {
		dup := i == 0 || i == 4
		if a.ID != as[i].ID || a.Duplicate != dup || a.Conflict {
			t.Fatalf("accepted[%d] %+v, want duplicate %v", i, a, dup)
		}
	}
	if incs[1] == "" || incs[2] != incs[1] || incs[5] == "" || incs[5] == incs[1] {
		t.Fatalf("incidents %q: s-1 and s-2 share one, s-4 has its own", incs)
	}
	for _, i := range []int{0, 3, 4, 6} {
		if incs[i] != "" {
			t.Fatalf("incidents %q: a duplicate or an alert left pending has none", incs)
		}
	}
	if info, err := s.GetIncident(ctx, incs[1]); err != nil || info.Alerts != 2 || info.ContainerID != "3f9a1c2b4d5e" || info.Rule != "Terminal shell in container" {
		t.Fatalf("incident of s-1 and s-2: %+v, %v; want 2 alerts", info, err)
	}
	es := entriesFrom(seq)
	rest := checkSettled(t, es, "s-1", incs[1], true)
	if rest = checkSettled(t, rest, "s-2", incs[2], false); len(rest) == 0 || rest[0].AlertID != "s-3" {
		t.Fatalf("after s-2's settled entries: %+v, want s-3's alert.received", rest[:min(1, len(rest))])
	}
	k := slices.IndexFunc(es, func(e store.Entry) bool { return e.Type == store.AlertReceived && e.AlertID == "s-4" })
	if k < 0 || k+2 >= len(es) || es[k+1].Type != store.IncidentOpened || es[k+1].Detail["incident"] != incs[5] || es[k+2].AlertID != "s-5" {
		t.Fatalf("s-4 (settled, nothing to journal): entries %+v, want alert.received, incident.opened, then s-5's", es[max(k, 0):])
	}
	if n := len(es); n != 13 {
		t.Fatalf("%d entries journaled, want 13 (5 received, 2 duplicates, 2 incidents opened, 2×2 settled)", n)
	}
	if matched("s-0") != 0 || matched("s-1") != 2 {
		t.Fatal("a duplicate's settled entries were journaled")
	}
	st, err := s.Stats(ctx)
	if err != nil || st.InboxPending != 3 || st.InboxProcessing != 0 {
		t.Fatalf("stats %+v, %v; want s-0, s-3 and s-5 pending", st, err)
	}
	got, err := s.ClaimAlerts(ctx, 10, time.Minute)
	var ids []string
	for _, it := range got {
		ids = append(ids, it.Alert.ID)
	}
	if err != nil || fmt.Sprint(ids) != "[s-0 s-3 s-5]" {
		t.Fatalf("claim after accept settled: %v, %v; want the pending ones, never a settled one", ids, err)
	}

	// Lease > 0: the unsettled alert comes back claimed, with the incident
	// the settled ones joined; a conflict journals no settled entries.
	known, created, err := s.Incident(ctx, "c-known", "Terminal shell in container", c.Now())
	if err != nil || !created {
		t.Fatalf("open incident: %v %v", created, err)
	}
	as = nil
	for _, id := range []string{"k-1", "k-2", "k-3"} {
		a := Alert(id)
		a.OutputFields["container.id"] = "c-known"
		as = append(as, a)
	}
	conflict := Alert("s-2")
	conflict.Rule = "Something else"
	as = append(as, conflict)
	opened := len(entriesOf(t, s, store.IncidentOpened))
	seq = headSeq(t, s)
	acc, items, incs, err = s.AcceptSettled(ctx, as, []*store.Settled{settledPlan("k-1"), settledPlan("k-2"), nil, settledPlan("s-2")}, time.Minute)
	if err != nil || len(acc) != 4 || acc[0].Duplicate || acc[2].Duplicate || !acc[3].Duplicate || !acc[3].Conflict {
		t.Fatalf("accept settled, lease 1m: %+v %v", acc, err)
	}
	if len(items) != 1 || items[0].Alert.ID != "k-3" || items[0].Incident != known || items[0].Attempts != 1 || items[0].ReceivedAt.IsZero() {
		t.Fatalf("claimed items %+v, want k-3 in incident %s", items, known)
	}
	if fmt.Sprint(incs) != fmt.Sprint([]string{known, known, known, ""}) {
		t.Fatalf("incidents %q, want %s for k-1..3 and none for the conflict", incs, known)
	}
	if info, err := s.GetIncident(ctx, known); err != nil || info.Alerts != 4 {
		t.Fatalf("incident %+v, %v; want 1+3 alerts", info, err)
	}
	if n := len(entriesOf(t, s, store.IncidentOpened)); n != opened {
		t.Fatalf("%d incident.opened, want %d: the alerts joined an open incident", n, opened)
	}
	es = entriesFrom(seq)
	rest = checkSettled(t, es, "k-1", known, false)
	if rest = checkSettled(t, rest, "k-2", known, false); len(rest) != 2 || rest[0].AlertID != "k-3" || rest[1].Type != store.AlertDuplicate || rest[1].AlertID != "s-2" {
		t.Fatalf("after k-2's settled entries: %+v, want k-3's alert.received and the conflict's alert.duplicate", rest)
	}
	if matched("s-2") != 2 {
		t.Fatal("the conflict's settled entries were journaled")
	}
	if got, err := s.ClaimAlerts(ctx, 10, time.Minute); err != nil || len(got) != 0 {
		t.Fatalf("claim: %+v, %v; want nothing (k-3 is claimed, the others done)", got, err)
	}

	// Refused: nothing is stored.
	seq = headSeq(t, s)
	bad := settledPlan("b-2")
	bad.Entries[1].Playbook = "bad\xff"
	for _, tc := range []struct {
		name    string
		settled []*store.Settled
		lease   time.Duration
		want    string
	}{
		{"settled longer than alerts", []*store.Settled{nil, nil, nil}, 0, "3 settled"},
		{"bad settled entry", []*store.Settled{settledPlan("b-1"), bad}, time.Minute, "alert 2: settled entry 2 (note)"},
		{"negative lease", nil, -time.Second, "lease"},
	} {
		_, _, _, err := s.AcceptSettled(ctx, []alert.Alert{Alert("b-1"), Alert("b-2")}, tc.settled, tc.lease)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: %v, want an error naming %q", tc.name, err, tc.want)
		}
	}
	if headSeq(t, s) != seq {
		t.Fatal("a refused accept journaled entries")
	}
	if acc, err := s.Accept(ctx, []alert.Alert{Alert("b-1")}); err != nil || acc[0].Duplicate {
		t.Fatalf("b-1 after refused accepts: %+v, %v; want it new", acc, err)
	}
	MustVerify(t, s)
}

// testUrgent: writes made with store.Urgent (the engine's detector alerts
// and the claim of an idempotent action) are answered like any other, and
// a reader of another handle sees them at once: urgent changes when the
// answer comes, never what is stored or decided.
func testUrgent(t *testing.T, h Harness) {
	s, loc := open(t, h, store.Options{})
	reader := reopen(t, h, loc, store.Options{ReadOnly: true})
	urgent := store.Urgent(ctx)
	acc, err := s.Accept(urgent, []alert.Alert{Alert("u-1"), Alert("u-1")})
	if err != nil || len(acc) != 2 || acc[0].Duplicate || !acc[1].Duplicate {
		t.Fatalf("urgent accept: %+v, %v", acc, err)
	}
	_, _, incs, err := s.AcceptSettled(urgent, []alert.Alert{Alert("u-2")}, []*store.Settled{settledPlan("u-2")}, 0)
	if err != nil || len(incs) != 1 || incs[0] == "" {
		t.Fatalf("urgent settled accept: %v, %v", incs, err)
	}
	key := store.ActionKey{AlertID: "u-1", Playbook: "contain"}
	if _, err := s.Apply(urgent, store.Batch{Entries: []store.Entry{{Type: store.PlaybookMatched, AlertID: "u-1", Playbook: "contain"}}}); err != nil {
		t.Fatalf("urgent apply: %v", err)
	}
	c, err := s.ClaimAction(urgent, store.ClaimRequest{Key: key, Action: "container.pause", Destructive: true, Budget: store.Budget{Max: 1, Window: time.Hour}},
		store.Entry{Type: store.ActionStarted, AlertID: "u-1", Playbook: "contain", Action: "container.pause"})
	if err != nil || c.Outcome != store.ClaimRun {
		t.Fatalf("urgent claim: %+v, %v", c, err)
	}
	// The budget counts an urgent claim like any other.
	over := store.ClaimRequest{Key: store.ActionKey{AlertID: "u-2", Playbook: "contain"}, Action: "container.pause", Destructive: true, Budget: store.Budget{Max: 1, Window: time.Hour}}
	if c, err := s.ClaimAction(urgent, over); err != nil || c.Outcome != store.ClaimOverBudget {
		t.Fatalf("urgent claim over the budget: %+v, %v", c, err)
	}
	// Seen by another handle right after the answers.
	es, err := reader.Entries(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var types []store.EntryType
	for _, e := range es {
		types = append(types, e.Type)
	}
	want := []store.EntryType{store.AlertReceived, store.AlertDuplicate, store.AlertReceived, store.IncidentOpened,
		store.PlaybookMatched, store.Note, store.PlaybookMatched, store.ActionStarted}
	if !slices.Equal(types, want) {
		t.Fatalf("reader sees %v, want %v", types, want)
	}
	run, err := reader.GetAction(ctx, key)
	if err != nil || run.State != store.ActionStateStarted {
		t.Fatalf("reader sees the claimed run as %+v, %v", run, err)
	}
	// An ordinary write after them, on the same chain.
	if _, applied, err := s.RecordAction(ctx, store.ActionUpdate{Key: key, State: store.ActionStateSucceeded},
		store.Entry{Type: store.ActionSucceeded, AlertID: "u-1"}); err != nil || !applied {
		t.Fatalf("record the outcome: %v %v", applied, err)
	}
	MustVerify(t, reader)
}
