package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/store"
)

// Append appends entries and returns them as stored, once committed.
func (s *Store) Append(ctx context.Context, entries ...store.Entry) ([]store.Entry, error) {
	prep, err := store.PrepareEntries(entries)
	if err != nil {
		return nil, fmt.Errorf("append to journal: %w", err)
	}
	out := make([]store.Entry, len(prep))
	err = s.write(ctx, true, func(t *wtx) error { return t.append(prep, out) })
	if err != nil {
		return nil, fmt.Errorf("append to journal: %w", err)
	}
	return out, nil
}

const journalColumns = `seq, time, type, alert_id, playbook, action, actor, detail, sha256, prev_hash, hash`

func scanRow(sc pgx.Row) (store.Row, error) {
	var r store.Row
	err := sc.Scan(&r.Seq, &r.Time, &r.Type, &r.AlertID, &r.Playbook, &r.Action, &r.Actor, &r.Detail, &r.SHA256, &r.PrevHash, &r.Hash)
	return r, err
}

// filterQuery is f's query; received and settled are the seqs of
// f.AlertID's alert.received entry and of its last settled entry, from its
// inbox row (0 when it has none).
func filterQuery(f store.Filter, received, settled int64) (string, []any) {
	var b strings.Builder
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	b.WriteString("SELECT " + journalColumns + " FROM journal WHERE true")
	if f.AlertID != "" {
		// The alert index leaves out alert.received (schema version 3)
		// and the entries of an alert settled at its accept (version 5),
		// which follow its alert.received up to settled: those seqs are
		// in the alert's inbox row (read first). Only an alert pruned
		// from the inbox is looked up by a scan of the journal.
		id := arg(f.AlertID)
		if received > 0 {
			b.WriteString(` AND alert_id = ` + id + ` AND seq IN (
  SELECT seq FROM journal WHERE alert_id = ` + id + ` AND type <> 'alert.received' AND NOT via_inbox
  UNION ALL SELECT ` + arg(received) + `::bigint`)
			if settled > received {
				b.WriteString(`
  UNION ALL SELECT generate_series(` + arg(received+1) + `::bigint, ` + arg(settled) + `::bigint)`)
			}
			b.WriteString(`)`)
		} else {
			b.WriteString(" AND alert_id = " + id)
		}
	}
	if !f.Since.IsZero() {
		b.WriteString(" AND time >= " + arg(store.FormatTime(f.Since)))
	}
	if f.AfterSeq > 0 {
		b.WriteString(" AND seq > " + arg(f.AfterSeq))
	}
	if len(f.Types) > 0 {
		types := make([]string, len(f.Types))
		for i, t := range f.Types {
			types[i] = string(t)
		}
		b.WriteString(" AND type = ANY(" + arg(types) + ")")
	}
	b.WriteString(" ORDER BY seq")
	if f.Limit > 0 {
		fmt.Fprintf(&b, " LIMIT %d", f.Limit)
	}
	return b.String(), args
}

// Entries returns the entries that pass f, by seq.
func (s *Store) Entries(ctx context.Context, f store.Filter) ([]store.Entry, error) {
	var out []store.Entry
	for e, err := range s.Scan(ctx, f) {
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Scan streams the entries that pass f, by seq.
func (s *Store) Scan(ctx context.Context, f store.Filter) iter.Seq2[store.Entry, error] {
	return func(yield func(store.Entry, error) bool) {
		if s.closed.Load() {
			yield(store.Entry{}, fmt.Errorf("read journal: %w", store.ErrClosed))
			return
		}
		var received, settled int64
		if f.AlertID != "" {
			err := s.pool.QueryRow(ctx, `SELECT received_seq, settled_seq FROM inbox WHERE id = $1`, f.AlertID).Scan(&received, &settled)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				yield(store.Entry{}, fmt.Errorf("read journal: %w", err))
				return
			}
		}
		q, args := filterQuery(f, received, settled)
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			yield(store.Entry{}, fmt.Errorf("read journal: %w", err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRow(rows)
			if err == nil {
				var e store.Entry
				if e, err = r.Entry(); err == nil {
					if !yield(e, nil) {
						return
					}
					continue
				}
			}
			yield(store.Entry{}, fmt.Errorf("read journal: %w", err))
			return
		}
		if err := rows.Err(); err != nil {
			yield(store.Entry{}, fmt.Errorf("read journal: %w", err))
		}
	}
}

// Head returns the last entry's seq, hash and time.
func (s *Store) Head(ctx context.Context) (store.Head, error) {
	if s.closed.Load() {
		return store.Head{}, fmt.Errorf("read journal head: %w", store.ErrClosed)
	}
	var h store.Head
	var ts string
	err := s.pool.QueryRow(ctx, `SELECT seq, hash, time FROM journal ORDER BY seq DESC LIMIT 1`).Scan(&h.Seq, &h.Hash, &ts)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Head{}, nil
	}
	if err != nil {
		return store.Head{}, fmt.Errorf("read journal head: %w", err)
	}
	if h.Time, err = store.ParseTime(ts); err != nil {
		return store.Head{}, fmt.Errorf("read journal head: %w", err)
	}
	return h, nil
}

// Verify checks the whole chain against the recorded head, in one
// repeatable-read snapshot (so it runs while replicas append).
func (s *Store) Verify(ctx context.Context) (store.Report, error) {
	if s.closed.Load() {
		return store.Report{}, fmt.Errorf("verify journal: %w", store.ErrClosed)
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return store.Report{}, fmt.Errorf("verify journal: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read only
	var rep store.Report
	var head *store.Head
	var h store.Head
	var ts string
	err = tx.QueryRow(ctx, `SELECT seq, hash, time FROM journal_head WHERE id = 1`).Scan(&h.Seq, &h.Hash, &ts)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return store.Report{}, fmt.Errorf("verify journal: read head: %w", err)
	case h.Seq == 0 && h.Hash == store.GenesisHash:
		// The head of an empty journal, as migrated: like SQLite's
		// missing row, it records nothing.
	default:
		h.Time, _ = store.ParseTime(ts) // a bad time is the hash's business
		head = &h
		rep.Head = h
	}
	rows, err := tx.Query(ctx, `SELECT `+journalColumns+` FROM journal ORDER BY seq`)
	if err != nil {
		return store.Report{}, fmt.Errorf("verify journal: %w", err)
	}
	defer rows.Close()
	seq := func(yield func(store.Row, error) bool) {
		for rows.Next() {
			r, err := scanRow(rows)
			if !yield(r, err) || err != nil {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(store.Row{}, err)
		}
	}
	n, problem, err := store.VerifyRows(seq, head)
	if err != nil {
		return store.Report{}, fmt.Errorf("verify journal: %w", err)
	}
	rep.Entries, rep.Problem = n, problem
	return rep, nil
}
