package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestOutbox(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})
	ctx := context.Background()
	msg := func(key string) Message {
		return Message{Key: key, Kind: "slack", Target: "#ir", Incident: "inc-1", Payload: []byte(`{"text":"` + key + `"}`)}
	}
	enq, err := s.Enqueue(ctx, []Message{msg("m1"), msg("m2")}, Entry{Type: Note, Detail: map[string]any{"queued": 2}})
	if err != nil || len(enq) != 2 || enq[0].Duplicate {
		t.Fatalf("enqueue %+v, %v", enq, err)
	}
	again, err := s.Enqueue(ctx, []Message{msg("m1")}, Entry{Type: Note})
	if err != nil || !again[0].Duplicate || again[0].ID != enq[0].ID {
		t.Fatalf("enqueue again %+v, %v", again, err)
	}
	if n := len(entriesOf(t, s, Note)); n != 1 {
		t.Fatalf("a duplicate enqueue journaled: %d notes", n)
	}
	later := c.Now().Add(time.Hour)
	if _, err := s.Enqueue(ctx, []Message{{Key: "m3", Kind: "email", NotBefore: later}}); err != nil {
		t.Fatal(err)
	}

	items, err := s.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil || len(items) != 2 || items[0].Key != "m1" || items[0].Attempts != 1 || items[0].State != OutboxLeased {
		t.Fatalf("claim %+v, %v", items, err)
	}
	if more, _ := s.ClaimOutbox(ctx, 10, time.Minute); len(more) != 0 {
		t.Fatalf("leased messages claimed again: %+v", more)
	}
	if err := s.AckOutbox(ctx, items[0].ID, Entry{Type: NotificationSent}); err != nil {
		t.Fatal(err)
	}
	if err := s.AckOutbox(ctx, items[0].ID, Entry{Type: NotificationSent}); err != nil {
		t.Fatal(err)
	}
	if n := len(entriesOf(t, s, NotificationSent)); n != 1 {
		t.Fatalf("acked twice, %d entries", n)
	}
	retry := c.Now().Add(Backoff(items[1].Attempts, 30*time.Second, 10*time.Minute))
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
	// A lease that runs out makes the message claimable again.
	c.Add(2 * time.Minute)
	got, _ = s.ClaimOutbox(ctx, 10, time.Minute)
	if len(got) != 1 || got[0].Key != "m3" || got[0].Attempts != 2 {
		t.Fatalf("after lease expiry %+v", got)
	}
	if err := s.AckOutbox(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ack unknown: %v", err)
	}
	for _, bad := range [][]Message{{{Kind: "slack"}}, {{Key: "k"}}, {{Key: "k", Kind: "x", Payload: []byte("{")}}} {
		if _, err := s.Enqueue(ctx, bad); err == nil {
			t.Fatalf("enqueue %+v succeeded", bad)
		}
	}
	mustVerify(t, s)
}

func TestOutboxSurvivesRestart(t *testing.T) {
	path := PathIn(filepath.Join(t.TempDir(), "d"))
	ctx := context.Background()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, []Message{{Key: "a", Kind: "slack"}, {Key: "b", Kind: "slack"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ClaimOutbox(ctx, 1, time.Hour); len(got) != 1 {
		t.Fatal("claim")
	}
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.ClaimOutbox(ctx, 10, time.Minute)
	if err != nil || len(got) != 2 {
		t.Fatalf("after restart: %+v, %v (the dead process's lease must not hold)", got, err)
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {4, 8 * time.Second}, {7, time.Minute}, {200, time.Minute},
	} {
		if got := Backoff(tc.attempt, time.Second, time.Minute); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.attempt, got, tc.want)
		}
	}
}

func TestIncidents(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now, IncidentWindow: 10 * time.Minute})
	ctx := context.Background()
	at := c.Now()
	incident := func(container, rule string, at time.Time) (string, bool) {
		t.Helper()
		id, created, err := s.Incident(ctx, container, rule, at)
		if err != nil {
			t.Fatal(err)
		}
		return id, created
	}
	first, created := incident("c1", "shell", at)
	if !created {
		t.Fatal("first alert did not open an incident")
	}
	for _, tc := range []struct {
		name      string
		container string
		rule      string
		at        time.Time
		same      bool
	}{
		{"same container and rule, 5m later", "c1", "shell", at.Add(5 * time.Minute), true},
		{"window slides with the last alert", "c1", "shell", at.Add(14 * time.Minute), true},
		{"an older alert joins", "c1", "shell", at.Add(time.Minute), true},
		{"other rule", "c1", "write below etc", at, false},
		{"other container", "c2", "shell", at, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, created := incident(tc.container, tc.rule, tc.at)
			if (id == first) != tc.same || created == tc.same {
				t.Fatalf("incident %s created=%v; same as first: want %v", id, created, tc.same)
			}
		})
	}
	if id, created := incident("c1", "shell", at.Add(25*time.Minute)); !created || id == first {
		t.Fatal("an alert past the window joined the incident")
	}
	in, err := s.GetIncident(ctx, first)
	if err != nil || in.Alerts != 4 || !in.LastSeen.Equal(at.Add(14*time.Minute)) || in.State != IncidentStateOpen {
		t.Fatalf("incident %+v, %v", in, err)
	}
	changed, err := s.SetIncidentState(ctx, first, IncidentStateReleased, Entry{Type: IncidentReleased, Actor: "slack:U1"})
	if err != nil || !changed {
		t.Fatalf("release: %v %v", changed, err)
	}
	if changed, _ := s.SetIncidentState(ctx, first, IncidentStateReleased, Entry{Type: IncidentReleased}); changed {
		t.Fatal("released twice")
	}
	if _, err := s.SetIncidentState(ctx, "inc-nope", IncidentStateReleased); !errors.Is(err, ErrNotFound) {
		t.Fatalf("release unknown: %v", err)
	}
	opened := entriesOf(t, s, IncidentOpened)
	if len(opened) != 4 || opened[0].Detail["incident"] != first || opened[0].Detail["container_id"] != "c1" {
		t.Fatalf("incident.opened entries %+v", opened)
	}
	if n := len(entriesOf(t, s, IncidentReleased)); n != 1 {
		t.Fatalf("%d incident.released entries", n)
	}
	open, err := s.ListIncidents(ctx, IncidentFilter{State: IncidentStateOpen})
	if err != nil || len(open) != 3 {
		t.Fatalf("open incidents %+v, %v", open, err)
	}
	all, _ := s.ListIncidents(ctx, IncidentFilter{Limit: 2})
	if len(all) != 2 {
		t.Fatalf("limit: %d", len(all))
	}
	if _, err := s.GetIncident(ctx, "inc-nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	mustVerify(t, s)
}

func TestKV(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	if err := s.Put(ctx, "pagerduty.dedup", "inc-1", []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "pagerduty.dedup", "inc-1", []byte("def")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(ctx, "pagerduty.dedup", "inc-1"); string(v) != "def" || !ok || err != nil {
		t.Fatalf("get %q %v %v", v, ok, err)
	}
}
