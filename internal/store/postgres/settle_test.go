package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/storetest"
)

// TestClusterAcceptSettled: two replicas settling alerts of one container
// and rule at once, from several callers each, in batches of one and of
// several alerts, open one incident, and it counts every alert; the
// incident.opened is journaled once, right after its alert's
// alert.received, and the chain verifies.
func TestClusterAcceptSettled(t *testing.T) {
	url := pg.Database(t)
	ctx := context.Background()
	var replicas []*Store
	for range 2 {
		s, err := Open(ctx, url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		replicas = append(replicas, s)
	}
	const callers, calls = 4, 25 // per replica; call k carries 1 + k%3 alerts
	var mu sync.Mutex
	seen := make(map[string]int) // incident id -> alerts settled into it
	total := 0
	var wg sync.WaitGroup
	for r, s := range replicas {
		for c := range callers {
			wg.Go(func() {
				for k := range calls {
					var as []alert.Alert
					var settled []*store.Settled
					for j := range 1 + k%3 {
						id := fmt.Sprintf("r%d-c%d-%d-%d", r, c, k, j)
						as = append(as, storetest.Alert(id))
						settled = append(settled, &store.Settled{Entries: []store.Entry{{Type: store.PlaybookMatched,
							AlertID: id, Playbook: "contain", Detail: map[string]any{"incident": store.TheIncident}}}})
					}
					acc, items, incs, err := s.AcceptSettled(ctx, as, settled, 0)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for i := range as {
						if acc[i].Duplicate || incs[i] == "" {
							t.Errorf("alert %s: %+v, incident %q", as[i].ID, acc[i], incs[i])
						}
						seen[incs[i]]++
						total++
					}
					mu.Unlock()
					if len(items) != 0 {
						t.Errorf("lease 0 returned items %+v", items)
					}
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	open, err := replicas[0].ListIncidents(ctx, store.IncidentFilter{State: store.IncidentStateOpen})
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || len(seen) != 1 || seen[open[0].ID] != total || open[0].Alerts != total {
		t.Fatalf("open incidents %+v, alerts per incident %v: want one incident counting all %d alerts", open, seen, total)
	}
	es, err := replicas[1].Entries(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	opened, matched := 0, 0
	for i, e := range es {
		switch e.Type {
		case store.IncidentOpened:
			opened++
			if i == 0 || es[i-1].Type != store.AlertReceived {
				t.Fatalf("incident.opened at seq %d does not follow an alert.received", e.Seq)
			}
		case store.PlaybookMatched:
			matched++
			if e.Detail["incident"] != open[0].ID {
				t.Fatalf("playbook.matched %+v: want incident %s", e, open[0].ID)
			}
		}
	}
	if opened != 1 || matched != total {
		t.Fatalf("%d incident.opened, %d playbook.matched; want 1 and %d", opened, matched, total)
	}
	st, err := replicas[0].Stats(ctx)
	if err != nil || st.InboxPending != 0 || st.InboxProcessing != 0 {
		t.Fatalf("stats %+v, %v: want every alert done", st, err)
	}
	storetest.MustVerify(t, replicas[0])
}
