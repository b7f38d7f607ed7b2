package store

import (
	"context"
	"fmt"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

// AlertsSince returns the kept alerts received at or after since; see
// History.
func (s *Store) AlertsSince(ctx context.Context, since time.Time) ([]InboxItem, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT raw, received_at FROM inbox WHERE state = 'done' AND received_at >= ? ORDER BY received_at, rowid`, FormatTime(since))
	if err != nil {
		return nil, fmt.Errorf("read alerts since %s: %w", FormatTime(since), err)
	}
	defer rows.Close()
	var out []InboxItem
	for rows.Next() {
		var raw, received string
		if err := rows.Scan(&raw, &received); err != nil {
			return nil, fmt.Errorf("read alerts: %w", err)
		}
		it, err := HistoryItem(raw, received)
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

// HistoryItem decodes a stored alert and its reception time.
func HistoryItem(raw, received string) (InboxItem, error) {
	as, err := alert.Decode([]byte(raw))
	if err != nil || len(as) != 1 {
		return InboxItem{}, fmt.Errorf("read alerts: stored alert does not decode: %v", err)
	}
	at, err := parseTime(received)
	if err != nil {
		return InboxItem{}, fmt.Errorf("read alerts: %w", err)
	}
	return InboxItem{Alert: as[0], ReceivedAt: at}, nil
}
