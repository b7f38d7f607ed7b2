package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/testutil"
)

// The writer's connection never checkpoints; the checkpointer copies the
// WAL into the database in the background.
func TestCheckpointerCopiesWAL(t *testing.T) {
	s := openTest(t, Options{})
	var auto int
	if err := s.w.conn.QueryRowContext(context.Background(), `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil {
		t.Fatal(err)
	}
	if auto != 0 {
		t.Errorf("writer's wal_autocheckpoint = %d, want 0", auto)
	}
	ids := make([]string, 200)
	for i := range ids {
		ids[i] = fmt.Sprintf("ckpt-%d", i)
	}
	mustAccept(t, s, ids...)
	deadline := time.Now().Add(10 * time.Second)
	for s.ckpt.frames.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint copied the WAL within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
	if got := len(entriesOf(t, s, AlertReceived)); got != len(ids) {
		t.Errorf("%d alert.received entries after checkpoints, want %d", got, len(ids))
	}
}

// A file written the way round 1 wrote it (the writer checkpointing
// itself) opens with the background checkpointer and takes writes.
func TestOpenRoundOneFile(t *testing.T) {
	path := PathIn(filepath.Join(t.TempDir(), "data"))
	old, err := Open(path, Options{checkpointInWriter: true})
	if err != nil {
		t.Fatal(err)
	}
	mustAccept(t, old, "old-1", "old-2")
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := mustAccept(t, s, "old-1", "new-1")
	if !got[0].Duplicate || got[1].Duplicate {
		t.Errorf("accept after reopening = %+v, want old-1 duplicate, new-1 new", got)
	}
	rep, err := s.Verify(context.Background())
	if err != nil || rep.Problem != nil || rep.Entries != 4 {
		t.Errorf("verify after reopening: %d entries, problem %v, err %v; want 4 entries, intact", rep.Entries, rep.Problem, err)
	}
}

// walSalts reads the salts of the WAL's header, which change at every WAL
// restart.
func walSalts(t *testing.T, s *Store) [8]byte {
	t.Helper()
	b, err := os.ReadFile(s.path + "-wal")
	if err != nil || len(b) < 24 {
		t.Fatalf("read WAL header: %d bytes, %v", len(b), err)
	}
	return [8]byte(b[16:24])
}

// Once a round copied the whole WAL, the checkpointer restarts it with a
// write of its own, so that the next write appends to it instead of
// restarting it (and syncing the new header inside its COMMIT); a store
// nobody writes to is left alone.
func TestCheckpointerRestartsWAL(t *testing.T) {
	s := openTest(t, Options{})
	mustAccept(t, s, "restart-1")
	testutil.Eventually(t, 10*time.Second, func() bool { return s.ckpt.restarts.Load() == 1 }, "the checkpointer did not restart the WAL")
	if v, ok, err := s.Get(context.Background(), "store", "wal.restarted"); err != nil || !ok || len(v) == 0 {
		t.Fatalf("no record of the restart: %q, %v, %v", v, ok, err)
	}
	testutil.Never(t, 3*checkpointEvery, func() bool { return s.ckpt.restarts.Load() != 1 },
		"the checkpointer kept writing to a store nobody writes to")
	// The next write appends: same header. (A round between the write
	// and the read restarts the WAL again; then look once more.)
	for attempt := 0; ; attempt++ {
		restarts, before := s.ckpt.restarts.Load(), walSalts(t, s)
		mustAccept(t, s, fmt.Sprintf("restart-next-%d", attempt))
		after := walSalts(t, s)
		if s.ckpt.restarts.Load() != restarts && attempt < 3 {
			testutil.Eventually(t, 10*time.Second, func() bool { return s.ckpt.restarts.Load() > restarts }, "restart")
			continue
		}
		if after != before {
			t.Fatalf("a write after the checkpointer's restart restarted the WAL (salts %x, then %x)", before, after)
		}
		break
	}
}
