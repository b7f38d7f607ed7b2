package postgres

import (
	"context"
	"fmt"

	"github.com/riposte-sec/riposte/internal/store"
)

// AddSilence stores a new silence; see store.Silences.
func (s *Store) AddSilence(ctx context.Context, sl store.Silence, entries ...store.Entry) (store.Silence, error) {
	matcher, err := store.CheckSilence(sl)
	if err != nil {
		return store.Silence{}, fmt.Errorf("add silence: %w", err)
	}
	sl.ID = store.NewID("sil", s.now())
	prep, err := store.PrepareEntries(store.NameSilence(entries, sl.ID))
	if err != nil {
		return store.Silence{}, fmt.Errorf("add silence: %w", err)
	}
	err = s.write(ctx, len(prep) > 0, func(t *wtx) error {
		sl.State, sl.CreatedAt, sl.UpdatedAt = store.InitialSilenceState(sl), t.now, t.now
		sl.StartsAt, sl.EndsAt, sl.EndedBy = sl.StartsAt.UTC(), sl.EndsAt.UTC(), ""
		if _, err := t.exec(`INSERT INTO silences (`+store.SilenceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '', $10, $10)`,
			sl.ID, matcher, string(sl.Scope), store.FormatTime(sl.StartsAt), store.FormatTime(sl.EndsAt), sl.CreatedBy,
			sl.ApprovedBy, sl.Comment, string(sl.State), store.FormatTime(t.now)); err != nil {
			return err
		}
		return t.append(prep, nil)
	})
	if err != nil {
		return store.Silence{}, fmt.Errorf("add silence: %w", err)
	}
	return sl, nil
}

// GetSilence returns one silence, or store.ErrNotFound.
func (s *Store) GetSilence(ctx context.Context, id string) (store.Silence, error) {
	sl, err := store.ScanSilence(s.pool.QueryRow(ctx, `SELECT `+store.SilenceColumns+` FROM silences WHERE id = $1`, id))
	if err != nil {
		return store.Silence{}, fmt.Errorf("get silence %s: %w", id, notFound(err))
	}
	return sl, nil
}

// ListSilences returns silences by start time; see store.Silences.
func (s *Store) ListSilences(ctx context.Context, f store.SilenceFilter) ([]store.Silence, error) {
	q := `SELECT ` + store.SilenceColumns + ` FROM silences WHERE ends_at > $1`
	if !f.Deleted {
		q += ` AND state <> 'deleted'`
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY starts_at, id`, store.FormatTime(f.EndsAfter))
	if err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	defer rows.Close()
	var out []store.Silence
	for rows.Next() {
		sl, err := store.ScanSilence(rows)
		if err != nil {
			return nil, fmt.Errorf("list silences: %w", err)
		}
		out = append(out, sl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	return out, nil
}

// EndSilence expires or deletes a silence; see store.Silences. The row is
// locked, so that two replicas ending it at once journal it once.
func (s *Store) EndSilence(ctx context.Context, id string, e store.SilenceEnd, entries ...store.Entry) (store.Silence, bool, error) {
	if err := store.CheckText(e.By); err != nil {
		return store.Silence{}, false, fmt.Errorf("end silence %s: %w", id, err)
	}
	prep, err := store.PrepareEntries(store.NameSilence(entries, id))
	if err != nil {
		return store.Silence{}, false, fmt.Errorf("end silence %s: %w", id, err)
	}
	var sl store.Silence
	var changed bool
	err = s.write(ctx, true, func(t *wtx) error {
		changed = false
		var err error
		if sl, err = store.ScanSilence(t.queryRow(`SELECT `+store.SilenceColumns+` FROM silences WHERE id = $1 FOR UPDATE`, id)); err != nil {
			return notFound(err)
		}
		next, ok := store.EndedSilence(sl, e, t.now)
		if !ok {
			return nil
		}
		sl = next
		if _, err := t.exec(`UPDATE silences SET state = $1, starts_at = $2, ends_at = $3, ended_by = $4, updated_at = $5 WHERE id = $6`,
			string(sl.State), store.FormatTime(sl.StartsAt), store.FormatTime(sl.EndsAt), sl.EndedBy, store.FormatTime(t.now), id); err != nil {
			return err
		}
		changed = true
		return t.append(prep, nil)
	})
	if err != nil {
		return store.Silence{}, false, fmt.Errorf("end silence %s: %w", id, err)
	}
	return sl, changed, nil
}

// ApproveSilence approves a pending silence; see store.Silences.
func (s *Store) ApproveSilence(ctx context.Context, id, by string, entries ...store.Entry) (store.Silence, error) {
	if err := store.CheckText(by); err != nil {
		return store.Silence{}, fmt.Errorf("approve silence %s: %w", id, err)
	}
	prep, err := store.PrepareEntries(store.NameSilence(entries, id))
	if err != nil {
		return store.Silence{}, fmt.Errorf("approve silence %s: %w", id, err)
	}
	var sl store.Silence
	err = s.write(ctx, true, func(t *wtx) error {
		cur, err := store.ScanSilence(t.queryRow(`SELECT `+store.SilenceColumns+` FROM silences WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return notFound(err)
		}
		if sl, err = store.ApprovedSilence(cur, by, t.now); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE silences SET state = $1, approved_by = $2, updated_at = $3 WHERE id = $4`,
			string(sl.State), sl.ApprovedBy, store.FormatTime(t.now), id); err != nil {
			return err
		}
		return t.append(prep, nil)
	})
	if err != nil {
		return store.Silence{}, fmt.Errorf("approve silence %s: %w", id, err)
	}
	return sl, nil
}

// CloseEndedSilences journals the natural end of silences; see
// store.Silences. The update takes the rows it ends, so that replicas
// calling it together journal each end once.
func (s *Store) CloseEndedSilences(ctx context.Context) ([]store.Silence, error) {
	var ended []store.Silence
	err := s.write(ctx, true, func(t *wtx) error {
		ended = nil
		rows, err := t.tx.Query(t.ctx, `UPDATE silences SET state = 'ended', updated_at = $1
WHERE state IN ('active', 'pending') AND ends_at <= $1 RETURNING `+store.SilenceColumns, store.FormatTime(t.now))
		if err != nil {
			return err
		}
		for rows.Next() {
			sl, err := store.ScanSilence(rows)
			if err != nil {
				rows.Close()
				return err
			}
			ended = append(ended, sl)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ended) == 0 {
			return nil
		}
		entries := make([]store.Entry, len(ended))
		for i := range ended {
			entries[i] = store.SilenceEndedEntry(ended[i])
		}
		prep, err := store.PrepareEntries(entries)
		if err != nil {
			return err
		}
		return t.append(prep, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("close ended silences: %w", err)
	}
	return ended, nil
}
