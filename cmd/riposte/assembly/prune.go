package assembly

import (
	"context"
	"log/slog"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
)

// pruneEvery is how often serve prunes the store: processed alerts and
// settled messages older than the duplicate window (24 h), and node
// actions finished as long ago. The journal is never pruned.
const pruneEvery = time.Hour

// prune runs m.Prune at once and then every interval until ctx ends,
// logging what it deleted. Each replica of a cluster runs it; a prune is a
// set of deletes by age, so two at once only share the work.
func prune(ctx context.Context, m store.Maintenance, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		p, err := m.Prune(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("prune the store; retrying at the next interval", "err", err, "every", every)
		case p.Alerts+p.Outbox+p.NodeActions > 0:
			log.Info("store pruned", "alerts", p.Alerts, "outbox", p.Outbox, "node_actions", p.NodeActions)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
