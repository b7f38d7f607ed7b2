package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
)

// AlertsSince returns the kept alerts received at or after since; see
// store.History.
func (s *Store) AlertsSince(ctx context.Context, since time.Time) ([]store.InboxItem, error) {
	rows, err := s.pool.Query(ctx, `SELECT raw, received_at FROM inbox WHERE state = 'done' AND received_at >= $1 ORDER BY received_at, n`, store.FormatTime(since))
	if err != nil {
		return nil, fmt.Errorf("read alerts since %s: %w", store.FormatTime(since), err)
	}
	defer rows.Close()
	var out []store.InboxItem
	for rows.Next() {
		var raw, received string
		if err := rows.Scan(&raw, &received); err != nil {
			return nil, fmt.Errorf("read alerts: %w", err)
		}
		it, err := store.HistoryItem(raw, received)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	return out, nil
}
