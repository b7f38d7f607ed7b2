package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strings"
)

// Append appends entries in order, once durable; see Journal.
func (s *Store) Append(ctx context.Context, entries ...Entry) ([]Entry, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	prep, err := prepareEntries(entries)
	if err != nil {
		return nil, fmt.Errorf("append to journal: %w", err)
	}
	out := make([]Entry, len(prep))
	err = s.write(ctx, len(prep), func(t *wtx) error {
		return t.append(prep, out)
	})
	if err != nil {
		return nil, fmt.Errorf("append to journal: %w", err)
	}
	return out, nil
}

const journalColumns = `seq, time, type, alert_id, playbook, action, actor, detail, sha256, prev_hash, hash`

// scanRow reads a journal row; a NULL (only a hand edit makes one) reads
// as "", which then fails the hash check instead of the read.
func scanRow(sc interface{ Scan(...any) error }) (Row, error) {
	var r Row
	var f [10]sql.NullString
	err := sc.Scan(&r.Seq, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9])
	r.Time, r.Type, r.AlertID, r.Playbook, r.Action = f[0].String, f[1].String, f[2].String, f[3].String, f[4].String
	r.Actor, r.Detail, r.SHA256, r.PrevHash, r.Hash = f[5].String, f[6].String, f[7].String, f[8].String, f[9].String
	return r, err
}

func (r Row) entry() (Entry, error) {
	t, err := parseTime(r.Time)
	if err != nil {
		return Entry{}, fmt.Errorf("entry %d: %w", r.Seq, err)
	}
	d, err := decodeDetail(r.Detail)
	if err != nil {
		return Entry{}, fmt.Errorf("entry %d: %w", r.Seq, err)
	}
	return Entry{
		Seq: r.Seq, Time: t, Type: EntryType(r.Type), AlertID: r.AlertID, Playbook: r.Playbook,
		Action: r.Action, Actor: r.Actor, Detail: d, SHA256: r.SHA256, PrevHash: r.PrevHash,
		Hash: r.Hash, rawDetail: []byte(r.Detail),
	}, nil
}

func (f Filter) query() (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString("SELECT " + journalColumns + " FROM journal WHERE 1 = 1")
	if f.AlertID != "" {
		// The alert index leaves out alert.received (schema version 2): its
		// entry's seq is in the alert's inbox row; and the entries of an
		// alert settled at its accept (version 5), which follow it up to
		// the row's settled_seq. Only an alert pruned from the inbox (or
		// stored before version 2) is looked up by a scan of the journal.
		b.WriteString(` AND alert_id = ? AND seq IN (
  SELECT seq FROM journal WHERE alert_id = ? AND type <> 'alert.received' AND via_inbox = 0
  UNION ALL SELECT received_seq FROM inbox WHERE id = ? AND received_seq > 0
  UNION ALL SELECT j.seq FROM inbox i JOIN journal j ON j.seq > i.received_seq AND j.seq <= i.settled_seq
    WHERE i.id = ? AND i.settled_seq > 0
  UNION ALL SELECT seq FROM journal WHERE alert_id = ? AND (type = 'alert.received' OR via_inbox = 1)
    AND NOT EXISTS (SELECT 1 FROM inbox WHERE id = ? AND received_seq > 0))`)
		args = append(args, f.AlertID, f.AlertID, f.AlertID, f.AlertID, f.AlertID, f.AlertID)
	}
	if !f.Since.IsZero() {
		b.WriteString(" AND time >= ?")
		args = append(args, FormatTime(f.Since))
	}
	if f.AfterSeq > 0 {
		b.WriteString(" AND seq > ?")
		args = append(args, f.AfterSeq)
	}
	if len(f.Types) > 0 {
		b.WriteString(" AND type IN (?" + strings.Repeat(", ?", len(f.Types)-1) + ")")
		for _, t := range f.Types {
			args = append(args, string(t))
		}
	}
	b.WriteString(" ORDER BY seq")
	if f.Limit > 0 {
		fmt.Fprintf(&b, " LIMIT %d", f.Limit)
	}
	return b.String(), args
}

// Entries returns the entries that pass f, by seq.
func (s *Store) Entries(ctx context.Context, f Filter) ([]Entry, error) {
	var out []Entry
	for e, err := range s.Scan(ctx, f) {
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Scan streams the entries that pass f, by seq.
func (s *Store) Scan(ctx context.Context, f Filter) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		q, args := f.query()
		rows, err := s.rdb.QueryContext(ctx, q, args...)
		if err != nil {
			yield(Entry{}, fmt.Errorf("read journal: %w", err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRow(rows)
			if err != nil {
				yield(Entry{}, fmt.Errorf("read journal: %w", err))
				return
			}
			e, err := r.entry()
			if err != nil {
				yield(Entry{}, fmt.Errorf("read journal: %w", err))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(Entry{}, fmt.Errorf("read journal: %w", err))
		}
	}
}

// Head returns the last entry's seq, hash and time.
func (s *Store) Head(ctx context.Context) (Head, error) {
	var h Head
	var ts string
	err := s.rdb.QueryRowContext(ctx, `SELECT seq, hash, time FROM journal ORDER BY seq DESC LIMIT 1`).Scan(&h.Seq, &h.Hash, &ts)
	if errors.Is(err, sql.ErrNoRows) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("read journal head: %w", err)
	}
	if h.Time, err = parseTime(ts); err != nil {
		return Head{}, fmt.Errorf("read journal head: %w", err)
	}
	return h, nil
}

// Verify checks the whole chain in one read transaction; see doc.go.
func (s *Store) Verify(ctx context.Context) (Report, error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Report{}, fmt.Errorf("verify journal: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read only

	var rep Report
	var head *Head
	var ts string
	var h Head
	err = tx.QueryRowContext(ctx, `SELECT seq, hash, time FROM journal_head WHERE id = 1`).Scan(&h.Seq, &h.Hash, &ts)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Report{}, fmt.Errorf("verify journal: read head: %w", err)
	default:
		h.Time, _ = parseTime(ts) // a bad time is the hash's business, not ours
		head = &h
		rep.Head = h
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+journalColumns+` FROM journal ORDER BY seq`)
	if err != nil {
		return Report{}, fmt.Errorf("verify journal: %w", err)
	}
	defer rows.Close()
	seq := func(yield func(Row, error) bool) {
		for rows.Next() {
			r, err := scanRow(rows)
			if !yield(r, err) || err != nil {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(Row{}, err)
		}
	}
	n, problem, err := VerifyRows(seq, head)
	if err != nil {
		return Report{}, fmt.Errorf("verify journal: %w", err)
	}
	rep.Entries = n
	rep.Problem = problem
	return rep, nil
}
