package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/store"
)

const approvalColumns = `id, alert_id, playbook, idx, action, incident, deadline, state, decided_by, note, detail, created_at, decided_at`

func scanApproval(sc pgx.Row) (store.Approval, error) {
	var a store.Approval
	var deadline, detail, created, decided string
	if err := sc.Scan(&a.ID, &a.Key.AlertID, &a.Key.Playbook, &a.Key.Index, &a.Action, &a.Incident, &deadline,
		&a.State, &a.DecidedBy, &a.Note, &detail, &created, &decided); err != nil {
		return a, err
	}
	var err error
	if a.Deadline, err = store.ParseTime(deadline); err != nil {
		return a, err
	}
	if a.CreatedAt, err = store.ParseTime(created); err != nil {
		return a, err
	}
	if a.DecidedAt, err = store.ParseTime(decided); err != nil {
		return a, err
	}
	if a.Detail, err = store.DecodeDetail(detail); err != nil {
		return a, err
	}
	if len(a.Detail) == 0 {
		a.Detail = nil
	}
	return a, nil
}

// HoldAction holds a run for approval; see store.Approvals.
func (s *Store) HoldAction(ctx context.Context, h store.Hold, entries ...store.Entry) (store.Approval, bool, error) {
	if err := errors.Join(store.CheckKey(h.Key), store.CheckText(h.Action), store.CheckText(h.Incident)); err != nil {
		return store.Approval{}, false, fmt.Errorf("hold action %s: %w", h.Key, err)
	}
	if h.Deadline.IsZero() {
		return store.Approval{}, false, fmt.Errorf("hold action %s: no deadline", h.Key)
	}
	detail, err := store.MarshalDetail(h.Detail)
	if err != nil {
		return store.Approval{}, false, fmt.Errorf("hold action %s: %w", h.Key, err)
	}
	prep, err := store.PrepareEntries(entries)
	if err != nil {
		return store.Approval{}, false, fmt.Errorf("hold action %s: %w", h.Key, err)
	}
	var a store.Approval
	var created bool
	err = s.write(ctx, true, func(t *wtx) error {
		a, created = store.Approval{}, false
		got, err := scanApproval(t.queryRow(`SELECT `+approvalColumns+` FROM approvals WHERE alert_id = $1 AND playbook = $2 AND idx = $3`,
			h.Key.AlertID, h.Key.Playbook, h.Key.Index))
		if err == nil {
			a = got
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		r, err := t.loadRun(h.Key)
		if err != nil {
			return err
		}
		switch {
		case r == nil:
			if h.Action == "" {
				return errors.New("new run needs the action name")
			}
			r = &storedRun{ActionRun: store.ActionRun{Key: h.Key, Action: h.Action, Incident: h.Incident, Destructive: h.Destructive}}
		case r.State != store.ActionStatePlanned && r.State != store.ActionStateHeld:
			return fmt.Errorf("run is %s: %w", r.State, store.ErrState)
		}
		r.State = store.ActionStateHeld
		if err := t.saveRun(r); err != nil {
			return err
		}
		a = store.Approval{
			ID: store.NewID("apr", t.now), Key: h.Key, Action: r.Action, Incident: r.Incident, Deadline: h.Deadline.UTC(),
			State: store.ApprovalStatePending, Detail: h.Detail, CreatedAt: t.now,
		}
		if _, err := t.exec(`INSERT INTO approvals (`+approvalColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '', '', $9, $10, '')`,
			a.ID, h.Key.AlertID, h.Key.Playbook, h.Key.Index, a.Action, a.Incident, store.FormatTime(a.Deadline),
			string(a.State), string(detail), store.FormatTime(a.CreatedAt)); err != nil {
			return err
		}
		created = true
		return t.append(prep, nil)
	})
	if err != nil {
		return store.Approval{}, false, fmt.Errorf("hold action %s: %w", h.Key, err)
	}
	return a, created, nil
}

// DecideApproval closes a pending approval and moves its run on; see
// store.Approvals. Any replica may decide an approval another one opened:
// the run goes back to planned and whichever replica claims it runs it.
func (s *Store) DecideApproval(ctx context.Context, id string, d store.Decision, entries ...store.Entry) (store.Approval, bool, error) {
	switch d.State {
	case store.ApprovalStateGranted, store.ApprovalStateDenied, store.ApprovalStateExpired:
	default:
		return store.Approval{}, false, fmt.Errorf("decide approval %s: decision must be granted, denied or expired, got %q", id, d.State)
	}
	if err := errors.Join(store.CheckText(d.By), store.CheckText(d.Note)); err != nil {
		return store.Approval{}, false, fmt.Errorf("decide approval %s: %w", id, err)
	}
	prep, err := store.PrepareEntries(entries)
	if err != nil {
		return store.Approval{}, false, fmt.Errorf("decide approval %s: %w", id, err)
	}
	var a store.Approval
	var decided bool
	err = s.write(ctx, true, func(t *wtx) error {
		decided = false
		var err error
		if a, err = scanApproval(t.queryRow(`SELECT `+approvalColumns+` FROM approvals WHERE id = $1`, id)); err != nil {
			return notFound(err)
		}
		if a.State != store.ApprovalStatePending {
			return nil
		}
		a.State, a.DecidedBy, a.Note, a.DecidedAt = d.State, d.By, d.Note, t.now
		if _, err := t.exec(`UPDATE approvals SET state = $1, decided_by = $2, note = $3, decided_at = $4 WHERE id = $5`,
			string(a.State), a.DecidedBy, a.Note, store.FormatTime(a.DecidedAt), id); err != nil {
			return err
		}
		r, err := t.loadRun(a.Key)
		if err != nil {
			return err
		}
		if r != nil && r.State == store.ActionStateHeld {
			if d.State == store.ApprovalStateGranted || (d.State == store.ApprovalStateExpired && d.Proceed) {
				r.State = store.ActionStatePlanned
			} else {
				r.State = store.ActionStateSkipped
				note := "approval " + string(d.State)
				if d.By != "" && d.State == store.ApprovalStateDenied {
					note += " by " + d.By
				}
				r.Result = &actions.Result{Note: note}
			}
			if err := t.saveRun(r); err != nil {
				return err
			}
		}
		decided = true
		return t.append(prep, nil)
	})
	if err != nil {
		return store.Approval{}, false, fmt.Errorf("decide approval %s: %w", id, err)
	}
	return a, decided, nil
}

// GetApproval returns one approval, or store.ErrNotFound.
func (s *Store) GetApproval(ctx context.Context, id string) (store.Approval, error) {
	a, err := scanApproval(s.pool.QueryRow(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = $1`, id))
	if err != nil {
		return store.Approval{}, fmt.Errorf("get approval %s: %w", id, notFound(err))
	}
	return a, nil
}

// PendingApprovals lists pending approvals, earliest deadline first.
func (s *Store) PendingApprovals(ctx context.Context) ([]store.Approval, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE state = 'pending' ORDER BY deadline, id`)
	if err != nil {
		return nil, fmt.Errorf("list pending approvals: %w", err)
	}
	defer rows.Close()
	var out []store.Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, fmt.Errorf("list pending approvals: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pending approvals: %w", err)
	}
	return out, nil
}
