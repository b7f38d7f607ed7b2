package store

import (
	"context"
	"testing"
)

// TestActivity: a fresh store has none; accepted alerts (with the
// incidents they open) count, whatever the journal holds.
func TestActivity(t *testing.T) {
	s := openTest(t, Options{})
	ctx := context.Background()
	a, err := s.Activity(ctx)
	if err != nil || a.Any() {
		t.Fatalf("fresh store: %+v %v", a, err)
	}
	mustAccept(t, s, "a-1", "a-2")
	a, err = s.Activity(ctx)
	if err != nil || a.Alerts != 2 || !a.Any() {
		t.Fatalf("after two alerts: %+v %v", a, err)
	}
}
