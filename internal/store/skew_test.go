package store

import (
	"context"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

// TestIncidentClockSkew: an alert time far from the receive time (a sender
// dated 2099 or 1970) is grouped by the receive time, so it cannot absorb
// later alerts into one incident; within the tolerance the sender's time
// groups (a backlog received late keeps its times). Both times are
// journaled.
func TestIncidentClockSkew(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	future := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openTest(t, Options{IncidentWindow: 10 * time.Minute, ClockSkew: 5 * time.Minute})
	steps := []struct {
		name           string
		sent, received time.Time
		wantSame       int // index of the step whose incident it joins; -1: a new one
		wantLastSeen   time.Time
	}{
		{"dated 2099", future, t0, -1, t0},
		{"an hour later, right clock", t0.Add(time.Hour), t0.Add(time.Hour), -1, t0.Add(time.Hour)},
		{"received 3m late, within the tolerance", t0.Add(time.Hour + 5*time.Minute), t0.Add(time.Hour + 8*time.Minute), 1, t0.Add(time.Hour + 5*time.Minute)},
		{"dated 1970", time.Unix(0, 0), t0.Add(3 * time.Hour), -1, t0.Add(3 * time.Hour)},
		{"no receive time: the sender's", t0.Add(3*time.Hour + time.Minute), time.Time{}, 3, t0.Add(3*time.Hour + time.Minute)},
	}
	ids := make([]string, len(steps))
	for i, st := range steps {
		refs, err := s.IncidentsFor(ctx, []IncidentQuery{{ContainerID: "c1", Rule: "r", At: st.sent, ReceivedAt: st.received}})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = refs[0].ID
		if st.wantSame < 0 && !refs[0].Created {
			t.Errorf("%s: joined an open incident, want a new one", st.name)
		}
		if st.wantSame >= 0 && ids[i] != ids[st.wantSame] {
			t.Errorf("%s: incident %s, want %s", st.name, ids[i], ids[st.wantSame])
		}
		in, err := s.GetIncident(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if !in.LastSeen.Equal(st.wantLastSeen) {
			t.Errorf("%s: last seen %s, want %s", st.name, in.LastSeen, st.wantLastSeen)
		}
	}
	opened := entriesOf(t, s, IncidentOpened)
	if len(opened) != 3 {
		t.Fatalf("%d incident.opened entries, want 3", len(opened))
	}
	d := opened[0].Detail
	if d["alert_time"] != FormatTime(future) || d["received_at"] != FormatTime(t0) || d["grouped_by"] == nil {
		t.Errorf("incident.opened of the 2099 alert: %v", d)
	}
	if d := opened[1].Detail; d["alert_time"] != nil {
		t.Errorf("incident.opened of a right-clock alert says it was skewed: %v", d)
	}
}

// TestAcceptClaimedClockSkew is the same through AcceptClaimed (the
// engine's own alerts, grouped at once): the receive time is the store's
// clock, and alert.received keeps the sender's time.
func TestAcceptClaimedClockSkew(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	future := testAlert("a-future")
	future.Time = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	_, items, err := s.AcceptClaimed(ctx, []alert.Alert{future}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	later := testAlert("a-later")
	later.Time = clk.Now()
	_, items2, err := s.AcceptClaimed(ctx, []alert.Alert{later}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if items[0].Incident == items2[0].Incident {
		t.Errorf("an alert an hour after one dated 2099 joined its incident %s", items[0].Incident)
	}
	rec := entriesOf(t, s, AlertReceived)
	if len(rec) != 2 || rec[0].Detail["alert_time"] != FormatTime(future.Time) || rec[0].Detail["clock_skew"] == nil {
		t.Errorf("alert.received of the 2099 alert: %+v", rec[0].Detail)
	}
	if rec[1].Detail["alert_time"] != nil {
		t.Errorf("alert.received of a right-clock alert says it was skewed: %v", rec[1].Detail)
	}
	mustVerify(t, s)
}
