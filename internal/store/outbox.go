package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

type preparedMessage struct {
	Message
	payload string
}

func prepareMessages(msgs []Message) ([]preparedMessage, error) {
	out := make([]preparedMessage, len(msgs))
	for i, m := range msgs {
		if m.Key == "" || m.Kind == "" {
			return nil, fmt.Errorf("message %d: key and kind are required", i+1)
		}
		if err := errors.Join(checkText(m.Key), checkText(m.Kind), checkText(m.Target), checkText(m.Incident)); err != nil {
			return nil, fmt.Errorf("message %s: %w", m.Key, err)
		}
		p := string(m.Payload)
		if p == "" {
			p = "{}"
		}
		if !json.Valid([]byte(p)) {
			return nil, fmt.Errorf("message %s: payload is not valid JSON", m.Key)
		}
		out[i] = preparedMessage{Message: m, payload: p}
	}
	return out, nil
}

// enqueue inserts messages inside the writer.
func (t *wtx) enqueue(msgs []preparedMessage) ([]Enqueued, error) {
	out := make([]Enqueued, len(msgs))
	now := FormatTime(t.now)
	for i, m := range msgs {
		next := now
		if m.NotBefore.After(t.now) {
			next = FormatTime(m.NotBefore)
		}
		res, err := t.exec(`INSERT INTO outbox (key, kind, target, incident, payload, next_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
			m.Key, m.Kind, m.Target, m.Incident, m.payload, next, now, now)
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		if n == 1 {
			id, err := res.LastInsertId()
			if err != nil {
				return nil, err
			}
			out[i] = Enqueued{ID: id}
			continue
		}
		var id int64
		if err := t.queryRow(`SELECT id FROM outbox WHERE key = ?`, m.Key).Scan(&id); err != nil {
			t.dirty = true
			return nil, err
		}
		out[i] = Enqueued{ID: id, Duplicate: true}
	}
	return out, nil
}

// Enqueue adds messages to the outbox; see Outbox.
func (s *Store) Enqueue(ctx context.Context, msgs []Message, entries ...Entry) ([]Enqueued, error) {
	pm, err := prepareMessages(msgs)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	prep, err := prepareEntries(entries)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	var out []Enqueued
	err = s.write(ctx, len(pm)+len(prep), func(t *wtx) error {
		var err error
		if out, err = t.enqueue(pm); err != nil {
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

const outboxColumns = `id, key, kind, target, incident, payload, state, attempts, next_at, last_error, created_at`

// ClaimOutbox leases due messages; see Outbox.
func (s *Store) ClaimOutbox(ctx context.Context, max int, lease time.Duration) ([]OutboxItem, error) {
	if max <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim outbox: lease must be positive, got %s", lease)
	}
	var out []OutboxItem
	err := s.write(ctx, max, func(t *wtx) error {
		out = out[:0]
		now := FormatTime(t.now)
		rows, err := t.query(`SELECT `+outboxColumns+` FROM outbox WHERE state IN ('pending', 'leased')
			AND (next_at <= ? OR (state = 'leased' AND owner <> ?)) ORDER BY next_at, id LIMIT ?`, now, s.owner, max)
		if err != nil {
			return err
		}
		for rows.Next() {
			var it OutboxItem
			var payload, next, created string
			if err := rows.Scan(&it.ID, &it.Key, &it.Kind, &it.Target, &it.Incident, &payload, &it.State,
				&it.Attempts, &next, &it.LastError, &created); err != nil {
				rows.Close()
				t.dirty = true
				return err
			}
			it.Payload = []byte(payload)
			if it.CreatedAt, err = parseTime(created); err != nil {
				rows.Close()
				t.dirty = true
				return err
			}
			out = append(out, it)
		}
		if err := rows.Close(); err != nil {
			t.dirty = true
			return err
		}
		until := t.now.Add(lease)
		for i := range out {
			it := &out[i]
			it.State, it.Attempts, it.LeaseUntil = OutboxLeased, it.Attempts+1, until
			if _, err := t.exec(`UPDATE outbox SET state = 'leased', owner = ?, next_at = ?, attempts = ?, updated_at = ? WHERE id = ?`,
				s.owner, FormatTime(until), it.Attempts, now, it.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	return out, nil
}

// AckOutbox marks a message delivered; see Outbox.
func (s *Store) AckOutbox(ctx context.Context, id int64, entries ...Entry) error {
	return s.settleOutbox(ctx, "ack", id, OutboxDone, time.Time{}, "", entries)
}

// FailOutbox records a failed delivery; see Outbox.
func (s *Store) FailOutbox(ctx context.Context, id int64, retryAt time.Time, reason string, entries ...Entry) error {
	state := OutboxPending
	if retryAt.IsZero() {
		state = OutboxDead
	}
	return s.settleOutbox(ctx, "fail", id, state, retryAt, reason, entries)
}

func (s *Store) settleOutbox(ctx context.Context, verb string, id int64, state OutboxState, retryAt time.Time, reason string, entries []Entry) error {
	if err := checkText(reason); err != nil {
		return fmt.Errorf("%s outbox message %d: %w", verb, id, err)
	}
	prep, err := prepareEntries(entries)
	if err != nil {
		return fmt.Errorf("%s outbox message %d: %w", verb, id, err)
	}
	err = s.write(ctx, 1+len(prep), func(t *wtx) error {
		now := FormatTime(t.now)
		next := now
		if state == OutboxPending {
			next = FormatTime(retryAt)
		}
		n, err := t.affected(`UPDATE outbox SET state = ?, next_at = ?, owner = '', last_error = CASE WHEN ? = '' THEN last_error ELSE ? END,
			updated_at = ? WHERE id = ? AND state IN ('pending', 'leased')`, string(state), next, reason, reason, now, id)
		if err != nil {
			return err
		}
		if n == 0 {
			var one int
			return notFound(t.queryRow(`SELECT 1 FROM outbox WHERE id = ?`, id).Scan(&one))
		}
		return t.append(prep, nil)
	})
	if err != nil {
		return fmt.Errorf("%s outbox message %d: %w", verb, id, err)
	}
	return nil
}

// Get reads a value of the small key/value table notifiers keep state in.
func (s *Store) Get(ctx context.Context, ns, key string) ([]byte, bool, error) {
	var v string
	err := s.rdb.QueryRowContext(ctx, `SELECT value FROM kv WHERE ns = ? AND key = ?`, ns, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get %s/%s: %w", ns, key, err)
	}
	return []byte(v), true, nil
}

// Put writes a value of the key/value table (replacing any).
func (s *Store) Put(ctx context.Context, ns, key string, value []byte) error {
	if err := errors.Join(checkText(ns), checkText(key), checkText(string(value))); err != nil {
		return fmt.Errorf("put %s/%s: %w", ns, key, err)
	}
	err := s.write(ctx, 1, func(t *wtx) error {
		_, err := t.exec(`INSERT INTO kv (ns, key, value, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			ns, key, string(value), FormatTime(t.now))
		return err
	})
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", ns, key, err)
	}
	return nil
}
