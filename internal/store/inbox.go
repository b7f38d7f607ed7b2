package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

// Actor of the entries the store writes itself.
const storeActor = "riposte"

type acceptItem struct {
	id  string
	raw string
	rec prepared // alert.received, or alert.duplicate with the type swapped
	// for AcceptClaimed and settled alerts: what the incident is looked up by
	container, rule string
	at              time.Time
	// settle: the alert was processed by the caller (AcceptSettled); it is
	// stored done with these entries after its alert.received.
	settle  bool
	settled []prepared
}

// Accept stores alerts durably; see Inbox.
func (s *Store) Accept(ctx context.Context, alerts []alert.Alert) ([]Accepted, error) {
	acc, err := s.accept(ctx, alerts, 0, nil)
	if err != nil || acc == nil {
		return nil, err
	}
	return acc.out, nil
}

// AcceptClaimed stores alerts durably like Accept and, in the same
// transaction, claims the new ones for this store (for lease) and finds or
// opens their incidents: for a caller that processes them at once (the
// engine, with its own detector's alerts), which saves the claim and the
// incident round trips on the way to containment. items are the new
// alerts, in order, with Incident set; duplicates are only in accepted.
func (s *Store) AcceptClaimed(ctx context.Context, alerts []alert.Alert, lease time.Duration) (accepted []Accepted, items []InboxItem, err error) {
	if lease <= 0 {
		return nil, nil, fmt.Errorf("accept alerts: lease must be positive, got %s", lease)
	}
	acc, err := s.accept(ctx, alerts, lease, nil)
	if err != nil || acc == nil {
		return nil, nil, err
	}
	return acc.out, acc.items(alerts), nil
}

// AcceptSettled stores alerts durably, the settled ones done with their
// processing's entries; see Inbox.
func (s *Store) AcceptSettled(ctx context.Context, alerts []alert.Alert, settled []*Settled, lease time.Duration) (accepted []Accepted, items []InboxItem, incidents []string, err error) {
	if lease < 0 {
		return nil, nil, nil, fmt.Errorf("accept alerts: lease must not be negative, got %s", lease)
	}
	prep, err := prepareSettledAll(settled, len(alerts))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("accept alerts: %w", err)
	}
	acc, err := s.accept(ctx, alerts, lease, prep)
	if err != nil || acc == nil {
		return nil, nil, nil, err
	}
	return acc.out, acc.items(alerts), acc.incidents, nil
}

// items are the claimed new alerts of an accept, in order.
func (acc *acceptReq) items(alerts []alert.Alert) []InboxItem {
	if acc.claim <= 0 {
		return nil
	}
	var items []InboxItem
	for i, a := range acc.out {
		if !a.Duplicate && !acc.list[i].settle {
			items = append(items, InboxItem{Alert: alerts[i], ReceivedAt: acc.at, Attempts: 1, Incident: acc.incidents[i]})
		}
	}
	return items
}

func (s *Store) accept(ctx context.Context, alerts []alert.Alert, claim time.Duration, settled [][]prepared) (*acceptReq, error) {
	if len(alerts) == 0 {
		return nil, nil
	}
	// Encode in the caller's goroutine: the writer only runs SQL.
	items := make([]acceptItem, len(alerts))
	now := s.now()
	rows := 0
	for i := range alerts {
		a := &alerts[i]
		if err := checkAlertID(a.ID); err != nil {
			return nil, fmt.Errorf("accept alert %d: %w", i+1, err)
		}
		raw, err := a.MarshalJSON() // not json.Marshal: that compacts it again
		if err != nil {
			return nil, fmt.Errorf("accept alert %s: %w", a.ID, err)
		}
		rec, err := receivedEntry(a, now, s.opts.ClockSkew)
		if err != nil {
			return nil, fmt.Errorf("accept alert %s: %w", a.ID, err)
		}
		it := &items[i]
		*it = acceptItem{id: a.ID, raw: string(raw), rec: rec}
		rows += 2
		if i < len(settled) && settled[i] != nil {
			it.settle, it.settled = true, settled[i]
			rows += len(it.settled)
		}
		if claim > 0 || it.settle {
			it.container, it.rule, it.at = a.Field("container.id"), a.Rule, a.Time
			if err := errors.Join(checkText(it.container), checkText(it.rule)); err != nil {
				return nil, fmt.Errorf("accept alert %s: %w", a.ID, err)
			}
			rows += 2
		}
	}
	if s.w == nil {
		return nil, ErrReadOnly
	}
	acc := &acceptReq{list: items, out: make([]Accepted, len(items)), claim: claim, incidents: make([]string, len(items))}
	if err := s.w.send(ctx, &request{ctx: ctx, rows: rows, acc: acc}); err != nil {
		return nil, fmt.Errorf("accept alerts: %w", err)
	}
	return acc, nil
}

// receivedDetail is alert.received's detail. Its fields are in key order
// and empty optional ones are left out, so it encodes to the same bytes as
// the map[string]any a reader decodes it into, without building the map.
type receivedDetail struct {
	// AlertTime and ClockSkew are set when the sender's time is outside
	// the clock skew tolerance (the entry's time is the receive time).
	AlertTime   string `json:"alert_time,omitempty"`
	ClockSkew   string `json:"clock_skew,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	Hostname    string `json:"hostname,omitempty"`
	Priority    string `json:"priority"`
	Rule        string `json:"rule"`
	Source      string `json:"source,omitempty"`
}

// receivedEntry is the alert.received entry of a, received at now,
// validated and encoded.
func receivedEntry(a *alert.Alert, now time.Time, skew time.Duration) (prepared, error) {
	rd := receivedDetail{
		ContainerID: a.Field("container.id"), Hostname: a.Hostname,
		Priority: a.Priority.String(), Rule: a.Rule, Source: a.Source,
	}
	if _, skewed := groupTime(a.Time, now, skew); skewed && !a.Time.IsZero() {
		rd.AlertTime = FormatTime(a.Time)
		rd.ClockSkew = a.Time.Sub(now).Round(time.Second).String()
	}
	d, err := json.Marshal(rd)
	if err != nil {
		return prepared{}, fmt.Errorf("marshal detail: %w", err)
	}
	if err := checkText(string(d)); err != nil {
		return prepared{}, fmt.Errorf("field detail: %w", err)
	}
	return prepared{Entry: Entry{Type: AlertReceived, AlertID: a.ID, Actor: storeActor}, detail: string(d)}, nil
}

type acceptReq struct {
	list []acceptItem
	out  []Accepted
	// claim > 0: the new alerts that are not settled are claimed for this
	// long; incidents are found for those and the settled ones, at is when.
	claim     time.Duration
	incidents []string
	at        time.Time
}

const (
	insertInboxHead  = `INSERT INTO inbox (id, raw, received_at, received_seq) VALUES `
	inboxPlaceholder = `(?, ?, ?, ?)`
	selectInboxHead  = `SELECT id, raw FROM inbox WHERE id IN (`

	insertClaimedHead  = `INSERT INTO inbox (id, raw, received_at, received_seq, owner, lease_until, state, attempts) VALUES `
	claimedPlaceholder = `(?, ?, ?, ?, ?, ?, 'processing', 1)`

	insertDoneHead  = `INSERT INTO inbox (id, raw, received_at, received_seq, settled_seq, done_at, state, attempts) VALUES `
	donePlaceholder = `(?, ?, ?, ?, ?, ?, 'done', 1)`
)

// acceptAll runs Accept requests in the writer: one lookup of the ids
// already there, the incidents of the claimed and settled new alerts (one
// lookup per container and rule), one multi-row insert per inbox state of
// the new alerts (claimed ones inserted claimed, settled ones done, so
// that neither passes through 'pending'), one multi-row append of the
// journal entries (all chunked). Each alert's entries are contiguous: its
// alert.received, the incident.opened of an incident it opened, its
// settled entries. Each new row records the seq its alert.received entry
// gets (the journal's alert index leaves those entries out; see
// Filter.query).
func (t *wtx) acceptAll(reqs []*request) error {
	n := 0
	for _, r := range reqs {
		n += len(r.acc.list)
	}
	ids := make([]any, 0, n)
	for _, r := range reqs {
		for i := range r.acc.list {
			ids = append(ids, r.acc.list[i].id)
		}
	}
	seen, err := t.existing(ids)
	if err != nil {
		return err
	}
	// Which are new, and the incidents of those that need one.
	var qs []incidentQuery
	for _, r := range reqs {
		r.acc.at = t.now
		for i := range r.acc.list {
			it := &r.acc.list[i]
			stored, dup := seen[it.id]
			r.acc.out[i] = Accepted{ID: it.id, Duplicate: dup, Conflict: dup && stored != it.raw}
			r.acc.incidents[i] = ""
			if dup {
				continue
			}
			seen[it.id] = it.raw
			if it.settle || r.acc.claim > 0 {
				qs = append(qs, incidentQuery{container: it.container, rule: it.rule, sent: it.at, received: t.now})
			}
		}
	}
	incidents, opened, err := t.incidents(qs)
	if err != nil {
		return fmt.Errorf("find incidents: %w", err)
	}
	now := FormatTime(t.now)
	var pending, claimed, done []any
	entries := make([]prepared, 0, n)
	seq := t.w.head.seq // entries[k] becomes seq+1+k: nothing else appends before them
	var dups []string
	q := 0
	for _, r := range reqs {
		var until string
		if r.acc.claim > 0 {
			until = FormatTime(t.now.Add(r.acc.claim))
		}
		for i := range r.acc.list {
			it := &r.acc.list[i]
			out := r.acc.out[i]
			e := it.rec
			switch {
			case out.Conflict:
				// Same uuid, other content: a sender bug or an attempt to
				// pass an alert off under a known id. Nothing is stored;
				// the journal keeps what was refused.
				if e, err = conflictEntry(it, seen[it.id]); err != nil {
					return err
				}
			case out.Duplicate:
				e.Type = AlertDuplicate
			}
			entries = append(entries, e)
			recSeq := seq + int64(len(entries))
			if out.Duplicate {
				dups = append(dups, it.id)
				continue
			}
			if !it.settle && r.acc.claim <= 0 {
				pending = append(pending, it.id, it.raw, now, recSeq)
				continue
			}
			inc := incidents[q]
			if opened[q] != nil {
				entries = append(entries, *opened[q])
			}
			q++
			r.acc.incidents[i] = inc
			if it.settle {
				var last int64 // the seq of its last settled entry
				for _, p := range it.settled {
					p := p.withIncident(inc)
					if !t.w.s.opts.indexSettled {
						p.viaInbox = true
						last = seq + int64(len(entries)) + 1
					}
					entries = append(entries, p)
				}
				done = append(done, it.id, it.raw, now, recSeq, last, now)
				continue
			}
			claimed = append(claimed, it.id, it.raw, now, recSeq, t.w.s.owner, until)
		}
	}
	if err := t.execRows(insertInboxHead, inboxPlaceholder, "", 4, pending); err != nil {
		return err
	}
	if err := t.execRows(insertClaimedHead, claimedPlaceholder, "", 6, claimed); err != nil {
		return err
	}
	if err := t.execRows(insertDoneHead, donePlaceholder, "", 6, done); err != nil {
		return err
	}
	for _, id := range dups {
		if _, err := t.exec(`UPDATE inbox SET duplicates = duplicates + 1, last_duplicate_at = ? WHERE id = ?`, now, id); err != nil {
			return err
		}
	}
	return t.append(entries, nil)
}

// conflictEntry is the alert.duplicate entry of an alert whose uuid is in
// the inbox with other content: the hashes of both, and the refused alert.
func conflictEntry(it *acceptItem, stored string) (prepared, error) {
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	detail := map[string]any{
		"conflict":       "uuid reused with different content; not stored",
		"stored_sha256":  sum(stored),
		"refused_sha256": sum(it.raw),
	}
	var refused map[string]any
	dec := json.NewDecoder(strings.NewReader(it.raw))
	dec.UseNumber() // numbers keep their exact text
	if err := dec.Decode(&refused); err == nil {
		detail["refused"] = refused
	}
	return prepareEntry(Entry{Type: AlertDuplicate, AlertID: it.id, Actor: storeActor, Detail: detail})
}

// existing returns the stored content of those of ids that are in the inbox.
func (t *wtx) existing(ids []any) (map[string]string, error) {
	seen := make(map[string]string, len(ids))
	for len(ids) > 0 {
		n := chunkRows(len(ids))
		key := chunkKey{selectInboxHead, n}
		q, ok := t.w.chunkSQL[key]
		if !ok {
			q = selectInboxHead + "?" + strings.Repeat(", ?", n-1) + ")"
			t.w.chunkSQL[key] = q
		}
		rows, err := t.query(q, ids[:n]...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id, raw string
			if err := rows.Scan(&id, &raw); err != nil {
				rows.Close()
				t.dirty = true
				return nil, err
			}
			seen[id] = raw
		}
		if err := rows.Close(); err != nil {
			t.dirty = true
			return nil, err
		}
		ids = ids[n:]
	}
	return seen, nil
}

func checkAlertID(id string) error {
	switch {
	case id == "":
		return errors.New("alert has no id")
	case len(id) > alert.MaxIDLength:
		return fmt.Errorf("alert id longer than %d bytes", alert.MaxIDLength)
	}
	return checkText(id)
}

// ClaimAlerts takes alerts waiting for processing; see Inbox.
func (s *Store) ClaimAlerts(ctx context.Context, max int, lease time.Duration) ([]InboxItem, error) {
	if max <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim alerts: lease must be positive, got %s", lease)
	}
	type claimed struct {
		raw      string
		received string
		attempts int
	}
	var got []claimed
	err := s.write(ctx, max, func(t *wtx) error {
		got = got[:0]
		now := FormatTime(t.now)
		var ids []int64
		// Abandoned claims first (they are older), then pending by arrival.
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`SELECT rowid, raw, received_at, attempts FROM inbox WHERE state = 'processing' AND (lease_until <= ? OR owner <> ?) ORDER BY rowid LIMIT ?`,
				[]any{now, s.owner, max}},
			{`SELECT rowid, raw, received_at, attempts FROM inbox WHERE state = 'pending' ORDER BY rowid LIMIT ?`,
				[]any{max}},
		} {
			if len(got) >= max {
				break
			}
			q.args[len(q.args)-1] = max - len(got)
			rows, err := t.query(q.sql, q.args...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var c claimed
				var id int64
				if err := rows.Scan(&id, &c.raw, &c.received, &c.attempts); err != nil {
					rows.Close()
					t.dirty = true
					return err
				}
				got = append(got, c)
				ids = append(ids, id)
			}
			if err := rows.Close(); err != nil {
				t.dirty = true
				return err
			}
		}
		until := FormatTime(t.now.Add(lease))
		for _, id := range ids {
			if _, err := t.exec(`UPDATE inbox SET state = 'processing', owner = ?, lease_until = ?, attempts = attempts + 1 WHERE rowid = ?`,
				s.owner, until, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim alerts: %w", err)
	}
	out := make([]InboxItem, 0, len(got))
	for _, c := range got {
		// Stored as alert.MarshalJSON wrote it, after Decode checked it.
		a, err := alert.DecodeStored([]byte(c.raw))
		if err != nil {
			return nil, fmt.Errorf("claim alerts: %w", err)
		}
		at, err := parseTime(c.received)
		if err != nil {
			return nil, fmt.Errorf("claim alerts: %w", err)
		}
		out = append(out, InboxItem{Alert: a, ReceivedAt: at, Attempts: c.attempts + 1})
	}
	return out, nil
}

// ExtendClaims renews this store's leases of ids; see Inbox.
func (s *Store) ExtendClaims(ctx context.Context, ids []string, lease time.Duration) (int, error) {
	if lease <= 0 {
		return 0, fmt.Errorf("extend claims: lease must be positive, got %s", lease)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	var n int
	err := s.write(ctx, len(ids), func(t *wtx) error {
		n = 0
		until := FormatTime(t.now.Add(lease))
		for _, id := range ids {
			k, err := t.affected(`UPDATE inbox SET lease_until = ? WHERE id = ? AND state = 'processing' AND owner = ?`, until, id, s.owner)
			if err != nil {
				return err
			}
			n += int(k)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("extend claims: %w", err)
	}
	return n, nil
}

// FinishAlert marks an alert processed; see Inbox.
func (s *Store) FinishAlert(ctx context.Context, id string, entries ...Entry) error {
	prep, err := prepareEntries(entries)
	if err != nil {
		return fmt.Errorf("finish alert %s: %w", id, err)
	}
	err = s.write(ctx, 1+len(prep), func(t *wtx) error {
		n, err := t.affected(`UPDATE inbox SET state = 'done', done_at = ?, owner = '', lease_until = '' WHERE id = ? AND state <> 'done'`,
			FormatTime(t.now), id)
		if err != nil {
			return err
		}
		if n == 0 {
			var one int
			if err := t.queryRow(`SELECT 1 FROM inbox WHERE id = ?`, id).Scan(&one); err != nil {
				return notFound(err)
			}
			return nil
		}
		return t.append(prep, nil)
	})
	if err != nil {
		return fmt.Errorf("finish alert %s: %w", id, err)
	}
	return nil
}

// Pruned counts what Prune deleted.
type Pruned struct {
	Alerts int64
	Outbox int64
	// NodeActions counts finished node actions (cluster mode's requests
	// to agents).
	NodeActions int64
}

// pruneChunk bounds one prune transaction.
const pruneChunk = 1000

// Prune deletes alerts processed before now - DuplicateWindow (with their
// action runs and approvals), outbox messages delivered or dead for as
// long, and node actions finished as long ago (their action runs go with
// their alerts at the same age). The journal is never pruned. Call it from time to time (hourly is
// plenty); it works in small transactions between other writes.
func (s *Store) Prune(ctx context.Context) (Pruned, error) {
	var p Pruned
	for {
		var n int64
		err := s.write(ctx, pruneChunk, func(t *wtx) error {
			n = 0
			cutoff := FormatTime(t.now.Add(-s.opts.DuplicateWindow))
			rows, err := t.query(`SELECT id FROM inbox WHERE state = 'done' AND done_at < ? LIMIT ?`, cutoff, pruneChunk)
			if err != nil {
				return err
			}
			var ids []string
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					t.dirty = true
					return err
				}
				ids = append(ids, id)
			}
			if err := rows.Close(); err != nil {
				t.dirty = true
				return err
			}
			for _, id := range ids {
				if _, err := t.exec(`DELETE FROM action_runs WHERE alert_id = ?`, id); err != nil {
					return err
				}
				if _, err := t.exec(`DELETE FROM inbox WHERE id = ?`, id); err != nil {
					return err
				}
			}
			n = int64(len(ids))
			return nil
		})
		if err != nil {
			return p, fmt.Errorf("prune store: %w", err)
		}
		p.Alerts += n
		if n < pruneChunk {
			break
		}
	}
	err := s.write(ctx, pruneChunk, func(t *wtx) error {
		cutoff := FormatTime(t.now.Add(-s.opts.DuplicateWindow))
		n, err := t.affected(`DELETE FROM outbox WHERE state IN ('done', 'dead') AND updated_at < ?`, cutoff)
		p.Outbox = n
		if err != nil {
			return err
		}
		// Fold state goes with its messages; a key quiet for the whole
		// window has nothing to hold back any more.
		if _, err := t.affected(`DELETE FROM kv WHERE ns = ? AND NOT EXISTS (SELECT 1 FROM outbox WHERE CAST(outbox.id AS TEXT) = kv.key)`, FoldedNS); err != nil {
			return err
		}
		if _, err = t.affected(`DELETE FROM kv WHERE ns = ? AND updated_at < ?`, FoldNS, cutoff); err != nil {
			return err
		}
		p.NodeActions, err = t.affected(`DELETE FROM node_actions WHERE state IN ('succeeded', 'failed') AND finished_at != '' AND finished_at < ?`, cutoff)
		return err
	})
	if err != nil {
		return p, fmt.Errorf("prune store: %w", err)
	}
	return p, nil
}

// Stats returns counts for metrics.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	rows, err := s.rdb.QueryContext(ctx, `SELECT state, count(*) FROM inbox WHERE state = 'pending' OR state = 'processing' GROUP BY state`)
	if err != nil {
		return st, fmt.Errorf("read stats: %w", err)
	}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			rows.Close()
			return st, fmt.Errorf("read stats: %w", err)
		}
		switch InboxState(state) {
		case InboxPending:
			st.InboxPending = n
		case InboxProcessing:
			st.InboxProcessing = n
		}
	}
	rows.Close()
	if err := s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM outbox WHERE state IN ('pending', 'leased')),
		(SELECT count(*) FROM approvals WHERE state = 'pending'),
		(SELECT coalesce(max(seq), 0) FROM journal)`).Scan(&st.OutboxPending, &st.ApprovalsPending, &st.JournalSeq); err != nil {
		return st, fmt.Errorf("read stats: %w", err)
	}
	return st, nil
}
