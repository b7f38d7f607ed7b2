package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/storetest"
)

// TestClaimActionAcrossReplicas: ClaimAction locks the journal's head with
// its reads, in one round trip; claims from three handles on one database
// at once (as three replicas would make them, urgent or not) still start
// each run once and never more destructive runs than the budget allows.
func TestClaimActionAcrossReplicas(t *testing.T) {
	s, url := openTest(t, store.Options{})
	handles := []*Store{s}
	for range 2 {
		h, err := Open(context.Background(), url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		handles = append(handles, h)
	}
	const runs, budget = 20, 7
	var mu sync.Mutex
	started := map[store.ActionKey]int{}
	destructive := 0
	var wg sync.WaitGroup
	for w := range 6 {
		h := handles[w%len(handles)]
		ctx := context.Background()
		if w%2 == 1 {
			ctx = store.Urgent(ctx)
		}
		wg.Go(func() {
			for i := range runs {
				key := store.ActionKey{AlertID: fmt.Sprintf("a-%d", i), Playbook: "contain"}
				c, err := h.ClaimAction(ctx, store.ClaimRequest{Key: key, Action: "container.kill", Destructive: i%2 == 0,
					Budget: store.Budget{Max: budget, Window: time.Hour}},
					store.Entry{Type: store.ActionStarted, AlertID: key.AlertID, Playbook: "contain", Action: "container.kill"})
				if err != nil {
					t.Error(err)
					return
				}
				if c.Outcome == store.ClaimRun {
					mu.Lock()
					started[key]++
					if i%2 == 0 {
						destructive++
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for k, n := range started {
		if n != 1 {
			t.Errorf("%s started %d times", k, n)
		}
	}
	if len(started) != runs/2+budget || destructive != budget {
		t.Errorf("%d runs started, %d destructive; want %d, %d", len(started), destructive, runs/2+budget, budget)
	}
	es, err := s.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.ActionStarted}})
	if err != nil || len(es) != len(started) {
		t.Fatalf("%d action.started entries, want %d (%v)", len(es), len(started), err)
	}
	storetest.MustVerify(t, s)

	// A run stored destructive (planned) counts against the budget even
	// when its claim does not say so.
	key := store.ActionKey{AlertID: "planned", Playbook: "contain"}
	if _, _, err := s.RecordAction(context.Background(), store.ActionUpdate{Key: key, Action: "container.kill", State: store.ActionStatePlanned, Destructive: true}); err != nil {
		t.Fatal(err)
	}
	c, err := s.ClaimAction(context.Background(), store.ClaimRequest{Key: key, Budget: store.Budget{Max: budget, Window: time.Hour}})
	if err != nil || c.Outcome != store.ClaimOverBudget {
		t.Fatalf("claim of a planned destructive run over the budget: %+v, %v", c, err)
	}
}
