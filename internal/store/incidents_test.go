package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

// TestIncidentsJoinedInOneBatch: the incidents a batch's alerts join are
// updated in one statement (in chunks): each keeps its own count and
// latest time, whether it was open before the batch or opened in it, over
// more incidents than one chunk takes.
func TestIncidentsJoinedInOneBatch(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := openTest(t, Options{Now: func() time.Time { return t0.Add(5 * time.Minute) }})
	ctx := context.Background()
	const containers = 2*exactChunk + 8
	alertIn := func(id string, c int, at time.Time) alert.Alert {
		a := testAlert(id)
		a.OutputFields["container.id"] = fmt.Sprintf("c-%02d", c)
		a.Time = at
		return a
	}
	accept := func(as []alert.Alert) []string {
		t.Helper()
		settled := make([]*Settled, len(as))
		for i := range settled {
			settled[i] = &Settled{}
		}
		_, _, incs, err := s.AcceptSettled(ctx, as, settled, 0)
		if err != nil {
			t.Fatal(err)
		}
		return incs
	}
	// The first half opens its incidents before the batch.
	var first []alert.Alert
	for c := 0; c < containers/2; c++ {
		first = append(first, alertIn(fmt.Sprintf("first-%d", c), c, t0))
	}
	before := accept(first)
	var batch []alert.Alert
	for c := 0; c < containers; c++ {
		for k, d := range []time.Duration{time.Minute, 3 * time.Minute, 2 * time.Minute} {
			batch = append(batch, alertIn(fmt.Sprintf("batch-%d-%d", c, k), c, t0.Add(d)))
		}
	}
	incs := accept(batch)
	for c := 0; c < containers; c++ {
		id, want := incs[3*c], 3
		if c < containers/2 {
			want++
			if id != before[c] {
				t.Fatalf("container %d: incident %s, want the open one %s", c, id, before[c])
			}
		}
		if incs[3*c+1] != id || incs[3*c+2] != id {
			t.Fatalf("container %d: alerts in incidents %q, want one", c, incs[3*c:3*c+3])
		}
		in, err := s.GetIncident(ctx, id)
		if err != nil || in.Alerts != want || !in.LastSeen.Equal(t0.Add(3*time.Minute)) {
			t.Fatalf("container %d: incident %+v, %v; want %d alerts, last seen %s", c, in, err, want, t0.Add(3*time.Minute))
		}
	}
}

// TestIncidentLookupLatestOpen: a writer that does not remember an
// incident (a restart) finds the latest open one of the container and
// rule, when an earlier one is still open too.
func TestIncidentLookupLatestOpen(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	path := PathIn(t.TempDir())
	open := func() *Store {
		t.Helper()
		s, err := Open(path, Options{Now: func() time.Time { return t0.Add(time.Hour) }, ClockSkew: 2 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	s := open()
	first, _, err := s.Incident(ctx, "c-1", "r", t0)
	if err != nil {
		t.Fatal(err)
	}
	second, created, err := s.Incident(ctx, "c-1", "r", t0.Add(30*time.Minute))
	if err != nil || !created || second == first {
		t.Fatalf("second incident %s (created %v), %v; want a new one after the window", second, created, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	defer s.Close()
	got, created, err := s.Incident(ctx, "c-1", "r", t0.Add(35*time.Minute))
	if err != nil || created || got != second {
		t.Fatalf("incident after a restart: %s (created %v), %v; want the latest open one, %s", got, created, err, second)
	}
}
