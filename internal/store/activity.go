package store

import (
	"context"
	"fmt"
)

// Activity counts rows that exist only because things happened: a journal
// that is empty while they are not was emptied. `journal verify` uses it.
type Activity struct {
	Alerts     int64 `json:"alerts"`
	Incidents  int64 `json:"incidents"`
	ActionRuns int64 `json:"action_runs"`
}

// Any reports whether anything happened.
func (a Activity) Any() bool { return a.Alerts+a.Incidents+a.ActionRuns > 0 }

// ActivityCounter is implemented by backends that can count their rows
// besides the journal (not part of Backend).
type ActivityCounter interface {
	Activity(ctx context.Context) (Activity, error)
}

var _ ActivityCounter = (*Store)(nil)

// Activity counts alerts in the inbox, incidents and action runs.
func (s *Store) Activity(ctx context.Context) (Activity, error) {
	var a Activity
	if err := s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM inbox),
		(SELECT count(*) FROM incidents),
		(SELECT count(*) FROM action_runs)`).Scan(&a.Alerts, &a.Incidents, &a.ActionRuns); err != nil {
		return Activity{}, fmt.Errorf("count activity: %w", err)
	}
	return a, nil
}
