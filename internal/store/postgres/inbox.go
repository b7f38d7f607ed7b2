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
	// settle: the caller processed the alert (AcceptSettled); it is
	// stored done with these entries after its alert.received.
	settle  bool
	settled []store.SettledEntry
}

// Accept stores alerts and journals them in one transaction; see
// store.Inbox. It returns after the commit.
func (s *Store) Accept(ctx context.Context, alerts []alert.Alert) ([]store.Accepted, error) {
	r, err := s.accept(ctx, alerts, 0, nil)
	if r == nil {
		return nil, err
	}
	return r.out, err
}

// AcceptClaimed is Accept with the new alerts claimed for this handle and
// their incidents found in the same transaction; see store.Inbox.
func (s *Store) AcceptClaimed(ctx context.Context, alerts []alert.Alert, lease time.Duration) ([]store.Accepted, []store.InboxItem, error) {
	if lease <= 0 {
		return nil, nil, fmt.Errorf("accept alerts: lease must be positive, got %s", lease)
	}
	r, err := s.accept(ctx, alerts, lease, nil)
	if r == nil || err != nil {
		return nil, nil, err
	}
	return r.out, r.claimed, nil
}

// AcceptSettled stores alerts in one transaction, the settled ones done
// with their incidents and their processing's entries; see store.Inbox.
// It returns after the commit.
func (s *Store) AcceptSettled(ctx context.Context, alerts []alert.Alert, settled []*store.Settled, lease time.Duration) ([]store.Accepted, []store.InboxItem, []string, error) {
	if lease < 0 {
		return nil, nil, nil, fmt.Errorf("accept alerts: lease must not be negative, got %s", lease)
	}
	prep, err := store.PrepareSettledAll(settled, len(alerts))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("accept alerts: %w", err)
	}
	r, err := s.accept(ctx, alerts, lease, prep)
	if r == nil || err != nil {
		return nil, nil, nil, err
	}
	return r.out, r.claimed, r.incidents, nil
}

func (s *Store) accept(ctx context.Context, alerts []alert.Alert, claim time.Duration, settled [][]store.SettledEntry) (*acceptReq, error) {
	if len(alerts) == 0 {
		return nil, nil
	}
	items := make([]acceptItem, len(alerts))
	now := s.now()
	for i := range alerts {
		a := &alerts[i]
		if err := store.CheckAlertID(a.ID); err != nil {
			return nil, fmt.Errorf("accept alert %d: %w", i+1, err)
		}
		raw, err := a.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("accept alert %s: %w", a.ID, err)
		}
		rec, err := store.ReceivedEntry(a, now, s.opts.ClockSkew)
		if err != nil {
			return nil, fmt.Errorf("accept alert %s: %w", a.ID, err)
		}
		it := &items[i]
		*it = acceptItem{id: a.ID, raw: string(raw), rec: rec}
		if i < len(settled) && settled[i] != nil {
			it.settle, it.settled = true, settled[i]
		}
		if claim > 0 || it.settle {
			it.container, it.rule, it.at = a.Field("container.id"), a.Rule, a.Time
			if err := errors.Join(store.CheckText(it.container), store.CheckText(it.rule)); err != nil {
				return nil, fmt.Errorf("accept alert %s: %w", a.ID, err)
			}
		}
	}
	r := &acceptReq{ctx: ctx, alerts: alerts, items: items, claim: claim, done: make(chan struct{})}
	if err := s.sendAccept(ctx, r); err != nil {
		return nil, fmt.Errorf("accept alerts: %w", err)
	}
	return r, nil
}

// acceptReq is one Accept waiting for the accepter.
type acceptReq struct {
	ctx    context.Context
	alerts []alert.Alert
	items  []acceptItem
	// claim > 0: the new alerts that are not settled are claimed for this
	// long, and their incidents found (those of settled alerts always are)
	claim time.Duration
	// set by the accepter
	out       []store.Accepted
	claimed   []store.InboxItem
	incidents []string
	err       error
	done      chan struct{}
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
		if len(s.acceptQ)+n < last/2 && !store.IsUrgent(r.ctx) {
			// The callers just answered are still on their way back:
			// let them queue, or this transaction would take one alert
			// and the next all the others. (Not for an urgent one.)
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
		// Urgent Accepts commit in a transaction of their own, first and
		// without waiting for the WAL flush; the others' answer still
		// means flushed.
		urgent, ordinary := splitUrgent(live)
		if len(urgent) > 0 {
			s.commitAccepts(true, urgent)
		}
		if len(ordinary) > 0 {
			s.commitAccepts(false, ordinary)
		}
	}
}

// splitUrgent divides reqs into the urgent Accepts (store.Urgent) and the
// others, each in order.
func splitUrgent(reqs []*acceptReq) (urgent, ordinary []*acceptReq) {
	for _, r := range reqs {
		if store.IsUrgent(r.ctx) {
			urgent = append(urgent, r)
		} else {
			ordinary = append(ordinary, r)
		}
	}
	return urgent, ordinary
}

// commitAccepts runs reqs in one accept transaction, an urgent one if
// urgent, and answers them.
func (s *Store) commitAccepts(urgent bool, reqs []*acceptReq) {
	ctx, cancel := context.WithTimeout(context.Background(), acceptTimeout)
	if urgent {
		ctx = store.Urgent(ctx)
	}
	// Not a chain transaction yet: acceptAll locks the head with its reads.
	err := s.write(ctx, false, func(t *wtx) error { return t.acceptAll(reqs) })
	cancel()
	for _, r := range reqs {
		r.err = err
		close(r.done)
	}
}

// acceptAll stores the alerts of reqs, in order, in one chain transaction
// (whose lock on the journal head makes the duplicate check and
// find-or-open of incidents atomic across replicas), in two round trips
// besides its begin and commit: one batch of reads (the head's lock, the
// ids already there, the open incidents of the claimed and settled alerts'
// containers and rules), one batch of writes (the incidents opened and
// joined, see groupIncidents; the new alerts, pending, claimed, or done
// for settled ones, so that neither of the last two passes through
// pending; the duplicates' counts; the journal entries and the head).
// Each alert's entries are contiguous: its alert.received, the
// incident.opened of an incident it opened, its settled entries. fn of
// write: it sets its results afresh when run again.
func (t *wtx) acceptAll(reqs []*acceptReq) error {
	var ids []string
	var want []incidentQuery // a superset of qs below: duplicates are not known yet
	for _, r := range reqs {
		for i := range r.items {
			it := &r.items[i]
			ids = append(ids, it.id)
			if it.settle || r.claim > 0 {
				want = append(want, incidentQuery{container: it.container, rule: it.rule})
			}
		}
	}
	var reads pgx.Batch
	reads.Queue(lockHead)
	reads.Queue(`SELECT id, raw FROM inbox WHERE id = ANY($1)`, ids)
	if len(want) > 0 {
		cs, rs := incidentKeys(want)
		reads.Queue(incidentLookup, cs, rs)
	}
	seen := make(map[string]string, len(ids))
	var found map[incidentKey]*openIncident
	err := func() error {
		br := t.tx.SendBatch(t.ctx, &reads)
		defer br.Close()
		if err := t.headLocked(br.QueryRow()); err != nil {
			return err
		}
		rows, err := br.Query()
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
		if len(want) > 0 {
			if rows, err = br.Query(); err != nil {
				return err
			}
			if found, err = scanIncidents(rows); err != nil {
				return err
			}
		}
		return br.Close()
	}()
	if err != nil {
		return err
	}
	// Which are new, and the incidents of those that need one.
	var qs []incidentQuery
	for _, r := range reqs {
		r.out, r.claimed, r.incidents = make([]store.Accepted, len(r.items)), nil, make([]string, len(r.items))
		for i := range r.items {
			it := &r.items[i]
			stored, dup := seen[it.id]
			r.out[i] = store.Accepted{ID: it.id, Duplicate: dup, Conflict: dup && stored != it.raw}
			if dup {
				continue
			}
			seen[it.id] = it.raw
			if it.settle || r.claim > 0 {
				qs = append(qs, incidentQuery{container: it.container, rule: it.rule, sent: it.at, received: t.now})
			}
		}
	}
	incidents, opened, writes, err := t.groupIncidents(qs, found)
	if err != nil {
		return fmt.Errorf("find incidents: %w", err)
	}
	nowS := store.FormatTime(t.now)
	var newIDs, newRaws, states, owners, leases, doneAt []string
	var attempts []int32
	var seqs []int64        // each new alert's alert.received entry, numbered as append will
	var settledSeqs []int64 // a settled alert's last entry (schema 5), else 0
	var viaInbox []bool     // per entry: a settled alert's, left out of the alert index
	dups := make(map[string]int32)
	var dupIDs []string
	entries := make([]store.PreparedEntry, 0, len(ids))
	q := 0
	for _, r := range reqs {
		var until string
		if r.claim > 0 {
			until = store.FormatTime(t.now.Add(r.claim))
		}
		for i := range r.items {
			it := &r.items[i]
			out := r.out[i]
			e := it.rec
			switch {
			case out.Conflict:
				// Same uuid, other content: nothing is stored; the
				// journal keeps what was refused.
				if e, err = store.ConflictEntry(it.id, it.raw, seen[it.id]); err != nil {
					return err
				}
			case out.Duplicate:
				e.Type = store.AlertDuplicate
			}
			entries, viaInbox = append(entries, e), append(viaInbox, false)
			if out.Duplicate {
				if dups[it.id] == 0 {
					dupIDs = append(dupIDs, it.id)
				}
				dups[it.id]++
				continue
			}
			newIDs, newRaws = append(newIDs, it.id), append(newRaws, it.raw)
			seqs = append(seqs, t.head.seq+int64(len(entries)))
			if !it.settle && r.claim <= 0 {
				states, attempts, owners, leases, doneAt = append(states, "pending"), append(attempts, 0), append(owners, ""), append(leases, ""), append(doneAt, "")
				settledSeqs = append(settledSeqs, 0)
				continue
			}
			inc := incidents[q]
			if opened[q] != nil {
				entries, viaInbox = append(entries, *opened[q]), append(viaInbox, false)
			}
			q++
			r.incidents[i] = inc
			if it.settle {
				last := int64(0)
				for k := range it.settled {
					entries, viaInbox = append(entries, it.settled[k].WithIncident(inc)), append(viaInbox, true)
					last = t.head.seq + int64(len(entries))
				}
				states, attempts, owners, leases, doneAt = append(states, "done"), append(attempts, 1), append(owners, ""), append(leases, ""), append(doneAt, nowS)
				settledSeqs = append(settledSeqs, last)
				continue
			}
			states, attempts, owners, leases, doneAt = append(states, "processing"), append(attempts, 1), append(owners, t.s.owner), append(leases, until), append(doneAt, "")
			settledSeqs = append(settledSeqs, 0)
			r.claimed = append(r.claimed, store.InboxItem{Alert: r.alerts[i], ReceivedAt: t.now, Attempts: 1, Incident: inc})
		}
	}
	if len(newIDs) > 0 {
		writes = append(writes, statement{`INSERT INTO inbox (id, raw, received_at, state, attempts, owner, lease_until, received_seq, done_at, settled_seq)
			SELECT id, raw, $3, state, attempts, owner, lease, seq, done, settled FROM
			unnest($1::text[], $2::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::bigint[], $9::text[], $10::bigint[]) WITH ORDINALITY
			AS u(id, raw, state, attempts, owner, lease, seq, done, settled, o) ORDER BY o`,
			[]any{newIDs, newRaws, nowS, states, attempts, owners, leases, seqs, doneAt, settledSeqs}})
	}
	if len(dupIDs) > 0 {
		// After the insert: an id repeated within the batch counts too.
		counts := make([]int32, len(dupIDs))
		for i, id := range dupIDs {
			counts[i] = dups[id]
		}
		writes = append(writes, statement{`UPDATE inbox i SET duplicates = i.duplicates + u.n, last_duplicate_at = $1
			FROM unnest($2::text[], $3::int[]) AS u(id, n) WHERE i.id = u.id`, []any{nowS, dupIDs, counts}})
	}
	app, head, err := t.appendStatements(entries, viaInbox)
	if err != nil {
		return err
	}
	var b pgx.Batch
	for _, w := range append(writes, app...) {
		b.Queue(w.sql, w.args...)
	}
	if err := t.tx.SendBatch(t.ctx, &b).Close(); err != nil {
		return err
	}
	t.recorded(head)
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
