package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
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
