package engine

import (
	"context"
	"time"
)

// renewLoop renews the leases of the alerts this engine holds (queued or
// being processed) every third of a lease, until stop is closed: an alert
// whose actions run longer than a lease stays this replica's, instead of
// being taken over as abandoned by another replica (or by this one's next
// claim) while it still runs.
func (e *Engine) renewLoop(work context.Context, stop <-chan struct{}) {
	t := time.NewTicker(max(e.cfg.Lease/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		e.mu.Lock()
		ids := make([]string, 0, len(e.inflight))
		for id := range e.inflight {
			ids = append(ids, id)
		}
		e.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		if _, err := e.deps.Store.ExtendClaims(work, ids, e.cfg.Lease); err != nil {
			e.log.Warn("renew alert leases", "alerts", len(ids), "err", err)
		}
	}
}
