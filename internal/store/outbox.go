package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

type preparedMessage struct {
	Message
	payload string
}

func prepareMessages(msgs []Message) ([]preparedMessage, error) {
	out := make([]preparedMessage, len(msgs))
	for i, m := range msgs {
		p, err := PrepareMessage(m)
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", i+1, err)
		}
		out[i] = preparedMessage{Message: m, payload: p}
	}
	return out, nil
}

// enqueue inserts messages inside the writer, folding throttled ones (see
// Fold); held returns the entries their Folds ask for, for the caller to
// append.
func (t *wtx) enqueue(msgs []preparedMessage) (out []Enqueued, held []prepared, err error) {
	out = make([]Enqueued, len(msgs))
	for i, m := range msgs {
		if m.Fold != nil {
			var h *prepared
			if out[i], h, err = t.enqueueFolded(m); err != nil {
				return nil, nil, err
			}
			if h != nil {
				held = append(held, *h)
			}
			continue
		}
		if out[i], err = t.insertMessage(m, m.NotBefore); err != nil {
			return nil, nil, err
		}
	}
	return out, held, nil
}

// insertMessage stores one message due at due (now when earlier).
func (t *wtx) insertMessage(m preparedMessage, due time.Time) (Enqueued, error) {
	now := FormatTime(t.now)
	next := now
	if due.After(t.now) {
		next = FormatTime(due)
	}
	res, err := t.exec(`INSERT INTO outbox (key, kind, target, incident, payload, next_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`,
		m.Key, m.Kind, m.Target, m.Incident, m.payload, next, now, now)
	if err != nil {
		return Enqueued{}, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Enqueued{}, err
	}
	if n == 1 {
		id, err := res.LastInsertId()
		if err != nil {
			return Enqueued{}, err
		}
		return Enqueued{ID: id}, nil
	}
	var id int64
	if err := t.queryRow(`SELECT id FROM outbox WHERE key = ?`, m.Key).Scan(&id); err != nil {
		t.dirty = true
		return Enqueued{}, err
	}
	return Enqueued{ID: id, Duplicate: true}, nil
}

// enqueueFolded stores or folds one throttled message and records its
// key's state.
func (t *wtx) enqueueFolded(m preparedMessage) (Enqueued, *prepared, error) {
	f := m.Fold
	var id int64
	switch err := t.queryRow(`SELECT id FROM outbox WHERE key = ?`, m.Key).Scan(&id); {
	case err == nil:
		return Enqueued{ID: id, Duplicate: true}, nil, nil
	case !errors.Is(err, sql.ErrNoRows):
		return Enqueued{}, nil, err
	}
	var st FoldState
	var raw string
	err := t.queryRow(`SELECT value FROM kv WHERE ns = ? AND key = ?`, FoldNS, f.Key).Scan(&raw)
	ok := err == nil
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Enqueued{}, nil, err
	default:
		if json.Unmarshal([]byte(raw), &st) != nil {
			ok = false // unreadable: start afresh rather than never send
		}
	}
	waiting, folded := false, 0
	var due time.Time
	if ok && st.Waiting != 0 {
		var state, next, count string
		err := t.queryRow(`SELECT o.state, o.next_at, COALESCE(k.value, '0') FROM outbox o
			LEFT JOIN kv k ON k.ns = ? AND k.key = CAST(o.id AS TEXT) WHERE o.id = ?`, FoldedNS, st.Waiting).Scan(&state, &next, &count)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return Enqueued{}, nil, err
		default:
			waiting = state == string(OutboxPending)
			due, _ = parseTime(next)
			folded, _ = strconv.Atoi(count)
		}
	}
	plan := PlanFold(st, ok, waiting, m.NotBefore, t.now)
	var res Enqueued
	if plan.Join {
		folded++
		// The message is kept, settled, under its key: a repeat of it is
		// a duplicate, not one more.
		now := FormatTime(t.now)
		if _, err := t.exec(`INSERT INTO outbox (key, kind, target, incident, payload, state, next_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, 'done', ?, ?, ?)`, m.Key, m.Kind, m.Target, m.Incident, m.payload, now, now, now); err != nil {
			return Enqueued{}, nil, err
		}
		if _, err := t.exec(`UPDATE outbox SET payload = ?, updated_at = ? WHERE id = ?`, m.payload, now, st.Waiting); err != nil {
			return Enqueued{}, nil, err
		}
		if err := t.putKV(FoldedNS, strconv.FormatInt(st.Waiting, 10), strconv.Itoa(folded)); err != nil {
			return Enqueued{}, nil, err
		}
		res = Enqueued{ID: st.Waiting, Held: true, Folded: true, Due: due}
	} else {
		var err error
		if res, err = t.insertMessage(m, plan.Due); err != nil || res.Duplicate {
			return res, nil, err
		}
		res.Held, res.Due = plan.Held, plan.Due
		b, err := json.Marshal(NextFoldState(f, plan, res.ID))
		if err != nil {
			return Enqueued{}, nil, err
		}
		if err := t.putKV(FoldNS, f.Key, string(b)); err != nil {
			return Enqueued{}, nil, err
		}
		if plan.Held {
			folded = 1
			if err := t.putKV(FoldedNS, strconv.FormatInt(res.ID, 10), "1"); err != nil {
				return Enqueued{}, nil, err
			}
		}
	}
	if !res.Held {
		return res, nil, nil
	}
	pe, want, err := HeldEntry(f, res.ID, res.Due, folded)
	if err != nil || !want {
		return res, nil, err
	}
	return res, &prepared{Entry: pe.Entry, detail: pe.DetailJSON}, nil
}

func (t *wtx) putKV(ns, key, value string) error {
	_, err := t.exec(`INSERT INTO kv (ns, key, value, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		ns, key, value, FormatTime(t.now))
	return err
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
		var held []prepared
		if out, held, err = t.enqueue(pm); err != nil {
			return err
		}
		for _, e := range out {
			if !e.Duplicate {
				return t.append(slices.Concat(prep, held), nil)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	return out, nil
}

const outboxColumns = `id, key, kind, target, incident, payload, state, attempts, next_at, last_error, created_at,
	COALESCE((SELECT value FROM kv WHERE ns = '` + FoldedNS + `' AND kv.key = CAST(outbox.id AS TEXT)), '0')`

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
			var payload, next, created, folded string
			if err := rows.Scan(&it.ID, &it.Key, &it.Kind, &it.Target, &it.Incident, &payload, &it.State,
				&it.Attempts, &next, &it.LastError, &created, &folded); err != nil {
				rows.Close()
				t.dirty = true
				return err
			}
			it.Payload = []byte(payload)
			it.Folded, _ = strconv.Atoi(folded)
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
