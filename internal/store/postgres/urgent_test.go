package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/postgres/pgtest"
	"github.com/riposte-sec/riposte/internal/store/storetest"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// probeCommits installs, in the test's database, a trigger that records
// with every journal row the synchronous_commit in force in the
// transaction that inserted it; commitModes reads them back. The
// transaction's own setting, seen from inside it: no hook in the store.
func probeCommits(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, `
		CREATE TABLE commit_probe (seq bigint, type text, alert_id text, mode text);
		CREATE FUNCTION commit_probe() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO commit_probe VALUES (NEW.seq, NEW.type, NEW.alert_id, current_setting('synchronous_commit'));
			RETURN NULL;
		END $$;
		CREATE TRIGGER commit_probe AFTER INSERT ON journal FOR EACH ROW EXECUTE FUNCTION commit_probe();`); err != nil {
		t.Fatal(err)
	}
	return conn
}

// commitModes returns the synchronous_commit of the transactions that
// journaled alert id's entries of type typ, one per entry.
func commitModes(t *testing.T, conn *pgx.Conn, id string, typ store.EntryType) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT mode FROM commit_probe WHERE alert_id = $1 AND type = $2 ORDER BY seq`, id, string(typ))
	if err != nil {
		t.Fatal(err)
	}
	modes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return modes
}

// TestUrgentCommitsAsync: the writes the engine makes with store.Urgent
// (Accept and AcceptSettled for the detector's alerts, Apply and
// ClaimAction before an idempotent action) commit with synchronous_commit
// off, in their transaction only; the same writes without it, and the
// ordinary writes after them on the same connections, commit with it on.
func TestUrgentCommitsAsync(t *testing.T) {
	s, url := openTest(t, store.Options{})
	probe := probeCommits(t, url)
	bg := context.Background()
	claim := func(ctx context.Context, id string) error {
		c, err := s.ClaimAction(ctx, store.ClaimRequest{Key: store.ActionKey{AlertID: id, Playbook: "contain"}, Action: "container.pause"},
			store.Entry{Type: store.ActionStarted, AlertID: id, Playbook: "contain", Action: "container.pause"})
		if err == nil && c.Outcome != store.ClaimRun {
			t.Fatalf("claim for %s: %s, want run", id, c.Outcome)
		}
		return err
	}
	tests := []struct {
		name  string
		typ   store.EntryType
		write func(ctx context.Context, id string) error
	}{
		{"accept", store.AlertReceived, func(ctx context.Context, id string) error {
			_, err := s.Accept(ctx, []alert.Alert{storetest.Alert(id)})
			return err
		}},
		{"accept-settled", store.Note, func(ctx context.Context, id string) error {
			settled := &store.Settled{Entries: []store.Entry{{Type: store.Note, AlertID: id, Detail: map[string]any{"incident": store.TheIncident}}}}
			_, _, _, err := s.AcceptSettled(ctx, []alert.Alert{storetest.Alert(id)}, []*store.Settled{settled}, 0)
			return err
		}},
		{"apply", store.PlaybookMatched, func(ctx context.Context, id string) error {
			_, err := s.Apply(ctx, store.Batch{Entries: []store.Entry{{Type: store.PlaybookMatched, AlertID: id, Playbook: "contain"}}})
			return err
		}},
		{"claim-action", store.ActionStarted, claim},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				ctx  context.Context
				id   string
				want string
			}{
				{bg, tc.name + "-before", "on"},
				{store.Urgent(bg), tc.name + "-urgent", "off"},
				{bg, tc.name + "-after", "on"},
			} {
				if err := tc.write(c.ctx, c.id); err != nil {
					t.Fatalf("%s: %v", c.id, err)
				}
				if got := commitModes(t, probe, c.id, tc.typ); len(got) != 1 || got[0] != c.want {
					t.Errorf("%s: its %s committed with synchronous_commit %q, want %q", c.id, tc.typ, got, c.want)
				}
			}
		})
	}
	// What follows an urgent claim is ordinary: the outcome.
	if _, _, err := s.RecordAction(bg, store.ActionUpdate{Key: store.ActionKey{AlertID: "claim-action-urgent", Playbook: "contain"}, State: store.ActionStateSucceeded},
		store.Entry{Type: store.ActionSucceeded, AlertID: "claim-action-urgent"}); err != nil {
		t.Fatal(err)
	}
	if got := commitModes(t, probe, "claim-action-urgent", store.ActionSucceeded); len(got) != 1 || got[0] != "on" {
		t.Errorf("outcome after an urgent claim committed with synchronous_commit %q, want on", got)
	}
	storetest.MustVerify(t, s)
}

// TestUrgentAcceptsCommitApart: urgent and ordinary Accepts that queue
// together for the accepter commit in two transactions, the urgent ones
// asynchronously and first, so that an ordinary Accept's answer still
// means flushed.
func TestUrgentAcceptsCommitApart(t *testing.T) {
	s, url := openTest(t, store.Options{})
	probe := probeCommits(t, url)
	bg := context.Background()
	// Hold the journal's head so that the accepter waits in a first
	// transaction while the next Accepts queue behind it.
	hold, err := probe.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback(bg) //nolint:errcheck // a no-op after Commit
	if _, err := hold.Exec(bg, `SELECT 1 FROM journal_head WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	accept := func(ctx context.Context, id string) <-chan error {
		done := make(chan error, 1)
		go func() {
			_, err := s.Accept(ctx, []alert.Alert{storetest.Alert(id)})
			done <- err
		}()
		return done
	}
	first := accept(bg, "first")
	testutil.Eventually(t, 10*time.Second, func() bool { return len(s.acceptQ) == 0 && blockedOnHead(t, url) },
		"the accepter did not take the first Accept")
	ordinary, urgent := accept(bg, "ordinary"), accept(store.Urgent(bg), "urgent")
	testutil.Eventually(t, 10*time.Second, func() bool { return len(s.acceptQ) == 2 }, "two Accepts did not queue")
	if err := hold.Commit(bg); err != nil {
		t.Fatal(err)
	}
	for _, done := range []<-chan error{first, ordinary, urgent} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{"first": "on", "ordinary": "on", "urgent": "off"} {
		if got := commitModes(t, probe, id, store.AlertReceived); len(got) != 1 || got[0] != want {
			t.Errorf("%s: committed with synchronous_commit %q, want %q", id, got, want)
		}
	}
	var urgentSeq, ordinarySeq int64
	if err := probe.QueryRow(bg, `SELECT (SELECT seq FROM commit_probe WHERE alert_id = 'urgent'), (SELECT seq FROM commit_probe WHERE alert_id = 'ordinary')`).Scan(&urgentSeq, &ordinarySeq); err != nil {
		t.Fatal(err)
	}
	if urgentSeq > ordinarySeq {
		t.Errorf("urgent alert journaled at %d, after the ordinary one queued with it (%d)", urgentSeq, ordinarySeq)
	}
	storetest.MustVerify(t, s)
}

// blockedOnHead reports whether a session of the database at url waits
// for a lock (the head row another session holds).
func blockedOnHead(t *testing.T, url string) bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// TestUrgentCommitDoesNotWait: on a server whose commits wait for a
// synchronous standby that never comes (synchronous_standby_names names
// one), a commit that waits for its WAL to be safe never returns, as it
// would never return before a flush: the urgent Accept and ClaimAction
// return, the ordinary ClaimAction after them does not. What
// TestUrgentCommitsAsync reads inside the transactions, seen from the
// caller.
func TestUrgentCommitDoesNotWait(t *testing.T) {
	pg.Get(t) // the gate: PostgreSQL's programs are installed
	srv, err := pgtest.Start(pgtest.Options{Settings: []string{"synchronous_standby_names=nobody"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop() // a fast shutdown ends the commit left waiting
	bg := context.Background()
	url := srv.URL("postgres")
	// Migrate without waiting for the standby.
	mig, err := Open(bg, url+"&synchronous_commit=local", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mig.Close()
	s, err := Open(bg, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close() // releases nothing (no claims): commits nothing, waits for nothing

	ctx, cancel := context.WithTimeout(store.Urgent(bg), 10*time.Second)
	defer cancel()
	if _, err := s.Accept(ctx, []alert.Alert{storetest.Alert("a-1")}); err != nil {
		t.Fatalf("urgent accept: %v", err)
	}
	key := store.ActionKey{AlertID: "a-1", Playbook: "contain"}
	started := store.Entry{Type: store.ActionStarted, AlertID: "a-1", Playbook: "contain", Action: "container.pause"}
	if c, err := s.ClaimAction(ctx, store.ClaimRequest{Key: key, Action: "container.pause"}, started); err != nil || c.Outcome != store.ClaimRun {
		t.Fatalf("urgent claim: %+v, %v", c, err)
	}
	// Last: it holds the journal's head until the server stops.
	wait, cancelWait := context.WithTimeout(bg, 300*time.Millisecond)
	defer cancelWait()
	key.Index = 1
	if c, err := s.ClaimAction(wait, store.ClaimRequest{Key: key, Action: "container.kill"}, started); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ordinary claim returned %+v, %v; want it waiting for the standby until its deadline", c, err)
	}
}
