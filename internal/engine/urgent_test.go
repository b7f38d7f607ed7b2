package engine

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

// urgencyStore records, per write, whether the engine made it urgent
// (store.Urgent: answered at commit, before the fsync).
type urgencyStore struct {
	Store
	mu     sync.Mutex
	writes []string // "accept urgent", "claim container.stop", ...
}

func (s *urgencyStore) note(ctx context.Context, what string) {
	if store.IsUrgent(ctx) {
		what += " urgent"
	}
	s.mu.Lock()
	s.writes = append(s.writes, what)
	s.mu.Unlock()
}

func (s *urgencyStore) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

func (s *urgencyStore) Accept(ctx context.Context, as []alert.Alert) ([]store.Accepted, error) {
	s.note(ctx, "accept")
	return s.Store.Accept(ctx, as)
}

func (s *urgencyStore) AcceptClaimed(ctx context.Context, as []alert.Alert, lease time.Duration) ([]store.Accepted, []store.InboxItem, error) {
	s.note(ctx, "accept")
	return s.Store.AcceptClaimed(ctx, as, lease)
}

func (s *urgencyStore) AcceptSettled(ctx context.Context, as []alert.Alert, settled []*store.Settled, lease time.Duration) ([]store.Accepted, []store.InboxItem, []string, error) {
	s.note(ctx, "accept")
	return s.Store.AcceptSettled(ctx, as, settled, lease)
}

func (s *urgencyStore) ClaimAction(ctx context.Context, c store.ClaimRequest, es ...store.Entry) (store.Claim, error) {
	s.note(ctx, "claim "+c.Action)
	return s.Store.ClaimAction(ctx, c, es...)
}

func (s *urgencyStore) RecordAction(ctx context.Context, u store.ActionUpdate, es ...store.Entry) (store.ActionRun, bool, error) {
	s.note(ctx, "record "+string(u.State)+" "+u.Action)
	return s.Store.RecordAction(ctx, u, es...)
}

// TestUrgentWrites: the detector's alerts (Submit) and the claim of an
// idempotent action (container.pause) are urgent writes; a webhook's
// alerts (Accept), the claim of any other action (container.stop) and
// every outcome are ordinary, durable before they are answered. Both
// actions still run once and are journaled in full.
func TestUrgentWrites(t *testing.T) {
	const pb = `
- playbook: contain
  match: {rules: ["Terminal shell in container"]}
  actions:
    - do: container.pause
    - do: container.stop
`
	for _, tc := range []struct {
		name   string
		intake func(f *fixture, a alert.Alert) error
		want   []string
	}{
		{"detector", func(f *fixture, a alert.Alert) error {
			_, err := f.eng.Submit(context.Background(), []alert.Alert{a}, "detector")
			return err
		}, []string{"accept urgent", "claim container.pause urgent", "record succeeded container.pause", "claim container.stop", "record succeeded container.stop"}},
		{"webhook", func(f *fixture, a alert.Alert) error {
			_, err := f.eng.Accept(context.Background(), []alert.Alert{a})
			return err
		}, []string{"accept", "claim container.pause urgent", "record succeeded container.pause", "claim container.stop", "record succeeded container.stop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{}, pb)
			us := &urgencyStore{Store: f.st}
			f.eng.deps.Store = us
			f.start()
			a := shellAlert("3f9a1c2b7d4e")
			if err := tc.intake(f, a); err != nil {
				t.Fatal(err)
			}
			es := f.waitFor("both actions", func(es []store.Entry) bool { return count(es, store.ActionSucceeded) == 2 }, store.Filter{AlertID: a.ID})
			f.waitFinished()
			if got := us.seen(); !slices.Equal(got, tc.want) {
				t.Errorf("writes %q, want %q", got, tc.want)
			}
			if f.rec.count("container.pause") != 1 || f.rec.count("container.stop") != 1 {
				t.Errorf("pause ran %d times, stop %d; want once each", f.rec.count("container.pause"), f.rec.count("container.stop"))
			}
			if count(es, store.ActionStarted) != 2 {
				t.Errorf("journal:\n%s\nwant action.started for both", dump(es))
			}
		})
	}
}
