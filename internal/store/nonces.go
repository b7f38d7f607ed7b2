package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// nonceNSPrefix keeps one-time keys apart from notifier state in the kv
// table: a nonce's value is its expiry (FormatTime, which sorts as text).
const nonceNSPrefix = "nonce:"

// FirstUse records key in ns until expires and reports whether it was not
// recorded already (or its record had expired); see Nonces. Expired keys of
// ns are deleted in the same transaction, so the table holds only the keys
// of the current window.
func (s *Store) FirstUse(ctx context.Context, ns, key string, expires time.Time) (bool, error) {
	if ns == "" || key == "" {
		return false, errors.New("record one-time key: namespace and key are required")
	}
	if err := errors.Join(checkText(ns), checkText(key)); err != nil {
		return false, fmt.Errorf("record one-time key %s/%s: %w", ns, key, err)
	}
	var first bool
	err := s.write(ctx, 2, func(t *wtx) error {
		first = false
		now := FormatTime(t.now)
		if _, err := t.exec(`DELETE FROM kv WHERE ns = ? AND value <= ?`, nonceNSPrefix+ns, now); err != nil {
			return err
		}
		// The delete above removed an expired record of key, so a conflict
		// here is a live one: the key was used.
		n, err := t.affected(`INSERT INTO kv (ns, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (ns, key) DO NOTHING`,
			nonceNSPrefix+ns, key, FormatTime(expires), now)
		if err != nil {
			return err
		}
		first = n == 1
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("record one-time key %s/%s: %w", ns, key, err)
	}
	return first, nil
}
