package postgres

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

type acceptItem struct {
	id, raw         string
	rec             store.PreparedEntry
	container, rule string
	at              time.Time
}

// Accept stores alerts and journals them in one transaction; see
// store.Inbox. It returns after the commit.
func (s *Store) Accept(ctx context.Context, alerts []alert.Alert) ([]store.Accepted, error) {
	out, _, err := s.accept(ctx, alerts, 0)
	return out, err
}

// AcceptClaimed is Accept with the new alerts claimed for this handle and
// their incidents found in the same transaction; see store.Inbox.
func (s *Store) AcceptClaimed(ctx context.Context, alerts []alert.Alert, lease time.Duration) ([]store.Accepted, []store.InboxItem, error) {
	if lease <= 0 {
		return nil, nil, fmt.Errorf("accept alerts: lease must be positive, got %s", lease)
	}
	return s.accept(ctx, alerts, lease)
}

func (s *Store) accept(ctx context.Context, alerts []alert.Alert, claim time.Duration) ([]store.Accepted, []store.InboxItem, error) {
	if len(alerts) == 0 {
		return nil, nil, nil
	}
	items := make([]acceptItem, len(alerts))
	now := s.now()
	for i := range alerts {
		a := &alerts[i]
		if err := store.CheckAlertID(a.ID); err != nil {
			return nil, nil, fmt.Errorf("accept alert %d: %w", i+1, err)
		}
		raw, err := a.MarshalJSON()
		if err != nil {
			return nil, nil, fmt.Errorf("accept alert %s: %w", a.ID, err)
		}
		rec, err := store.ReceivedEntry(a, now, s.opts.ClockSkew)
		if err != nil {
			return nil, nil, fmt.Errorf("accept alert %s: %w", a.ID, err)
		}
		items[i] = acceptItem{id: a.ID, raw: string(raw), rec: rec}
		if claim > 0 {
			items[i].container, items[i].rule, items[i].at = a.Field("container.id"), a.Rule, a.Time
			if err := errors.Join(store.CheckText(items[i].container), store.CheckText(items[i].rule)); err != nil {
				return nil, nil, fmt.Errorf("accept alert %s: %w", a.ID, err)
			}
		}
	}
	r := &acceptReq{ctx: ctx, alerts: alerts, items: items, claim: claim, done: make(chan struct{})}
	if err := s.sendAccept(ctx, r); err != nil {
		return nil, nil, fmt.Errorf("accept alerts: %w", err)
	}
	return r.out, r.claimed, nil
}

// acceptReq is one Accept waiting for the accepter.
type acceptReq struct {
	ctx    context.Context
	alerts []alert.Alert
	items  []acceptItem
	claim  time.Duration
	// set by the accepter
	out     []store.Accepted
	claimed []store.InboxItem
	err     error
	done    chan struct{}
}

// maxAcceptBatch bounds the alerts one accept transaction takes.
const maxAcceptBatch = 1024

// sendAccept queues r for the accepter and waits for its answer. If ctx
// ends first the call returns ctx.Err() and r may still commit: Accept is
// idempotent, a retry journals a duplicate at worst.
func (s *Store) sendAccept(ctx context.Context, r *acceptReq) error {
	if s.readOnly {
		return store.ErrReadOnly
	}
	s.qmu.RLock()
	if s.qclosed {
		s.qmu.RUnlock()
		return store.ErrClosed
	}
	select {
	case s.acceptQ <- r:
	case <-ctx.Done():
		s.qmu.RUnlock()
		return ctx.Err()
	}
	s.qmu.RUnlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// acceptLoop is the accepter: group commit. While one accept transaction
// holds the chain and waits for its commit to be flushed, the Accepts that
// arrive queue up; the next transaction takes all of them (up to
// maxAcceptBatch alerts), so concurrent callers share one lock hold and
// one WAL flush instead of queueing for the head row one by one.
func (s *Store) acceptLoop() {
	defer close(s.acceptDone)
	last := 0 // alerts of the previous batch
	for r := range s.acceptQ {
		batch, n := []*acceptReq{r}, len(r.items)
		if len(s.acceptQ)+n < last/2 {
			// The callers just answered are still on their way back:
			// let them queue, or this transaction would take one alert
			// and the next all the others.
			runtime.Gosched()
		}
	drain:
		for n < maxAcceptBatch {
			select {
			case r, ok := <-s.acceptQ:
				if !ok {
					break drain
				}
				batch, n = append(batch, r), n+len(r.items)
			default:
				break drain
			}
		}
		last = n
		live := batch[:0:0]
		for _, r := range batch {
			if err := r.ctx.Err(); err != nil {
				r.err = err // nobody waits for it
				close(r.done)
				continue
			}
			live = append(live, r)
		}
		if len(live) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), acceptTimeout)
		err := s.write(ctx, true, func(t *wtx) error { return t.acceptAll(live) })
		cancel()
		for _, r := range live {
			r.err = err
			close(r.done)
		}
	}
}

// acceptAll stores the alerts of reqs, in order, in one chain transaction:
// one lookup of the ids already there, one insert of the new ones, their
// entries, and for AcceptClaimed requests their incidents.
func (t *wtx) acceptAll(reqs []*acceptReq) error {
	var ids []string
	for _, r := range reqs {
		r.out, r.claimed = make([]store.Accepted, len(r.items)), nil
		for i := range r.items {
			ids = append(ids, r.items[i].id)
		}
	}
	seen := make(map[string]string, len(ids))
	rows, err := t.tx.Query(t.ctx, `SELECT id, raw FROM inbox WHERE id = ANY($1)`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, raw string
		if err := rows.Scan(&id, &raw); err != nil {
			rows.Close()
			return err
		}
		seen[id] = raw
	}
	if err := rows.Err(); err != nil {
		return err
	}
	nowS := store.FormatTime(t.now)
	var newIDs, newRaws, states, owners, leases []string
	var attempts []int32
	var seqs []int64 // each new alert's alert.received entry, numbered as append will
	newIdx := make([][]int, len(reqs))
	entries := make([]store.PreparedEntry, 0, len(ids))
	for k, r := range reqs {
		state, attempt, owner, until := "pending", int32(0), "", ""
		if r.claim > 0 {
			state, attempt, owner, until = "processing", 1, t.s.owner, store.FormatTime(t.now.Add(r.claim))
		}
		for i := range r.items {
			it := &r.items[i]
			e := it.rec
			stored, dup := seen[it.id]
			conflict := dup && stored != it.raw
			switch {
			case conflict:
				if e, err = store.ConflictEntry(it.id, it.raw, stored); err != nil {
					return err
				}
			case dup:
				e.Type = store.AlertDuplicate
			default:
				seen[it.id] = it.raw
				newIDs, newRaws = append(newIDs, it.id), append(newRaws, it.raw)
				states, attempts, owners, leases = append(states, state), append(attempts, attempt), append(owners, owner), append(leases, until)
				seqs = append(seqs, t.head.seq+int64(len(entries))+1)
				newIdx[k] = append(newIdx[k], i)
			}
			if dup {
				if _, err := t.exec(`UPDATE inbox SET duplicates = duplicates + 1, last_duplicate_at = $1 WHERE id = $2`, nowS, it.id); err != nil {
					return err
				}
			}
			entries = append(entries, e)
			r.out[i] = store.Accepted{ID: it.id, Duplicate: dup, Conflict: conflict}
		}
	}
	if len(newIDs) > 0 {
		if _, err := t.exec(`INSERT INTO inbox (id, raw, received_at, state, attempts, owner, lease_until, received_seq)
			SELECT id, raw, $3, state, attempts, owner, lease, seq FROM
			unnest($1::text[], $2::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::bigint[]) WITH ORDINALITY
			AS u(id, raw, state, attempts, owner, lease, seq, o) ORDER BY o`,
			newIDs, newRaws, nowS, states, attempts, owners, leases, seqs); err != nil {
			return err
		}
	}
	if err := t.append(entries, nil); err != nil {
		return err
	}
	for k, r := range reqs {
		if r.claim <= 0 {
			continue
		}
		for _, i := range newIdx[k] {
			it := &r.items[i]
			id, _, err := t.incident(it.container, it.rule, it.at, t.now)
			if err != nil {
				return fmt.Errorf("find incident of %s/%s: %w", it.container, it.rule, err)
			}
			r.claimed = append(r.claimed, store.InboxItem{Alert: r.alerts[i], ReceivedAt: t.now, Attempts: 1, Incident: id})
		}
	}
	return nil
}

// ClaimAlerts takes up to max waiting alerts, oldest first: pending ones
// and ones whose lease ran out. Another handle's claim holds until its
// lease ends (it may be a live replica), so a replica that died has its
// alerts taken over one lease later. Rows another transaction is claiming
// are skipped (FOR UPDATE SKIP LOCKED): no alert is claimed twice.
func (s *Store) ClaimAlerts(ctx context.Context, max int, lease time.Duration) ([]store.InboxItem, error) {
	if max <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim alerts: lease must be positive, got %s", lease)
	}
	type claimed struct {
		n             int64
		raw, received string
		attempts      int
	}
	var got []claimed
	err := s.write(ctx, false, func(t *wtx) error {
		got = got[:0]
		now := store.FormatTime(t.now)
		rows, err := t.tx.Query(t.ctx, `WITH c AS (
			SELECT n FROM inbox WHERE state = 'pending' OR (state = 'processing' AND lease_until <= $1)
			ORDER BY n LIMIT $2 FOR UPDATE SKIP LOCKED)
			UPDATE inbox i SET state = 'processing', owner = $3, lease_until = $4, attempts = i.attempts + 1
			FROM c WHERE i.n = c.n RETURNING i.n, i.raw, i.received_at, i.attempts`,
			now, max, s.owner, store.FormatTime(t.now.Add(lease)))
		if err != nil {
			return err
		}
		for rows.Next() {
			var c claimed
			if err := rows.Scan(&c.n, &c.raw, &c.received, &c.attempts); err != nil {
				rows.Close()
				return err
			}
			got = append(got, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim alerts: %w", err)
	}
	slices.SortFunc(got, func(a, b claimed) int { return int(a.n - b.n) })
	out := make([]store.InboxItem, 0, len(got))
	for _, c := range got {
		// Stored as alert.MarshalJSON wrote it, after Decode checked it.
		a, err := alert.DecodeStored([]byte(c.raw))
		if err != nil {
			return nil, fmt.Errorf("claim alerts: %w", err)
		}
		at, err := store.ParseTime(c.received)
		if err != nil {
			return nil, fmt.Errorf("claim alerts: %w", err)
		}
		out = append(out, store.InboxItem{Alert: a, ReceivedAt: at, Attempts: c.attempts})
	}
	return out, nil
}

// ExtendClaims renews this handle's leases of ids; see store.Inbox.
func (s *Store) ExtendClaims(ctx context.Context, ids []string, lease time.Duration) (int, error) {
	if lease <= 0 {
		return 0, fmt.Errorf("extend claims: lease must be positive, got %s", lease)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	var n int64
	err := s.write(ctx, false, func(t *wtx) error {
		var err error
		n, err = t.exec(`UPDATE inbox SET lease_until = $1 WHERE id = ANY($2) AND state = 'processing' AND owner = $3`,
			store.FormatTime(t.now.Add(lease)), ids, s.owner)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("extend claims: %w", err)
	}
	return int(n), nil
}

// FinishAlert marks an alert processed; see store.Inbox.
func (s *Store) FinishAlert(ctx context.Context, id string, entries ...store.Entry) error {
	prep, err := store.PrepareEntries(entries)
	if err != nil {
		return fmt.Errorf("finish alert %s: %w", id, err)
	}
	err = s.write(ctx, true, func(t *wtx) error {
		return t.finish(id, prep)
	})
	if err != nil {
		return fmt.Errorf("finish alert %s: %w", id, err)
	}
	return nil
}

func (t *wtx) finish(id string, prep []store.PreparedEntry) error {
	n, err := t.exec(`UPDATE inbox SET state = 'done', done_at = $1, owner = '', lease_until = '' WHERE id = $2 AND state <> 'done'`,
		store.FormatTime(t.now), id)
	if err != nil {
		return err
	}
	if n == 0 {
		return t.exists(`SELECT 1 FROM inbox WHERE id = $1`, id)
	}
	return t.append(prep, nil)
}

// pruneChunk bounds one prune transaction.
const pruneChunk = 1000

// Prune deletes alerts processed before now - DuplicateWindow (with their
// action runs and approvals), outbox messages settled as long ago and node
// actions finished as long ago. The
// journal is never pruned.
func (s *Store) Prune(ctx context.Context) (store.Pruned, error) {
	var p store.Pruned
	for {
		var n int64
		err := s.write(ctx, true, func(t *wtx) error {
			cutoff := store.FormatTime(t.now.Add(-s.opts.DuplicateWindow))
			rows, err := t.tx.Query(t.ctx, `DELETE FROM inbox WHERE id IN (
				SELECT id FROM inbox WHERE state = 'done' AND done_at < $1 LIMIT $2) RETURNING id`, cutoff, pruneChunk)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			n = int64(len(ids))
			_, err = t.exec(`DELETE FROM action_runs WHERE alert_id = ANY($1)`, ids)
			return err
		})
		if err != nil {
			return p, fmt.Errorf("prune store: %w", err)
		}
		p.Alerts += n
		if n < pruneChunk {
			break
		}
	}
	err := s.write(ctx, false, func(t *wtx) error {
		var err error
		cutoff := store.FormatTime(t.now.Add(-s.opts.DuplicateWindow))
		if p.Outbox, err = t.exec(`DELETE FROM outbox WHERE state IN ('done', 'dead') AND updated_at < $1`, cutoff); err != nil {
			return err
		}
		// Fold state goes with its messages; a key quiet for the whole
		// window has nothing to hold back any more.
		if _, err := t.exec(`DELETE FROM kv WHERE ns = $1 AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.id::text = kv.key)`, store.FoldedNS); err != nil {
			return err
		}
		if _, err = t.exec(`DELETE FROM kv WHERE ns = $1 AND updated_at < $2`, store.FoldNS, cutoff); err != nil {
			return err
		}
		p.NodeActions, err = t.exec(`DELETE FROM node_actions WHERE state IN ('succeeded', 'failed') AND finished_at != '' AND finished_at < $1`, cutoff)
		return err
	})
	if err != nil {
		return p, fmt.Errorf("prune store: %w", err)
	}
	return p, nil
}

// Stats returns counts for metrics.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	var st store.Stats
	if s.closed.Load() {
		return st, store.ErrClosed
	}
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM inbox WHERE state = 'pending'),
		(SELECT count(*) FROM inbox WHERE state = 'processing'),
		(SELECT count(*) FROM outbox WHERE state IN ('pending', 'leased')),
		(SELECT count(*) FROM approvals WHERE state = 'pending'),
		(SELECT seq FROM journal_head WHERE id = 1)`).Scan(
		&st.InboxPending, &st.InboxProcessing, &st.OutboxPending, &st.ApprovalsPending, &st.JournalSeq)
	if err != nil {
		return st, fmt.Errorf("read stats: %w", err)
	}
	return st, nil
}

// AcceptSettled stores alerts like AcceptClaimed and then finishes the
// settled ones with their entries. Not one transaction: an alert whose
// finish did not commit stays claimed, and the engine processes it again
// when its lease runs out (a retry, which journals nothing twice).
func (s *Store) AcceptSettled(ctx context.Context, alerts []alert.Alert, settled []*store.Settled, lease time.Duration) ([]store.Accepted, []store.InboxItem, []string, error) {
	if lease < 0 {
		return nil, nil, nil, fmt.Errorf("accept alerts: lease must not be negative, got %s", lease)
	}
	if len(settled) > len(alerts) {
		return nil, nil, nil, fmt.Errorf("accept alerts: %d settled outcomes for %d alerts", len(settled), len(alerts))
	}
	prep := make([][]store.SettledEntry, len(settled))
	for i, st := range settled {
		if st == nil {
			continue
		}
		prep[i] = make([]store.SettledEntry, 0, len(st.Entries))
		for k, e := range st.Entries {
			p, err := store.PrepareSettled(e)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("accept alerts: alert %d: settled entry %d (%s): %w", i+1, k+1, e.Type, err)
			}
			prep[i] = append(prep[i], p)
		}
	}
	claim := lease
	if claim <= 0 {
		claim = time.Minute
	}
	acc, claimed, err := s.accept(ctx, alerts, claim)
	if err != nil {
		return nil, nil, nil, err
	}
	incidents := make([]string, len(alerts))
	var items []store.InboxItem
	var b store.Batch
	k := 0
	for i := range alerts {
		if acc[i].Duplicate {
			continue
		}
		it := claimed[k]
		k++
		incidents[i] = it.Incident
		if i < len(prep) && prep[i] != nil {
			for _, p := range prep[i] {
				pe, err := p.Resolve(it.Incident)
				if err != nil {
					return nil, nil, nil, fmt.Errorf("accept alerts: %w", err)
				}
				b.Entries = append(b.Entries, pe.Entry)
			}
			b.Finish = append(b.Finish, it.Alert.ID)
			continue
		}
		items = append(items, it)
	}
	if len(b.Finish) > 0 {
		if _, err := s.Apply(ctx, b); err != nil {
			return nil, nil, nil, fmt.Errorf("accept alerts: finish settled alerts: %w", err)
		}
	}
	if lease <= 0 && len(items) > 0 {
		// Asked to leave them pending: give the claim back.
		ids := make([]string, len(items))
		for i, it := range items {
			ids[i] = it.Alert.ID
		}
		if _, err := s.ExtendClaims(ctx, ids, time.Nanosecond); err != nil {
			return nil, nil, nil, fmt.Errorf("accept alerts: release claims: %w", err)
		}
		items = nil
	}
	return acc, items, incidents, nil
}
