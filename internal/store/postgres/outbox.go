package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/store"
)

func prepareMessages(msgs []store.Message) ([]string, error) {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		p, err := store.PrepareMessage(m)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i+1, err)
		}
		out[i] = p
	}
	return out, nil
}

// enqueue inserts messages inside a transaction; a key already there is a
// duplicate (its id is returned).
func (t *wtx) enqueue(msgs []store.Message, payloads []string) ([]store.Enqueued, error) {
	out := make([]store.Enqueued, len(msgs))
	now := store.FormatTime(t.now)
	for i, m := range msgs {
		next := now
		if m.NotBefore.After(t.now) {
			next = store.FormatTime(m.NotBefore)
		}
		var id int64
		err := t.queryRow(`INSERT INTO outbox (key, kind, target, incident, payload, next_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (key) DO NOTHING RETURNING id`,
			m.Key, m.Kind, m.Target, m.Incident, payloads[i], next, now).Scan(&id)
		if err == nil {
			out[i] = store.Enqueued{ID: id}
			continue
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		if err := t.queryRow(`SELECT id FROM outbox WHERE key = $1`, m.Key).Scan(&id); err != nil {
			return nil, err
		}
		out[i] = store.Enqueued{ID: id, Duplicate: true}
	}
	return out, nil
}

// Enqueue adds messages to the outbox; see store.Outbox.
func (s *Store) Enqueue(ctx context.Context, msgs []store.Message, entries ...store.Entry) ([]store.Enqueued, error) {
	payloads, err := prepareMessages(msgs)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	prep, err := store.PrepareEntries(entries)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	var out []store.Enqueued
	err = s.write(ctx, true, func(t *wtx) error {
		var err error
		if out, err = t.enqueue(msgs, payloads); err != nil {
			return err
		}
		for _, e := range out {
			if !e.Duplicate {
				return t.append(prep, nil)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	return out, nil
}

// ClaimOutbox leases due messages: pending ones whose time has come and
// leased ones whose lease ran out (another replica's lease holds until
// then). Rows another transaction is claiming are skipped.
func (s *Store) ClaimOutbox(ctx context.Context, max int, lease time.Duration) ([]store.OutboxItem, error) {
	if max <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim outbox: lease must be positive, got %s", lease)
	}
	type claimed struct {
		store.OutboxItem
		due string
	}
	var got []claimed
	err := s.write(ctx, false, func(t *wtx) error {
		got = got[:0]
		now := store.FormatTime(t.now)
		until := t.now.Add(lease)
		rows, err := t.tx.Query(t.ctx, `WITH c AS (
			SELECT id, next_at FROM outbox WHERE state IN ('pending', 'leased') AND next_at <= $1
			ORDER BY next_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
			UPDATE outbox o SET state = 'leased', owner = $3, next_at = $4, attempts = o.attempts + 1, updated_at = $1
			FROM c WHERE o.id = c.id
			RETURNING o.id, o.key, o.kind, o.target, o.incident, o.payload, o.attempts, o.last_error, o.created_at, c.next_at`,
			now, max, s.owner, store.FormatTime(until))
		if err != nil {
			return err
		}
		for rows.Next() {
			var c claimed
			var payload, created string
			if err := rows.Scan(&c.ID, &c.Key, &c.Kind, &c.Target, &c.Incident, &payload, &c.Attempts, &c.LastError, &created, &c.due); err != nil {
				rows.Close()
				return err
			}
			c.Payload, c.State, c.LeaseUntil = []byte(payload), store.OutboxLeased, until
			if c.CreatedAt, err = store.ParseTime(created); err != nil {
				rows.Close()
				return err
			}
			got = append(got, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	slices.SortFunc(got, func(a, b claimed) int {
		if c := strings.Compare(a.due, b.due); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	out := make([]store.OutboxItem, len(got))
	for i := range got {
		out[i] = got[i].OutboxItem
	}
	return out, nil
}

// AckOutbox marks a message delivered; see store.Outbox.
func (s *Store) AckOutbox(ctx context.Context, id int64, entries ...store.Entry) error {
	return s.settleOutbox(ctx, "ack", id, store.OutboxDone, time.Time{}, "", entries)
}

// FailOutbox records a failed delivery; see store.Outbox.
func (s *Store) FailOutbox(ctx context.Context, id int64, retryAt time.Time, reason string, entries ...store.Entry) error {
	state := store.OutboxPending
	if retryAt.IsZero() {
		state = store.OutboxDead
	}
	return s.settleOutbox(ctx, "fail", id, state, retryAt, reason, entries)
}

func (s *Store) settleOutbox(ctx context.Context, verb string, id int64, state store.OutboxState, retryAt time.Time, reason string, entries []store.Entry) error {
	if err := store.CheckText(reason); err != nil {
		return fmt.Errorf("%s outbox message %d: %w", verb, id, err)
	}
	prep, err := store.PrepareEntries(entries)
	if err != nil {
		return fmt.Errorf("%s outbox message %d: %w", verb, id, err)
	}
	err = s.write(ctx, len(prep) > 0, func(t *wtx) error {
		now := store.FormatTime(t.now)
		next := now
		if state == store.OutboxPending {
			next = store.FormatTime(retryAt)
		}
		n, err := t.exec(`UPDATE outbox SET state = $1, next_at = $2, owner = '',
			last_error = CASE WHEN $3 = '' THEN last_error ELSE $3 END, updated_at = $4
			WHERE id = $5 AND state IN ('pending', 'leased')`, string(state), next, reason, now, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return t.exists(`SELECT 1 FROM outbox WHERE id = $1`, id)
		}
		return t.append(prep, nil)
	})
	if err != nil {
		return fmt.Errorf("%s outbox message %d: %w", verb, id, err)
	}
	return nil
}

// Get reads a value of the key/value table notifiers keep state in.
func (s *Store) Get(ctx context.Context, ns, key string) ([]byte, bool, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM kv WHERE ns = $1 AND key = $2`, ns, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get %s/%s: %w", ns, key, err)
	}
	return []byte(v), true, nil
}

// Put writes a value of the key/value table (replacing any).
func (s *Store) Put(ctx context.Context, ns, key string, value []byte) error {
	if err := errors.Join(store.CheckText(ns), store.CheckText(key), store.CheckText(string(value))); err != nil {
		return fmt.Errorf("put %s/%s: %w", ns, key, err)
	}
	err := s.write(ctx, false, func(t *wtx) error {
		_, err := t.exec(`INSERT INTO kv (ns, key, value, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			ns, key, string(value), store.FormatTime(t.now))
		return err
	})
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", ns, key, err)
	}
	return nil
}

// nonceNSPrefix keeps one-time keys apart from notifier state in kv; a
// nonce's value is its expiry (FormatTime, which sorts as text).
const nonceNSPrefix = "nonce:"

// FirstUse records key in ns until expires and reports whether it was not
// recorded already (or had expired); see store.Nonces. Replicas share the
// table, so a signed request replayed to another replica is refused too.
func (s *Store) FirstUse(ctx context.Context, ns, key string, expires time.Time) (bool, error) {
	if ns == "" || key == "" {
		return false, errors.New("record one-time key: namespace and key are required")
	}
	if err := errors.Join(store.CheckText(ns), store.CheckText(key)); err != nil {
		return false, fmt.Errorf("record one-time key %s/%s: %w", ns, key, err)
	}
	var first bool
	err := s.write(ctx, false, func(t *wtx) error {
		now := store.FormatTime(t.now)
		if _, err := t.exec(`DELETE FROM kv WHERE ns = $1 AND value <= $2`, nonceNSPrefix+ns, now); err != nil {
			return err
		}
		n, err := t.exec(`INSERT INTO kv (ns, key, value, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (ns, key) DO NOTHING`,
			nonceNSPrefix+ns, key, store.FormatTime(expires), now)
		first = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("record one-time key %s/%s: %w", ns, key, err)
	}
	return first, nil
}
