package engine

import (
	"context"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// TestLeaseRenewedWhileActionRuns: an action that runs for several leases
// keeps its alert claimed (the engine renews the lease), so no claim (of
// this process or, on a shared store, another replica) takes it over.
func TestLeaseRenewedWhileActionRuns(t *testing.T) {
	const lease = time.Second
	f := newFixture(t, Config{Lease: lease}, containPlaybook)
	release := make(chan struct{})
	f.rec.fail = func(req actions.Request, _ int) error {
		if req.Action == "container.snapshot" {
			<-release
		}
		return nil
	}
	f.start()
	a := shellAlert("3f9a1c2b7d4e")
	f.submit(a)
	f.waitFor("snapshot started", func(es []store.Entry) bool { return has(es, store.ActionStarted) }, store.Filter{AlertID: a.ID})
	testutil.Never(t, 3*lease, func() bool {
		items, err := f.st.ClaimAlerts(context.Background(), 10, lease)
		return err != nil || len(items) > 0
	}, "the running alert's lease ran out and it was claimed again")
	close(release)
	f.waitFor("note", func(es []store.Entry) bool { return has(es, store.Note) }, store.Filter{AlertID: a.ID})
	if n := f.rec.count("container.snapshot"); n != 1 {
		t.Fatalf("snapshot ran %d times", n)
	}
}
