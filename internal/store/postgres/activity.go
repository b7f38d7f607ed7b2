package postgres

import (
	"context"
	"fmt"

	"github.com/riposte-sec/riposte/internal/store"
)

var _ store.ActivityCounter = (*Store)(nil)

// Activity counts alerts in the inbox, incidents and action runs (see
// store.Activity: `journal verify` fails an empty journal beside them).
func (s *Store) Activity(ctx context.Context) (store.Activity, error) {
	var a store.Activity
	if s.closed.Load() {
		return a, store.ErrClosed
	}
	if err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM inbox),
		(SELECT count(*) FROM incidents),
		(SELECT count(*) FROM action_runs)`).Scan(&a.Alerts, &a.Incidents, &a.ActionRuns); err != nil {
		return store.Activity{}, fmt.Errorf("count activity: %w", err)
	}
	return a, nil
}
