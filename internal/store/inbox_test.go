package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/testutil"
)

func TestAcceptDuplicates(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		ids  []string
		dups []bool
	}{
		{"new", []string{"a-1", "a-2"}, []bool{false, false}},
		{"again", []string{"a-1"}, []bool{true}},
		{"same id twice in one call", []string{"a-3", "a-3", "a-2"}, []bool{false, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustAccept(t, s, tc.ids...)
			for i, a := range got {
				if a.ID != tc.ids[i] || a.Duplicate != tc.dups[i] {
					t.Fatalf("accepted[%d] = %+v, want %s duplicate=%v", i, a, tc.ids[i], tc.dups[i])
				}
			}
		})
	}
	if n := len(entriesOf(t, s, AlertReceived)); n != 3 {
		t.Fatalf("%d alert.received entries, want 3", n)
	}
	dups := entriesOf(t, s, AlertDuplicate)
	if len(dups) != 3 || dups[0].AlertID != "a-1" || dups[0].Detail["rule"] != "Terminal shell in container" {
		t.Fatalf("alert.duplicate entries %+v", dups)
	}
	var n, d int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*), sum(duplicates) FROM inbox`).Scan(&n, &d); err != nil {
		t.Fatal(err)
	}
	if n != 3 || d != 3 {
		t.Fatalf("inbox holds %d alerts with %d duplicates, want 3 and 3", n, d)
	}
	mustVerify(t, s)
}

func TestAcceptRejects(t *testing.T) {
	s := openTest(t, Options{})
	for _, tc := range []struct {
		name string
		a    alert.Alert
		want string
	}{
		{"no id", testAlert(""), "alert has no id"},
		{"long id", testAlert(strings.Repeat("x", alert.MaxIDLength+1)), "longer than"},
		{"bad id", testAlert("a\xff"), "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Accept(context.Background(), []alert.Alert{testAlert("ok"), tc.a})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if st, _ := s.Stats(context.Background()); st.InboxPending != 0 {
		t.Fatalf("a rejected batch stored %d alerts", st.InboxPending)
	}
}

// TestAcceptConcurrentExactlyOnce: 32 goroutines accept overlapping ids;
// every id is accepted as new exactly once across all of them, stored
// once and journaled once as received, every other accept of it is a
// duplicate.
func TestAcceptConcurrentExactlyOnce(t *testing.T) {
	s := openTest(t, Options{})
	const goroutines, perG, distinct = 32, 200, 1000
	var mu sync.Mutex
	news := map[string]int{}
	dups := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perG; i++ {
				n := 1 + (g+i)%3 // 1 to 3 alerts per call
				as := make([]alert.Alert, n)
				for j := range as {
					as[j] = testAlert(alertID((g*7919 + i*31 + j) % distinct))
				}
				got, err := s.Accept(context.Background(), as)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, a := range got {
					if a.Duplicate {
						dups[a.ID]++
					} else {
						news[a.ID]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	received := map[string]int{}
	for _, e := range entriesOf(t, s, AlertReceived) {
		received[e.AlertID]++
	}
	dupEntries := map[string]int{}
	for _, e := range entriesOf(t, s, AlertDuplicate) {
		dupEntries[e.AlertID]++
	}
	for id, n := range news {
		if n != 1 || received[id] != 1 {
			t.Fatalf("%s accepted as new %d times, journaled received %d times", id, n, received[id])
		}
		if dupEntries[id] != dups[id] {
			t.Fatalf("%s: %d duplicate answers, %d alert.duplicate entries", id, dups[id], dupEntries[id])
		}
	}
	if len(received) != len(news) {
		t.Fatalf("%d ids received, %d accepted as new", len(received), len(news))
	}
	var stored, dupCount int
	if err := s.rdb.QueryRow(`SELECT count(*), sum(duplicates) FROM inbox`).Scan(&stored, &dupCount); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range dups {
		total += n
	}
	if stored != len(news) || dupCount != total {
		t.Fatalf("inbox: %d rows, %d duplicates; want %d and %d", stored, dupCount, len(news), total)
	}
	mustVerify(t, s)
}

func TestClaimAndFinishAlerts(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})
	ctx := context.Background()
	mustAccept(t, s, "a-1", "a-2", "a-3")

	items, err := s.ClaimAlerts(ctx, 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Alert.ID != "a-1" || items[1].Alert.ID != "a-2" || items[0].Attempts != 1 {
		t.Fatalf("first claim %+v", items)
	}
	if items[0].Alert.Rule != "Terminal shell in container" || items[0].Alert.Field("evt.time") != "1740830400000000000" {
		t.Fatalf("claimed alert does not round-trip: %+v", items[0].Alert)
	}
	items, _ = s.ClaimAlerts(ctx, 10, time.Minute)
	if len(items) != 1 || items[0].Alert.ID != "a-3" {
		t.Fatalf("second claim %+v, want a-3 only (the others are leased)", items)
	}
	if err := s.FinishAlert(ctx, "a-1", Entry{Type: Note, AlertID: "a-1", Detail: map[string]any{"done": true}}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAlert(ctx, "a-1", Entry{Type: Note, AlertID: "a-1"}); err != nil {
		t.Fatal(err)
	}
	if n := len(entriesOf(t, s, Note)); n != 1 {
		t.Fatalf("finishing twice journaled %d notes, want 1", n)
	}
	if err := s.FinishAlert(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("finish unknown alert: %v", err)
	}
	// Leases run out: a-2 and a-3 come back, attempts counted.
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

// TestRestartReclaims: alerts claimed by a process that is gone come back
// at once, without waiting for the lease.
func TestRestartReclaims(t *testing.T) {
	path := PathIn(filepath.Join(t.TempDir(), "data"))
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mustAccept(t, s, "a-1", "a-2")
	if items, _ := s.ClaimAlerts(ctx, 10, time.Hour); len(items) != 2 {
		t.Fatalf("claimed %d", len(items))
	}
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items, err := s.ClaimAlerts(ctx, 10, time.Hour)
	if err != nil || len(items) != 2 || items[0].Attempts != 2 {
		t.Fatalf("after restart: %+v, %v", items, err)
	}
}

func TestPrune(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now, DuplicateWindow: time.Hour})
	ctx := context.Background()
	mustAccept(t, s, "old", "open")
	if _, _, err := s.RecordAction(ctx, ActionUpdate{Key: ActionKey{"old", "pb", 0}, Action: "container.pause", State: ActionStateSucceeded}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.HoldAction(ctx, Hold{Key: ActionKey{"old", "pb", 1}, Action: "container.kill", Deadline: c.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishAlert(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Hour)
	p, err := s.Prune(ctx)
	if err != nil || p.Alerts != 1 {
		t.Fatalf("prune %+v, %v", p, err)
	}
	if _, err := s.GetAction(ctx, ActionKey{"old", "pb", 0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pruned alert's action run: %v", err)
	}
	if ap, _ := s.PendingApprovals(ctx); len(ap) != 0 {
		t.Fatalf("pruned alert's approval still there: %+v", ap)
	}
	// Past the window the same id is a new alert; the open one stays a duplicate.
	got := mustAccept(t, s, "old", "open")
	if got[0].Duplicate || !got[1].Duplicate {
		t.Fatalf("after prune: %+v", got)
	}
	mustVerify(t, s)
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	path := PathIn(dir)
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second writer: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "nope.db"), Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("read-only open of a missing file: %v", err)
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open while the writer runs: %v", err)
	}
	defer ro.Close()
	if _, err := ro.Accept(context.Background(), []alert.Alert{testAlert("x")}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write on a read-only store: %v", err)
	}
	mustAccept(t, s, "seen-by-reader")
	if es, err := ro.Entries(context.Background(), Filter{}); err != nil || len(es) != 1 {
		t.Fatalf("reader sees %d entries, %v", len(es), err)
	}
}

func TestClose(t *testing.T) {
	s, err := Open(PathIn(t.TempDir()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				_, err := s.Accept(context.Background(), []alert.Alert{testAlert(fmt.Sprintf("g%d-%d", g, i))})
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked++
				mu.Unlock()
			}
		}()
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return acked >= 50
	}, "the writers never got going")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	ro, err := Open(s.Path(), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rep := mustVerify(t, ro)
	if rep.Entries != int64(acked) {
		t.Fatalf("%d acknowledged, %d journaled", acked, rep.Entries)
	}
}

func TestCanceledContext(t *testing.T) {
	s := openTest(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Accept(ctx, []alert.Alert{testAlert("a")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("accept with a canceled context: %v", err)
	}
	if st, _ := s.Stats(context.Background()); st.InboxPending != 0 {
		t.Fatal("canceled accept was stored")
	}
}

// TestFailedRequestIsolated: a request that fails after writing is rolled
// back alone; requests committed in the same batch are not affected.
func TestFailedRequestIsolated(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			mustAccept(t, s, alertID(i))
		}()
		go func() {
			defer wg.Done()
			err := s.write(ctx, 1, func(t *wtx) error {
				if _, err := t.exec(`INSERT INTO kv (ns, key, value, updated_at) VALUES ('t', ?, 'v', '')`, fmt.Sprint(i)); err != nil {
					return err
				}
				e, _ := prepareEntry(Entry{Type: Note})
				if err := t.append([]prepared{e}, nil); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Errorf("failing request: %v", err)
			}
		}()
	}
	wg.Wait()
	var kv int
	s.rdb.QueryRow(`SELECT count(*) FROM kv`).Scan(&kv)
	if kv != 0 {
		t.Fatalf("failed requests left %d rows", kv)
	}
	if n := len(entriesOf(t, s, Note)); n != 0 {
		t.Fatalf("failed requests left %d journal entries", n)
	}
	if n := len(entriesOf(t, s, AlertReceived)); n != 50 {
		t.Fatalf("%d alerts journaled, want 50", n)
	}
	mustVerify(t, s)
}

// TestFsyncFailureBreaksStore: an answer is only given after the WAL's
// fsync succeeded; after a failed fsync the store refuses writes.
func TestFsyncFailureBreaksStore(t *testing.T) {
	s, err := Open(PathIn(t.TempDir()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close() //nolint:errcheck // closing the WAL again fails
	mustAccept(t, s, "before")
	s.w.wal.Close() // the next fsync fails with "file already closed"
	if _, err := s.Accept(context.Background(), []alert.Alert{testAlert("during")}); err == nil || !strings.Contains(err.Error(), "sync write-ahead log") {
		t.Fatalf("accept with a failing fsync: %v", err)
	}
	if _, err := s.Append(context.Background(), Entry{Type: Note}); err == nil || !strings.Contains(err.Error(), "sync write-ahead log") {
		t.Fatalf("write after a failed fsync: %v", err)
	}
}

// The alert.received detail is encoded from a struct; it must be the bytes
// the map it used to be built from encodes to, or entries written before
// and after would differ in shape.
func TestReceivedDetailMatchesMap(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    alert.Alert
	}{
		{"all fields", testAlert("a-1")},
		{"no optional fields", alert.Alert{ID: "a-2", Rule: "r", Priority: alert.PriorityCritical}},
		{"escapes", alert.Alert{ID: "a-3", Rule: `<b>"x" & y</b>` + "\u2028\t", Priority: alert.PriorityNotice,
			Source: "k8s_audit", Hostname: "h\\ost", OutputFields: map[string]any{"container.id": "é<>"}}},
		{"sender clock off", func() alert.Alert {
			a := testAlert("a-4")
			a.Time = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
			return a
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			m := map[string]any{"rule": a.Rule, "priority": a.Priority.String()}
			if c := a.Field("container.id"); c != "" {
				m["container_id"] = c
			}
			if a.Source != "" {
				m["source"] = a.Source
			}
			if a.Hostname != "" {
				m["hostname"] = a.Hostname
			}
			received := time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC)
			if a.Time.Year() == 2099 {
				m["alert_time"] = FormatTime(a.Time)
				m["clock_skew"] = a.Time.Sub(received).Round(time.Second).String()
			}
			want, err := marshalDetail(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := receivedEntry(&a, received, 5*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if got.detail != string(want) {
				t.Errorf("detail %s, want %s", got.detail, want)
			}
		})
	}
}

// AcceptClaimed stores the new alerts already claimed by this store, with
// their incidents; a duplicate is neither claimed again nor returned.
func TestAcceptClaimed(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	mustAccept(t, s, "old")
	acc, items, err := s.AcceptClaimed(ctx, []alert.Alert{testAlert("new-1"), testAlert("old"), testAlert("new-2")}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(acc) != 3 || acc[0].Duplicate || !acc[1].Duplicate || acc[2].Duplicate {
		t.Fatalf("accepted %+v, want new, duplicate, new", acc)
	}
	if len(items) != 2 || items[0].Alert.ID != "new-1" || items[1].Alert.ID != "new-2" {
		t.Fatalf("items %+v, want new-1 and new-2", items)
	}
	for _, it := range items {
		if it.Attempts != 1 || it.Incident == "" {
			t.Errorf("item %s: attempts %d, incident %q; want 1 and an incident", it.Alert.ID, it.Attempts, it.Incident)
		}
	}
	for _, tc := range []struct {
		id, state, owner string
		attempts         int
	}{
		{"new-1", "processing", s.owner, 1},
		{"new-2", "processing", s.owner, 1},
		{"old", "pending", "", 0},
	} {
		var state, owner, until string
		var attempts int
		if err := s.rdb.QueryRow(`SELECT state, owner, lease_until, attempts FROM inbox WHERE id = ?`, tc.id).Scan(&state, &owner, &until, &attempts); err != nil {
			t.Fatal(err)
		}
		if state != tc.state || owner != tc.owner || attempts != tc.attempts || (tc.state == "processing") != (until != "") {
			t.Errorf("%s: state %s, owner %q, lease %q, attempts %d; want %s, %q, a lease iff processing, %d",
				tc.id, state, owner, until, attempts, tc.state, tc.owner, tc.attempts)
		}
	}
	got, err := s.ClaimAlerts(ctx, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Alert.ID != "old" {
		t.Errorf("ClaimAlerts after AcceptClaimed got %d alerts, want only old", len(got))
	}
}
