package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
// duplicate (its id is returned). Throttled messages are folded (see
// store.Fold); held returns the entries their Folds ask for, for the
// caller to append.
func (t *wtx) enqueue(msgs []store.Message, payloads []string) (out []store.Enqueued, held []store.PreparedEntry, err error) {
	out = make([]store.Enqueued, len(msgs))
	for i, m := range msgs {
		if m.Fold != nil {
			var h *store.PreparedEntry
			if out[i], h, err = t.enqueueFolded(m, payloads[i]); err != nil {
				return nil, nil, err
			}
			if h != nil {
				held = append(held, *h)
			}
			continue
		}
		if out[i], err = t.insertMessage(m, payloads[i], m.NotBefore); err != nil {
			return nil, nil, err
		}
	}
	return out, held, nil
}

// insertMessage stores one message due at due (now when earlier).
func (t *wtx) insertMessage(m store.Message, payload string, due time.Time) (store.Enqueued, error) {
	now := store.FormatTime(t.now)
	next := now
	if due.After(t.now) {
		next = store.FormatTime(due)
	}
	var id int64
	err := t.queryRow(`INSERT INTO outbox (key, kind, target, incident, payload, next_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (key) DO NOTHING RETURNING id`,
		m.Key, m.Kind, m.Target, m.Incident, payload, next, now).Scan(&id)
	if err == nil {
		return store.Enqueued{ID: id}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.Enqueued{}, err
	}
	if err := t.queryRow(`SELECT id FROM outbox WHERE key = $1`, m.Key).Scan(&id); err != nil {
		return store.Enqueued{}, err
	}
	return store.Enqueued{ID: id, Duplicate: true}, nil
}

// enqueueFolded stores or folds one throttled message and records its
// key's state. The key's state row is locked for the transaction, and the
// waiting message is joined only while it is pending: a replica that
// leases it at the same time makes this message wait for the next one.
func (t *wtx) enqueueFolded(m store.Message, payload string) (store.Enqueued, *store.PreparedEntry, error) {
	f := m.Fold
	var id int64
	switch err := t.queryRow(`SELECT id FROM outbox WHERE key = $1`, m.Key).Scan(&id); {
	case err == nil:
		return store.Enqueued{ID: id, Duplicate: true}, nil, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return store.Enqueued{}, nil, err
	}
	if _, err := t.exec(`INSERT INTO kv (ns, key, value, updated_at) VALUES ($1, $2, '', $3) ON CONFLICT (ns, key) DO NOTHING`,
		store.FoldNS, f.Key, store.FormatTime(t.now)); err != nil {
		return store.Enqueued{}, nil, err
	}
	var raw string
	if err := t.queryRow(`SELECT value FROM kv WHERE ns = $1 AND key = $2 FOR UPDATE`, store.FoldNS, f.Key).Scan(&raw); err != nil {
		return store.Enqueued{}, nil, err
	}
	var st store.FoldState
	ok := raw != "" && json.Unmarshal([]byte(raw), &st) == nil // unreadable: start afresh rather than never send
	waiting, folded := false, 0
	var due time.Time
	if ok && st.Waiting != 0 {
		var next, count string
		err := t.queryRow(`UPDATE outbox SET payload = $1, updated_at = $2 WHERE id = $3 AND state = 'pending'
			RETURNING next_at, COALESCE((SELECT value FROM kv WHERE ns = $4 AND key = $3::text), '0')`,
			payload, store.FormatTime(t.now), st.Waiting, store.FoldedNS).Scan(&next, &count)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return store.Enqueued{}, nil, err
		default:
			waiting = true
			due, _ = store.ParseTime(next)
			folded, _ = strconv.Atoi(count)
		}
	}
	plan := store.PlanFold(st, ok, waiting, m.NotBefore, t.now)
	var res store.Enqueued
	if plan.Join {
		folded++
		// The message is kept, settled, under its key: a repeat of it is
		// a duplicate, not one more.
		now := store.FormatTime(t.now)
		if _, err := t.exec(`INSERT INTO outbox (key, kind, target, incident, payload, state, next_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, 'done', $6, $6, $6)`, m.Key, m.Kind, m.Target, m.Incident, payload, now); err != nil {
			return store.Enqueued{}, nil, err
		}
		if err := t.putKV(store.FoldedNS, strconv.FormatInt(st.Waiting, 10), strconv.Itoa(folded)); err != nil {
			return store.Enqueued{}, nil, err
		}
		res = store.Enqueued{ID: st.Waiting, Held: true, Folded: true, Due: due}
	} else {
		var err error
		if res, err = t.insertMessage(m, payload, plan.Due); err != nil || res.Duplicate {
			return res, nil, err
		}
		res.Held, res.Due = plan.Held, plan.Due
		b, err := json.Marshal(store.NextFoldState(f, plan, res.ID))
		if err != nil {
			return store.Enqueued{}, nil, err
		}
		if err := t.putKV(store.FoldNS, f.Key, string(b)); err != nil {
			return store.Enqueued{}, nil, err
		}
		if plan.Held {
			folded = 1
			if err := t.putKV(store.FoldedNS, strconv.FormatInt(res.ID, 10), "1"); err != nil {
				return store.Enqueued{}, nil, err
			}
		}
	}
	if !res.Held {
		return res, nil, nil
	}
	pe, want, err := store.HeldEntry(f, res.ID, res.Due, folded)
	if err != nil || !want {
		return res, nil, err
	}
	return res, &pe, nil
}

func (t *wtx) putKV(ns, key, value string) error {
	_, err := t.exec(`INSERT INTO kv (ns, key, value, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		ns, key, value, store.FormatTime(t.now))
	return err
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
		var held []store.PreparedEntry
		if out, held, err = t.enqueue(msgs, payloads); err != nil {
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
			RETURNING o.id, o.key, o.kind, o.target, o.incident, o.payload, o.attempts, o.last_error, o.created_at, c.next_at,
			COALESCE((SELECT value FROM kv WHERE ns = $5 AND key = o.id::text), '0')`,
			now, max, s.owner, store.FormatTime(until), store.FoldedNS)
		if err != nil {
			return err
		}
		for rows.Next() {
			var c claimed
			var payload, created, folded string
			if err := rows.Scan(&c.ID, &c.Key, &c.Kind, &c.Target, &c.Incident, &payload, &c.Attempts, &c.LastError, &created, &c.due, &folded); err != nil {
				rows.Close()
				return err
			}
			c.Folded, _ = strconv.Atoi(folded)
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
