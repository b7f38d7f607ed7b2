package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/riposte-sec/riposte/internal/actions"
)

const approvalColumns = `id, alert_id, playbook, idx, action, incident, deadline, state, decided_by, note, detail, created_at, decided_at`

func scanApproval(sc interface{ Scan(...any) error }) (Approval, error) {
	var a Approval
	var deadline, detail, created, decided string
	if err := sc.Scan(&a.ID, &a.Key.AlertID, &a.Key.Playbook, &a.Key.Index, &a.Action, &a.Incident, &deadline,
		&a.State, &a.DecidedBy, &a.Note, &detail, &created, &decided); err != nil {
		return a, err
	}
	var err error
	if a.Deadline, err = parseTime(deadline); err != nil {
		return a, err
	}
	if a.CreatedAt, err = parseTime(created); err != nil {
		return a, err
	}
	if a.DecidedAt, err = parseTime(decided); err != nil {
		return a, err
	}
	if a.Detail, err = decodeDetail(detail); err != nil {
		return a, err
	}
	if len(a.Detail) == 0 {
		a.Detail = nil
	}
	return a, nil
}

// HoldAction holds a run for approval; see Approvals.
func (s *Store) HoldAction(ctx context.Context, h Hold, entries ...Entry) (Approval, bool, error) {
	if err := errors.Join(checkKey(h.Key), checkText(h.Action), checkText(h.Incident)); err != nil {
		return Approval{}, false, fmt.Errorf("hold action %s: %w", h.Key, err)
	}
	if h.Deadline.IsZero() {
		return Approval{}, false, fmt.Errorf("hold action %s: no deadline", h.Key)
	}
	detail, err := marshalDetail(h.Detail)
	if err != nil {
		return Approval{}, false, fmt.Errorf("hold action %s: %w", h.Key, err)
	}
	prep, err := prepareEntries(entries)
	if err != nil {
		return Approval{}, false, fmt.Errorf("hold action %s: %w", h.Key, err)
	}
	var a Approval
	var created bool
	err = s.write(ctx, 2+len(prep), func(t *wtx) error {
		a, created = Approval{}, false
		got, err := scanApproval(t.queryRow(`SELECT `+approvalColumns+` FROM approvals WHERE alert_id = ? AND playbook = ? AND idx = ?`,
			h.Key.AlertID, h.Key.Playbook, h.Key.Index))
		if err == nil {
			a = got
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			t.dirty = true
			return err
		}
		cur, err := t.loadRun(h.Key)
		if err != nil {
			return err
		}
		r := cur
		switch {
		case r == nil:
			if h.Action == "" {
				return errors.New("new run needs the action name")
			}
			r = &storedRun{ActionRun: ActionRun{Key: h.Key, Action: h.Action, Incident: h.Incident, Destructive: h.Destructive}}
		case r.State != ActionStatePlanned && r.State != ActionStateHeld:
			return fmt.Errorf("run is %s: %w", r.State, ErrState)
		}
		r.State = ActionStateHeld
		if err := t.saveRuns([]*storedRun{r}); err != nil {
			return err
		}
		a = Approval{
			ID: newID("apr", t.now), Key: h.Key, Action: r.Action, Incident: r.Incident, Deadline: h.Deadline.UTC(),
			State: ApprovalStatePending, Detail: h.Detail, CreatedAt: t.now,
		}
		if _, err := t.exec(`INSERT INTO approvals (`+approvalColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', '', ?, ?, '')`,
			a.ID, h.Key.AlertID, h.Key.Playbook, h.Key.Index, a.Action, a.Incident, FormatTime(a.Deadline),
			string(a.State), string(detail), FormatTime(a.CreatedAt)); err != nil {
			return err
		}
		created = true
		return t.append(prep, nil)
	})
	if err != nil {
		return Approval{}, false, fmt.Errorf("hold action %s: %w", h.Key, err)
	}
	return a, created, nil
}

// DecideApproval closes a pending approval; see Approvals.
func (s *Store) DecideApproval(ctx context.Context, id string, d Decision, entries ...Entry) (Approval, bool, error) {
	switch d.State {
	case ApprovalStateGranted, ApprovalStateDenied, ApprovalStateExpired:
	default:
		return Approval{}, false, fmt.Errorf("decide approval %s: decision must be granted, denied or expired, got %q", id, d.State)
	}
	if err := errors.Join(checkText(d.By), checkText(d.Note)); err != nil {
		return Approval{}, false, fmt.Errorf("decide approval %s: %w", id, err)
	}
	prep, err := prepareEntries(entries)
	if err != nil {
		return Approval{}, false, fmt.Errorf("decide approval %s: %w", id, err)
	}
	var a Approval
	var decided bool
	err = s.write(ctx, 2+len(prep), func(t *wtx) error {
		decided = false
		var err error
		a, err = scanApproval(t.queryRow(`SELECT `+approvalColumns+` FROM approvals WHERE id = ?`, id))
		if err != nil {
			if !errors.Is(err, sql.ErrNoRows) {
				t.dirty = true
			}
			return notFound(err)
		}
		if a.State != ApprovalStatePending {
			return nil
		}
		a.State, a.DecidedBy, a.Note, a.DecidedAt = d.State, d.By, d.Note, t.now
		if _, err := t.exec(`UPDATE approvals SET state = ?, decided_by = ?, note = ?, decided_at = ? WHERE id = ?`,
			string(a.State), a.DecidedBy, a.Note, FormatTime(a.DecidedAt), id); err != nil {
			return err
		}
		r, err := t.loadRun(a.Key)
		if err != nil {
			return err
		}
		if r != nil && r.State == ActionStateHeld {
			if d.State == ApprovalStateGranted || (d.State == ApprovalStateExpired && d.Proceed) {
				r.State = ActionStatePlanned
			} else {
				r.State = ActionStateSkipped
				note := "approval " + string(d.State)
				if d.By != "" && d.State == ApprovalStateDenied {
					note += " by " + d.By
				}
				r.Result = &actions.Result{Note: note}
			}
			if err := t.saveRuns([]*storedRun{r}); err != nil {
				return err
			}
		}
		decided = true
		return t.append(prep, nil)
	})
	if err != nil {
		return Approval{}, false, fmt.Errorf("decide approval %s: %w", id, err)
	}
	return a, decided, nil
}

// GetApproval returns one approval, or ErrNotFound.
func (s *Store) GetApproval(ctx context.Context, id string) (Approval, error) {
	a, err := scanApproval(s.rdb.QueryRowContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE id = ?`, id))
	if err != nil {
		return Approval{}, fmt.Errorf("get approval %s: %w", id, notFound(err))
	}
	return a, nil
}

// PendingApprovals lists pending approvals, earliest deadline first.
func (s *Store) PendingApprovals(ctx context.Context) ([]Approval, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+approvalColumns+` FROM approvals WHERE state = 'pending' ORDER BY deadline, id`)
	if err != nil {
		return nil, fmt.Errorf("list pending approvals: %w", err)
	}
	defer rows.Close()
	var out []Approval
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
