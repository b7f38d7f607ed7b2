package store

import (
	"context"
	"fmt"
	"slices"
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
		_, held, err := t.enqueue(msgs)
		if err != nil {
			return err
		}
		pending = append(pending, held...)
		now := FormatTime(t.now)
		for _, id := range b.Finish {
			n, err := t.affected(`UPDATE inbox SET state = 'done', done_at = ?, owner = '', lease_until = '' WHERE id = ? AND state <> 'done'`, now, id)
			if err != nil {
				return err
			}
			if n == 0 {
				var one int
				if err := t.queryRow(`SELECT 1 FROM inbox WHERE id = ?`, id).Scan(&one); err != nil {
					t.dirty = true // earlier statements of this batch must be undone
					return fmt.Errorf("finish alert %s: %w", id, notFound(err))
				}
			}
		}
		return t.append(pending, nil)
	})
	if err != nil {
		return BatchResult{}, fmt.Errorf("apply batch: %w", err)
	}
	return res, nil
}
