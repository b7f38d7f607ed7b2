package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

// TestActivity: a fresh store has none; accepted alerts count.
func TestActivity(t *testing.T) {
	s, _ := openTest(t, store.Options{})
	ctx := context.Background()
	a, err := s.Activity(ctx)
	if err != nil || a.Any() {
		t.Fatalf("fresh store: %+v %v", a, err)
	}
	as := []alert.Alert{
		{ID: "a-1", Time: time.Now(), Rule: "r", Priority: alert.PriorityWarning, OutputFields: map[string]any{"container.id": "3f9a1c2b4d5e"}},
		{ID: "a-2", Time: time.Now(), Rule: "r", Priority: alert.PriorityWarning, OutputFields: map[string]any{"container.id": "3f9a1c2b4d5e"}},
	}
	if _, err := s.Accept(ctx, as); err != nil {
		t.Fatal(err)
	}
	a, err = s.Activity(ctx)
	if err != nil || a.Alerts != 2 {
		t.Fatalf("after two alerts: %+v %v", a, err)
	}
}
