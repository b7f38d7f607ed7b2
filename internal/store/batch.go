package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Apply makes a Batch of changes in one transaction; see Batch.
func (s *Store) Apply(ctx context.Context, b Batch) (BatchResult, error) {
	prep, err := prepareEntries(b.Entries)
	if err != nil {
		return BatchResult{}, fmt.Errorf("apply batch: %w", err)
	}
	updates := make([]preparedUpdate, len(b.Actions))
	rows := len(prep) + len(b.Finish)
	for i, u := range b.Actions {
		if updates[i], err = prepareUpdate(u, nil); err != nil {
			return BatchResult{}, fmt.Errorf("apply batch: action %s: %w", u.Key, err)
		}
		rows += updates[i].rows()
	}
	for _, id := range b.Finish {
		if err := checkText(id); err != nil {
			return BatchResult{}, fmt.Errorf("apply batch: finish %q: %w", id, err)
		}
	}
	res := BatchResult{Runs: make([]ActionRun, len(updates)), Applied: make([]bool, len(updates))}
	keys := make([]ActionKey, len(updates))
	for i := range updates {
		keys[i] = updates[i].Key
	}
	err = s.write(ctx, rows, func(t *wtx) error {
		pending := append([]prepared(nil), prep...)
		runs, err := t.loadRuns(keys)
		if err != nil {
			return err
		}
		var changed []*storedRun
		var msgs []preparedMessage
		for i := range updates {
			u := &updates[i]
			r, applied, err := t.transition(runs[u.Key], u)
			if err != nil {
				return err
			}
			res.Runs[i], res.Applied[i] = r.ActionRun, applied
			if !applied {
				continue
			}
			if runs[u.Key] == nil {
				runs[u.Key] = r
				changed = append(changed, r)
			} else if !slices.Contains(changed, r) {
				changed = append(changed, r)
			}
			msgs = append(msgs, u.msgs...)
			pending = append(pending, u.entries...)
		}
		if err := t.saveRuns(changed); err != nil {
			return err
		}
		if _, err := t.enqueue(msgs); err != nil {
			return err
		}
		if err := t.finish(b.Finish); err != nil {
			t.dirty = true // earlier statements of this batch must be undone
			return err
		}
		return t.append(pending, nil)
	})
	if err != nil {
		return BatchResult{}, fmt.Errorf("apply batch: %w", err)
	}
	return res, nil
}

const finishHead = `UPDATE inbox SET state = 'done', done_at = ?, owner = '', lease_until = '' WHERE state <> 'done' AND id IN (`

// finish marks alerts done, in statements of up to maxChunk ids. An id not
// in the inbox is an error (ErrNotFound); one already done is not.
func (t *wtx) finish(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	now := FormatTime(t.now)
	var changed int64
	args := make([]any, 0, 1+min(len(ids), maxChunk))
	for rest := ids; len(rest) > 0; {
		n := chunkRows(len(rest))
		key := chunkKey{finishHead, n}
		q, ok := t.w.chunkSQL[key]
		if !ok {
			q = finishHead + "?" + strings.Repeat(", ?", n-1) + ")"
			t.w.chunkSQL[key] = q
		}
		args = append(args[:0], now)
		for _, id := range rest[:n] {
			args = append(args, id)
		}
		c, err := t.affected(q, args...)
		if err != nil {
			return fmt.Errorf("finish alerts: %w", err)
		}
		changed += c
		rest = rest[n:]
	}
	if changed == int64(len(ids)) {
		return nil
	}
	// Some were done already (a replay), or are not in the inbox: find
	// which, one lookup each (rare).
	for _, id := range ids {
		var one int
		if err := t.queryRow(`SELECT 1 FROM inbox WHERE id = ?`, id).Scan(&one); err != nil {
			return fmt.Errorf("finish alert %s: %w", id, notFound(err))
		}
	}
	return nil
}
