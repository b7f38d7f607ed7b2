package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/postgres/pgtest"
	"github.com/riposte-sec/riposte/internal/store/storetest"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// TestJournalTampering: the triggers refuse edits; an edit made with the
// triggers disabled is found by Verify.
func TestJournalTampering(t *testing.T) {
	s, url := openTest(t, store.Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, store.Entry{Type: store.Note}, store.Entry{Type: store.Note}, store.Entry{Type: store.Note}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		`UPDATE journal SET actor = 'mallory' WHERE seq = 2`,
		`DELETE FROM journal WHERE seq = 3`,
		`TRUNCATE journal`,
	} {
		if _, err := conn.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: %v, want refused as append-only", q, err)
		}
	}
	storetest.MustVerify(t, s)
	for _, tc := range []struct {
		name, sql string
		kind      store.ProblemKind
	}{
		{"edited", `UPDATE journal SET actor = 'mallory' WHERE seq = 2`, store.Edited},
		{"removed", `DELETE FROM journal WHERE seq = 2`, store.Missing},
		{"truncated", `DELETE FROM journal WHERE seq = 3`, store.Truncated},
		{"head", `UPDATE journal_head SET hash = repeat('a', 64)`, store.HeadBad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, url := openTest(t, store.Options{})
			if _, err := s.Append(ctx, store.Entry{Type: store.Note}, store.Entry{Type: store.Note}, store.Entry{Type: store.Note}); err != nil {
				t.Fatal(err)
			}
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			for _, q := range []string{`ALTER TABLE journal DISABLE TRIGGER journal_no_change`, tc.sql,
				`ALTER TABLE journal ENABLE TRIGGER journal_no_change`} {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := s.Verify(ctx)
			if err != nil || rep.OK() || rep.Problem.Kind != tc.kind {
				t.Fatalf("verify after %s: %+v, %v", tc.name, rep.Problem, err)
			}
		})
	}
}

// TestReadOnly: a read-only handle reads and verifies, refuses writes, and
// refuses a database riposte never migrated.
func TestReadOnly(t *testing.T) {
	s, url := openTest(t, store.Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, store.Entry{Type: store.Note}); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(ctx, url, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if rep := storetest.MustVerify(t, ro); rep.Entries != 1 {
		t.Fatalf("read-only verify read %d entries", rep.Entries)
	}
	if _, err := ro.Append(ctx, store.Entry{Type: store.Note}); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("append on a read-only handle: %v", err)
	}
	empty := pg.Database(t)
	if _, err := Open(ctx, empty, store.Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not a riposte store") {
		t.Fatalf("read-only open of an empty database: %v", err)
	}
}

// TestOpenErrors: a bad URL or an unreachable server is a clear error that
// never shows the password.
func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, url := range []string{
		"postgres://riposte:s3cret@/db?host=/nonexistent-socket-dir&connect_timeout=2",
		"postgres://riposte:s3cret@%zz/db",
	} {
		_, err := Open(ctx, url, store.Options{})
		if err == nil {
			t.Fatalf("open %s succeeded", url)
		}
		if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "open store") {
			t.Fatalf("open error %q: want a clear error without the password", err)
		}
	}
	if got := Redact("postgres://u:pw@h/db?password=pw2"); strings.Contains(got, "pw") && !strings.Contains(got, "xxxxx") {
		t.Fatalf("redact: %s", got)
	}
}

// TestConcurrentMigrations: replicas starting at once on a new database
// migrate it once.
func TestConcurrentMigrations(t *testing.T) {
	url := pg.Database(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := Open(context.Background(), url, store.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
}

// TestServerGone: when PostgreSQL goes away, writes fail (the intake
// answers 503) instead of hanging, and Close still returns.
func TestServerGone(t *testing.T) {
	pg.Get(t) // the gate: binaries present
	srv, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	url, err := srv.Database(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Accept(ctx, []alert.Alert{storetest.Alert("before")}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := s.Accept(ctx, []alert.Alert{storetest.Alert("after")}); err == nil || ctx.Err() != nil {
		t.Fatalf("accept with the server gone: %v (context: %v), want a prompt error", err, ctx.Err())
	}
	if _, err := s.ClaimAlerts(ctx, 10, time.Minute); err == nil {
		t.Fatal("claim with the server gone succeeded")
	}
	if err := s.Close(); err == nil {
		t.Fatal("close could not release claims, yet reported no error")
	}
}

// TestSessionDefaults: riposte's sessions end an idle transaction and stop
// waiting for a lock after riposte's defaults; a URL's own values win.
func TestSessionDefaults(t *testing.T) {
	show := func(s *Store) (idle, lock string) {
		t.Helper()
		ctx := context.Background()
		if err := s.pool.QueryRow(ctx, `SELECT current_setting('idle_in_transaction_session_timeout'), current_setting('lock_timeout')`).Scan(&idle, &lock); err != nil {
			t.Fatal(err)
		}
		return idle, lock
	}
	s, url := openTest(t, store.Options{})
	if idle, lock := show(s); idle != "5s" || lock != "2s" {
		t.Fatalf("defaults: idle_in_transaction_session_timeout %s, lock_timeout %s; want 5s and 2s", idle, lock)
	}
	own, err := Open(context.Background(), url+"&lock_timeout=7s", store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if idle, lock := show(own); idle != "5s" || lock != "7s" {
		t.Fatalf("the URL's lock_timeout=7s: idle_in_transaction_session_timeout %s, lock_timeout %s", idle, lock)
	}
	if !retryable(&pgconn.PgError{Code: "55P03"}) {
		t.Fatal("a lock timeout is not retried")
	}
}

// TestMigrationOutwaitsLockTimeout: a replica starting while another
// migrates waits for it past the sessions' lock_timeout.
func TestMigrationOutwaitsLockTimeout(t *testing.T) {
	url := pg.Database(t)
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
		t.Fatal(err)
	}
	opened := make(chan error, 1)
	go func() {
		s, err := Open(ctx, url, store.Options{})
		if err == nil {
			s.Close()
		}
		opened <- err
	}()
	watch, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	testutil.Eventually(t, 30*time.Second, func() bool {
		var waited bool
		err := watch.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND now() - state_change > interval '3s')`).Scan(&waited)
		return err == nil && waited
	}, "Open to wait 3s for the migration lock")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("Open after waiting for another migration: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Open did not return after the migration lock was released")
	}
}
