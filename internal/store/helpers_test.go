package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

// openTest opens a store in a fresh directory and closes it at the end.
func openTest(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(PathIn(filepath.Join(t.TempDir(), "data")), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// testAlert is a realistic Falco alert (about 700 bytes of JSON).
func testAlert(id string) alert.Alert {
	return alert.Alert{
		ID:       id,
		Time:     time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Rule:     "Terminal shell in container",
		Priority: alert.PriorityWarning,
		Output:   "A shell was spawned in a container with an attached terminal (user=root user_loginuid=-1 container_id=3f9a1c2b4d5e image=staging/api:1.4 shell=bash parent=runc cmdline=bash terminal=34816)",
		OutputFields: map[string]any{
			"container.id":               "3f9a1c2b4d5e",
			"container.name":             "api-7d9f",
			"container.image.repository": "staging/api",
			"container.image.tag":        "1.4",
			"evt.time":                   int64(1740830400000000000),
			"proc.cmdline":               "bash",
			"proc.name":                  "bash",
			"proc.pname":                 "runc",
			"user.name":                  "root",
		},
		Source:   "syscall",
		Tags:     []string{"container", "shell", "mitre_execution"},
		Hostname: "node-1",
	}
}

func mustAccept(t testing.TB, s *Store, ids ...string) []Accepted {
	t.Helper()
	as := make([]alert.Alert, len(ids))
	for i, id := range ids {
		as[i] = testAlert(id)
	}
	got, err := s.Accept(context.Background(), as)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func alertID(i int) string { return fmt.Sprintf("a-%08d", i) }

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Microsecond) // distinct, increasing times
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// entriesOf returns the journal's entries of one type.
func entriesOf(t testing.TB, s *Store, typ EntryType) []Entry {
	t.Helper()
	es, err := s.Entries(context.Background(), Filter{Types: []EntryType{typ}})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func mustVerify(t testing.TB, s *Store) Report {
	t.Helper()
	rep, err := s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("journal does not verify: %s", rep.Problem.Message)
	}
	return rep
}
