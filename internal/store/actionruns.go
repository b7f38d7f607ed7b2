package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/riposte-sec/riposte/internal/actions"
)

const runColumns = `alert_id, playbook, idx, action, incident, state, destructive, result, error, attempts, owner, created_at, started_at, updated_at`

// storedRun is an action run with the column the API does not show.
type storedRun struct {
	ActionRun
	owner string
}

func (s *Store) scanRun(sc interface{ Scan(...any) error }) (storedRun, error) {
	var r storedRun
	var result, created, started, updated string
	var destructive int
	if err := sc.Scan(&r.Key.AlertID, &r.Key.Playbook, &r.Key.Index, &r.Action, &r.Incident, &r.State,
		&destructive, &result, &r.Error, &r.Attempts, &r.owner, &created, &started, &updated); err != nil {
		return r, err
	}
	r.Destructive = destructive != 0
	if result != "" {
		r.Result = new(actions.Result)
		if err := json.Unmarshal([]byte(result), r.Result); err != nil {
			return r, fmt.Errorf("decode result of %s: %w", r.Key, err)
		}
	}
	var err error
	if r.CreatedAt, err = parseTime(created); err != nil {
		return r, err
	}
	if r.StartedAt, err = parseTime(started); err != nil {
		return r, err
	}
	if r.UpdatedAt, err = parseTime(updated); err != nil {
		return r, err
	}
	r.InDoubt = r.State == ActionStateStarted && r.owner != s.owner
	return r, nil
}

// loadRun reads a run inside the writer; nil when there is none.
func (t *wtx) loadRun(k ActionKey) (*storedRun, error) {
	r, err := t.w.s.scanRun(t.queryRow(`SELECT `+runColumns+` FROM action_runs WHERE alert_id = ? AND playbook = ? AND idx = ?`,
		k.AlertID, k.Playbook, k.Index))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		t.dirty = true
		return nil, err
	}
	return &r, nil
}

const (
	upsertRunsHead = `INSERT INTO action_runs (` + runColumns + `) VALUES `
	runPlaceholder = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	upsertRunsTail = ` ON CONFLICT (alert_id, playbook, idx) DO UPDATE SET action = excluded.action,
		incident = excluded.incident, state = excluded.state, destructive = excluded.destructive,
		result = excluded.result, error = excluded.error, attempts = excluded.attempts, owner = excluded.owner,
		started_at = excluded.started_at, updated_at = excluded.updated_at`
)

// saveRuns writes whole rows, several per statement.
func (t *wtx) saveRuns(runs []*storedRun) error {
	args := make([]any, 0, 14*len(runs))
	for _, r := range runs {
		result := ""
		if r.Result != nil {
			b, err := json.Marshal(r.Result)
			if err != nil {
				return fmt.Errorf("encode result of %s: %w", r.Key, err)
			}
			result = string(b)
		}
		destructive := 0
		if r.Destructive {
			destructive = 1
		}
		r.UpdatedAt = t.now
		if r.CreatedAt.IsZero() {
			r.CreatedAt = t.now
		}
		args = append(args, r.Key.AlertID, r.Key.Playbook, r.Key.Index, r.Action, r.Incident, string(r.State), destructive,
			result, r.Error, r.Attempts, r.owner, FormatTime(r.CreatedAt), FormatTime(r.StartedAt), FormatTime(r.UpdatedAt))
	}
	return t.execRows(upsertRunsHead, runPlaceholder, upsertRunsTail, 14, args)
}

// start makes r started by this store.
func (t *wtx) start(r *storedRun) {
	r.State = ActionStateStarted
	r.Attempts++
	r.owner = t.w.s.owner
	r.InDoubt = false
	if r.StartedAt.IsZero() {
		r.StartedAt = t.now
	}
}

func validState(s ActionState) bool {
	switch s {
	case ActionStatePlanned, ActionStateStarted, ActionStateSucceeded, ActionStateFailed, ActionStateSkipped, ActionStateHeld:
		return true
	}
	return false
}

// transitionAllowed is the table in doc.go.
func transitionAllowed(cur *storedRun, to ActionState) bool {
	if cur == nil {
		return true
	}
	switch cur.State {
	case ActionStatePlanned:
		return to != ActionStatePlanned
	case ActionStateHeld:
		return to == ActionStateFailed || to == ActionStateSkipped
	case ActionStateStarted:
		// skipped: a guardrail in the responder refused (protected container).
		return to == ActionStateSucceeded || to == ActionStateFailed || to == ActionStateSkipped || (to == ActionStateStarted && cur.InDoubt)
	}
	return false
}

func checkKey(k ActionKey) error {
	if k.AlertID == "" && k.Playbook == "" {
		return errors.New("action key has neither alert id nor playbook")
	}
	if k.Index < 0 {
		return fmt.Errorf("action key index %d is negative", k.Index)
	}
	return errors.Join(checkText(k.AlertID), checkText(k.Playbook))
}

// ClaimAction starts an action unless it already began; see ActionRuns.
func (s *Store) ClaimAction(ctx context.Context, c ClaimRequest, entries ...Entry) (Claim, error) {
	if err := errors.Join(checkKey(c.Key), checkText(c.Action), checkText(c.Incident)); err != nil {
		return Claim{}, fmt.Errorf("claim action %s: %w", c.Key, err)
	}
	prep, err := prepareEntries(entries)
	if err != nil {
		return Claim{}, fmt.Errorf("claim action %s: %w", c.Key, err)
	}
	var claim Claim
	err = s.write(ctx, 1+len(prep), func(t *wtx) error {
		claim = Claim{}
		cur, err := t.loadRun(c.Key)
		if err != nil {
			return err
		}
		if cur != nil {
			claim.Run = cur.ActionRun
			switch {
			case cur.State.Final():
				claim.Outcome = ClaimDone
				return nil
			case cur.State == ActionStateHeld:
				claim.Outcome = ClaimHeld
				return nil
			case cur.State == ActionStateStarted && cur.InDoubt:
				claim.Outcome = ClaimInDoubt
				return nil
			case cur.State == ActionStateStarted:
				claim.Outcome = ClaimBusy
				return nil
			}
		}
		r := cur
		if r == nil {
			if c.Action == "" {
				return fmt.Errorf("new run needs the action name")
			}
			r = &storedRun{ActionRun: ActionRun{Key: c.Key, Action: c.Action, Incident: c.Incident}}
		}
		r.Destructive = r.Destructive || c.Destructive
		if r.Destructive && c.Budget.Max > 0 {
			var n int
			cutoff := FormatTime(t.now.Add(-c.Budget.Window))
			if err := t.queryRow(`SELECT count(*) FROM action_runs WHERE destructive = 1 AND started_at >= ?`, cutoff).Scan(&n); err != nil {
				return err
			}
			if n >= c.Budget.Max {
				claim.Outcome = ClaimOverBudget
				return nil
			}
		}
		t.start(r)
		if err := t.saveRuns([]*storedRun{r}); err != nil {
			return err
		}
		if err := t.append(prep, nil); err != nil {
			return err
		}
		claim = Claim{Outcome: ClaimRun, Run: r.ActionRun}
		return nil
	})
	if err != nil {
		return Claim{}, fmt.Errorf("claim action %s: %w", c.Key, err)
	}
	return claim, nil
}

// RecordAction applies one transition; see ActionRuns.
func (s *Store) RecordAction(ctx context.Context, u ActionUpdate, entries ...Entry) (ActionRun, bool, error) {
	pu, err := prepareUpdate(u, entries)
	if err != nil {
		return ActionRun{}, false, fmt.Errorf("record action %s: %w", u.Key, err)
	}
	var run ActionRun
	var applied bool
	err = s.write(ctx, pu.rows(), func(t *wtx) error {
		var pending []prepared
		var err error
		run, applied, err = t.applyUpdate(&pu, &pending)
		if err != nil {
			return err
		}
		return t.append(pending, nil)
	})
	if err != nil {
		return ActionRun{}, false, fmt.Errorf("record action %s: %w", u.Key, err)
	}
	return run, applied, nil
}

// preparedUpdate is an ActionUpdate checked and encoded by its caller.
type preparedUpdate struct {
	ActionUpdate
	entries []prepared
	msgs    []preparedMessage
}

func (pu *preparedUpdate) rows() int { return 1 + len(pu.entries) + len(pu.msgs) }

func prepareUpdate(u ActionUpdate, entries []Entry) (preparedUpdate, error) {
	if !validState(u.State) {
		return preparedUpdate{}, fmt.Errorf("unknown state %q", u.State)
	}
	if err := errors.Join(checkKey(u.Key), checkText(u.Action), checkText(u.Incident), checkText(u.Error)); err != nil {
		return preparedUpdate{}, err
	}
	prep, err := prepareEntries(append(append([]Entry(nil), u.Entries...), entries...))
	if err != nil {
		return preparedUpdate{}, err
	}
	msgs, err := prepareMessages(u.Enqueue)
	if err != nil {
		return preparedUpdate{}, err
	}
	return preparedUpdate{ActionUpdate: u, entries: prep, msgs: msgs}, nil
}

// applyUpdate applies one transition if allowed and adds its entries to
// pending (the caller appends them).
func (t *wtx) applyUpdate(u *preparedUpdate, pending *[]prepared) (ActionRun, bool, error) {
	cur, err := t.loadRun(u.Key)
	if err != nil {
		return ActionRun{}, false, err
	}
	r, applied, err := t.transition(cur, u)
	if err != nil || !applied {
		return r.ActionRun, false, err
	}
	if err := t.saveRuns([]*storedRun{r}); err != nil {
		return ActionRun{}, false, err
	}
	_, held, err := t.enqueue(u.msgs)
	if err != nil {
		return ActionRun{}, false, err
	}
	*pending = append(append(*pending, u.entries...), held...)
	return r.ActionRun, true, nil
}

// transition computes the run after u, in memory: cur itself (changed)
// or a new run when cur is nil; applied is false, and cur returned as is,
// when the transition is not allowed.
func (t *wtx) transition(cur *storedRun, u *preparedUpdate) (*storedRun, bool, error) {
	if !transitionAllowed(cur, u.State) {
		return cur, false, nil
	}
	r := cur
	if r == nil {
		if u.Action == "" {
			return &storedRun{}, false, fmt.Errorf("new run %s needs the action name", u.Key)
		}
		r = &storedRun{ActionRun: ActionRun{Key: u.Key, Action: u.Action, Incident: u.Incident, Destructive: u.Destructive}}
	}
	if u.State == ActionStateStarted {
		t.start(r)
	} else {
		r.State = u.State
	}
	if u.Result != nil {
		r.Result = u.Result
	}
	switch {
	case u.Error != "":
		r.Error = u.Error
	case u.State == ActionStateSucceeded:
		r.Error = ""
	}
	return r, true, nil
}

// loadRuns reads the runs of keys in one query per chunk.
func (t *wtx) loadRuns(keys []ActionKey) (map[ActionKey]*storedRun, error) {
	out := make(map[ActionKey]*storedRun, len(keys))
	args := make([]any, 0, 3*len(keys))
	for _, k := range keys {
		args = append(args, k.AlertID, k.Playbook, k.Index)
	}
	// A join on a VALUES list probes the primary key per row; "(a, b, c)
	// IN (VALUES ...)" would scan the table.
	head := `SELECT a.` + strings.ReplaceAll(runColumns, ", ", ", a.") + ` FROM (VALUES `
	for len(args) > 0 {
		n := chunkRows(len(args) / 3)
		key := chunkKey{head, n}
		q, ok := t.w.chunkSQL[key]
		if !ok {
			q = head + "(?, ?, ?)" + strings.Repeat(", (?, ?, ?)", n-1) +
				`) v JOIN action_runs a ON a.alert_id = v.column1 AND a.playbook = v.column2 AND a.idx = v.column3`
			t.w.chunkSQL[key] = q
		}
		rows, err := t.query(q, args[:3*n]...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			r, err := t.w.s.scanRun(rows)
			if err != nil {
				rows.Close()
				t.dirty = true
				return nil, err
			}
			out[r.Key] = &r
		}
		if err := rows.Close(); err != nil {
			t.dirty = true
			return nil, err
		}
		args = args[3*n:]
	}
	return out, nil
}

// GetAction returns one run, or ErrNotFound.
func (s *Store) GetAction(ctx context.Context, key ActionKey) (ActionRun, error) {
	r, err := s.scanRun(s.rdb.QueryRowContext(ctx, `SELECT `+runColumns+` FROM action_runs WHERE alert_id = ? AND playbook = ? AND idx = ?`,
		key.AlertID, key.Playbook, key.Index))
	if err != nil {
		return ActionRun{}, fmt.Errorf("get action %s: %w", key, notFound(err))
	}
	return r.ActionRun, nil
}

// UnfinishedActions lists planned, held and started runs, oldest first.
func (s *Store) UnfinishedActions(ctx context.Context) ([]ActionRun, error) {
	return s.listRuns(ctx, "unfinished actions",
		`SELECT `+runColumns+` FROM action_runs WHERE state IN ('planned', 'started', 'held') ORDER BY created_at`)
}

// ActionsFor lists an alert's runs by playbook and index.
func (s *Store) ActionsFor(ctx context.Context, alertID string) ([]ActionRun, error) {
	return s.listRuns(ctx, "actions of alert "+alertID,
		`SELECT `+runColumns+` FROM action_runs WHERE alert_id = ? ORDER BY playbook, idx`, alertID)
}

func (s *Store) listRuns(ctx context.Context, what, query string, args ...any) ([]ActionRun, error) {
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	defer rows.Close()
	var out []ActionRun
	for rows.Next() {
		r, err := s.scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", what, err)
		}
		out = append(out, r.ActionRun)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	return out, nil
}
