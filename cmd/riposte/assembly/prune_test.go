package assembly

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// TestPruneRuns: the loop serve starts deletes processed alerts once they
// are older than the duplicate window, and keeps one still pending.
func TestPruneRuns(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "riposte.db"), store.Options{DuplicateWindow: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	at := time.Now().UTC()
	mk := func(id string) alert.Alert {
		return alert.Alert{ID: id, Time: at, Rule: "Terminal shell in container", Priority: alert.PriorityNotice, Output: "x",
			OutputFields: map[string]any{"container.id": "3f9a1c2b7d4e"}}
	}
	if _, err := st.Accept(ctx, []alert.Alert{mk("done-1")}); err != nil {
		t.Fatal(err)
	}
	items, err := st.ClaimAlerts(ctx, 10, time.Minute)
	if err != nil || len(items) != 1 {
		t.Fatalf("claim: %v %v", items, err)
	}
	if _, err := st.Apply(ctx, store.Batch{Finish: []string{"done-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Accept(ctx, []alert.Alert{mk("pending-1")}); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { prune(lctx, st, 20*time.Millisecond, slog.New(slog.DiscardHandler)); close(done) }()
	processed := func() int {
		items, err := st.AlertsSince(ctx, at.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return len(items)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return processed() == 0 }, "processed alert not pruned")
	cancel()
	<-done
	if s, err := st.Stats(ctx); err != nil || s.InboxPending != 1 {
		t.Fatalf("pending alerts after prune: %+v %v, want the one still pending", s, err)
	}
}
