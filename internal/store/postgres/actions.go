package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/store"
)

// Every change to action runs and approvals journals, so it runs in a
// chain transaction: the journal head's lock serialises them across
// replicas, which is what makes ClaimAction's check-then-start and the
// blast-radius budget atomic.

const runColumns = `alert_id, playbook, idx, action, incident, state, destructive, result, error, attempts, owner, created_at, started_at, updated_at`

type storedRun struct {
	store.ActionRun
	owner string
}

func (s *Store) scanRun(sc pgx.Row) (storedRun, error) {
	var r storedRun
	var result, created, started, updated string
	if err := sc.Scan(&r.Key.AlertID, &r.Key.Playbook, &r.Key.Index, &r.Action, &r.Incident, &r.State,
		&r.Destructive, &result, &r.Error, &r.Attempts, &r.owner, &created, &started, &updated); err != nil {
		return r, err
	}
	if result != "" {
		r.Result = new(actions.Result)
		if err := json.Unmarshal([]byte(result), r.Result); err != nil {
			return r, fmt.Errorf("decode result of %s: %w", r.Key, err)
		}
	}
	var err error
	if r.CreatedAt, err = store.ParseTime(created); err != nil {
		return r, err
	}
	if r.StartedAt, err = store.ParseTime(started); err != nil {
		return r, err
	}
	if r.UpdatedAt, err = store.ParseTime(updated); err != nil {
		return r, err
	}
	// Started by another handle: a replica that died, or whose alert lease
	// ran out (the only ways another handle's run reaches this one).
	r.InDoubt = r.State == store.ActionStateStarted && r.owner != s.owner
	return r, nil
}

func (t *wtx) loadRun(k store.ActionKey) (*storedRun, error) {
	r, err := t.s.scanRun(t.queryRow(`SELECT `+runColumns+` FROM action_runs WHERE alert_id = $1 AND playbook = $2 AND idx = $3`,
		k.AlertID, k.Playbook, k.Index))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func (t *wtx) saveRun(r *storedRun) error {
	st, err := t.saveRunStatement(r)
	if err != nil {
		return err
	}
	_, err = t.exec(st.sql, st.args...)
	return err
}

// saveRunStatement is the statement saveRun executes, for a batch that
// sends it with other writes.
func (t *wtx) saveRunStatement(r *storedRun) (statement, error) {
	result := ""
	if r.Result != nil {
		b, err := json.Marshal(r.Result)
		if err != nil {
			return statement{}, fmt.Errorf("encode result of %s: %w", r.Key, err)
		}
		result = string(b)
	}
	r.UpdatedAt = t.now
	if r.CreatedAt.IsZero() {
		r.CreatedAt = t.now
	}
	return statement{`INSERT INTO action_runs (` + runColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (alert_id, playbook, idx) DO UPDATE SET action = excluded.action,
		incident = excluded.incident, state = excluded.state, destructive = excluded.destructive,
		result = excluded.result, error = excluded.error, attempts = excluded.attempts, owner = excluded.owner,
		started_at = excluded.started_at, updated_at = excluded.updated_at`,
		[]any{r.Key.AlertID, r.Key.Playbook, r.Key.Index, r.Action, r.Incident, string(r.State), r.Destructive,
			result, r.Error, r.Attempts, r.owner, store.FormatTime(r.CreatedAt), store.FormatTime(r.StartedAt), store.FormatTime(r.UpdatedAt)}}, nil
}

func (t *wtx) start(r *storedRun) {
	r.State = store.ActionStateStarted
	r.Attempts++
	r.owner = t.s.owner
	r.InDoubt = false
	if r.StartedAt.IsZero() {
		r.StartedAt = t.now
	}
}

// countStarted counts the destructive runs started since $1: the
// blast-radius budget's use.
const countStarted = `SELECT count(*) FROM action_runs WHERE destructive AND started_at >= $1`

// ClaimAction starts an action unless it already began; see
// store.ActionRuns.
func (s *Store) ClaimAction(ctx context.Context, c store.ClaimRequest, entries ...store.Entry) (store.Claim, error) {
	if err := errors.Join(store.CheckKey(c.Key), store.CheckText(c.Action), store.CheckText(c.Incident)); err != nil {
		return store.Claim{}, fmt.Errorf("claim action %s: %w", c.Key, err)
	}
	prep, err := store.PrepareEntries(entries)
	if err != nil {
		return store.Claim{}, fmt.Errorf("claim action %s: %w", c.Key, err)
	}
	var claim store.Claim
	// Four round trips: the begin; the head's lock with the reads (the
	// run, and the budget's count when the request is destructive); the
	// writes (the run, its entries, the head); the commit.
	err = s.write(ctx, false, func(t *wtx) error {
		claim = store.Claim{}
		budget := c.Budget.Max > 0
		cutoff := store.FormatTime(t.now.Add(-c.Budget.Window))
		var cur *storedRun
		started := -1 // destructive runs started within the window; -1: not counted
		var reads pgx.Batch
		reads.Queue(lockHead)
		reads.Queue(`SELECT `+runColumns+` FROM action_runs WHERE alert_id = $1 AND playbook = $2 AND idx = $3`,
			c.Key.AlertID, c.Key.Playbook, c.Key.Index)
		if budget && c.Destructive {
			reads.Queue(countStarted, cutoff)
		}
		err := func() error {
			br := t.tx.SendBatch(t.ctx, &reads)
			defer br.Close()
			if err := t.headLocked(br.QueryRow()); err != nil {
				return err
			}
			r, err := t.s.scanRun(br.QueryRow())
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return err
			default:
				cur = &r
			}
			if budget && c.Destructive {
				if err := br.QueryRow().Scan(&started); err != nil {
					return err
				}
			}
			return br.Close()
		}()
		if err != nil {
			return err
		}
		if cur != nil {
			claim.Run = cur.ActionRun
			switch {
			case cur.State.Final():
				claim.Outcome = store.ClaimDone
				return nil
			case cur.State == store.ActionStateHeld:
				claim.Outcome = store.ClaimHeld
				return nil
			case cur.State == store.ActionStateStarted && cur.InDoubt:
				claim.Outcome = store.ClaimInDoubt
				return nil
			case cur.State == store.ActionStateStarted:
				claim.Outcome = store.ClaimBusy
				return nil
			}
		}
		r := cur
		if r == nil {
			if c.Action == "" {
				return errors.New("new run needs the action name")
			}
			r = &storedRun{ActionRun: store.ActionRun{Key: c.Key, Action: c.Action, Incident: c.Incident}}
		}
		r.Destructive = r.Destructive || c.Destructive
		if r.Destructive && budget {
			if started < 0 { // destructive from an earlier request, not this one
				if err := t.queryRow(countStarted, cutoff).Scan(&started); err != nil {
					return err
				}
			}
			if started >= c.Budget.Max {
				claim.Outcome = store.ClaimOverBudget
				return nil
			}
		}
		t.start(r)
		save, err := t.saveRunStatement(r)
		if err != nil {
			return err
		}
		app, head, err := t.appendStatements(prep, nil)
		if err != nil {
			return err
		}
		var writes pgx.Batch
		for _, st := range append([]statement{save}, app...) {
			writes.Queue(st.sql, st.args...)
		}
		if err := t.tx.SendBatch(t.ctx, &writes).Close(); err != nil {
			return err
		}
		t.recorded(head)
		claim = store.Claim{Outcome: store.ClaimRun, Run: r.ActionRun}
		return nil
	})
	if err != nil {
		return store.Claim{}, fmt.Errorf("claim action %s: %w", c.Key, err)
	}
	return claim, nil
}

type preparedUpdate struct {
	store.ActionUpdate
	entries  []store.PreparedEntry
	payloads []string
}

func prepareUpdate(u store.ActionUpdate, entries []store.Entry) (preparedUpdate, error) {
	if !store.ValidActionState(u.State) {
		return preparedUpdate{}, fmt.Errorf("unknown state %q", u.State)
	}
	if err := errors.Join(store.CheckKey(u.Key), store.CheckText(u.Action), store.CheckText(u.Incident), store.CheckText(u.Error)); err != nil {
		return preparedUpdate{}, err
	}
	prep, err := store.PrepareEntries(append(append([]store.Entry(nil), u.Entries...), entries...))
	if err != nil {
		return preparedUpdate{}, err
	}
	payloads, err := prepareMessages(u.Enqueue)
	if err != nil {
		return preparedUpdate{}, err
	}
	return preparedUpdate{ActionUpdate: u, entries: prep, payloads: payloads}, nil
}

// RecordAction applies one transition; see store.ActionRuns.
func (s *Store) RecordAction(ctx context.Context, u store.ActionUpdate, entries ...store.Entry) (store.ActionRun, bool, error) {
	pu, err := prepareUpdate(u, entries)
	if err != nil {
		return store.ActionRun{}, false, fmt.Errorf("record action %s: %w", u.Key, err)
	}
	var run store.ActionRun
	var applied bool
	err = s.write(ctx, true, func(t *wtx) error {
		var err error
		run, applied, err = t.applyUpdate(&pu, nil)
		return err
	})
	if err != nil {
		return store.ActionRun{}, false, fmt.Errorf("record action %s: %w", u.Key, err)
	}
	return run, applied, nil
}

// applyUpdate applies one transition if allowed, with its messages and
// entries. runs, when not nil, caches the runs of a batch.
func (t *wtx) applyUpdate(u *preparedUpdate, runs map[store.ActionKey]*storedRun) (store.ActionRun, bool, error) {
	cur, cached := runs[u.Key]
	if !cached {
		var err error
		if cur, err = t.loadRun(u.Key); err != nil {
			return store.ActionRun{}, false, err
		}
	}
	var curRun *store.ActionRun
	if cur != nil {
		curRun = &cur.ActionRun
	}
	if !store.TransitionAllowed(curRun, u.State) {
		return cur.ActionRun, false, nil
	}
	r := cur
	if r == nil {
		if u.Action == "" {
			return store.ActionRun{}, false, fmt.Errorf("new run %s needs the action name", u.Key)
		}
		r = &storedRun{ActionRun: store.ActionRun{Key: u.Key, Action: u.Action, Incident: u.Incident, Destructive: u.Destructive}}
	}
	if u.State == store.ActionStateStarted {
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
	case u.State == store.ActionStateSucceeded:
		r.Error = ""
	}
	if err := t.saveRun(r); err != nil {
		return store.ActionRun{}, false, err
	}
	if runs != nil {
		runs[u.Key] = r
	}
	_, held, err := t.enqueue(u.Enqueue, u.payloads)
	if err != nil {
		return store.ActionRun{}, false, err
	}
	if err := t.append(slices.Concat(u.entries, held), nil); err != nil {
		return store.ActionRun{}, false, err
	}
	return r.ActionRun, true, nil
}

// Apply makes a Batch of changes in one transaction; see store.Batch.
func (s *Store) Apply(ctx context.Context, b store.Batch) (store.BatchResult, error) {
	prep, err := store.PrepareEntries(b.Entries)
	if err != nil {
		return store.BatchResult{}, fmt.Errorf("apply batch: %w", err)
	}
	updates := make([]preparedUpdate, len(b.Actions))
	for i, u := range b.Actions {
		if updates[i], err = prepareUpdate(u, nil); err != nil {
			return store.BatchResult{}, fmt.Errorf("apply batch: action %s: %w", u.Key, err)
		}
	}
	for _, id := range b.Finish {
		if err := store.CheckText(id); err != nil {
			return store.BatchResult{}, fmt.Errorf("apply batch: finish %q: %w", id, err)
		}
	}
	var res store.BatchResult
	err = s.write(ctx, true, func(t *wtx) error {
		res = store.BatchResult{Runs: make([]store.ActionRun, len(updates)), Applied: make([]bool, len(updates))}
		if err := t.append(prep, nil); err != nil {
			return err
		}
		runs := make(map[store.ActionKey]*storedRun, len(updates))
		for i := range updates {
			run, applied, err := t.applyUpdate(&updates[i], runs)
			if err != nil {
				return err
			}
			res.Runs[i], res.Applied[i] = run, applied
		}
		for _, id := range b.Finish {
			if err := t.finish(id, nil); err != nil {
				return fmt.Errorf("finish alert %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return store.BatchResult{}, fmt.Errorf("apply batch: %w", err)
	}
	return res, nil
}

// GetAction returns one run, or store.ErrNotFound.
func (s *Store) GetAction(ctx context.Context, key store.ActionKey) (store.ActionRun, error) {
	r, err := s.scanRun(s.pool.QueryRow(ctx, `SELECT `+runColumns+` FROM action_runs WHERE alert_id = $1 AND playbook = $2 AND idx = $3`,
		key.AlertID, key.Playbook, key.Index))
	if err != nil {
		return store.ActionRun{}, fmt.Errorf("get action %s: %w", key, notFound(err))
	}
	return r.ActionRun, nil
}

// UnfinishedActions lists planned, held and started runs, oldest first.
func (s *Store) UnfinishedActions(ctx context.Context) ([]store.ActionRun, error) {
	return s.listRuns(ctx, "unfinished actions",
		`SELECT `+runColumns+` FROM action_runs WHERE state IN ('planned', 'started', 'held') ORDER BY created_at`)
}

// ActionsFor lists an alert's runs by playbook and index.
func (s *Store) ActionsFor(ctx context.Context, alertID string) ([]store.ActionRun, error) {
	return s.listRuns(ctx, "actions of alert "+alertID,
		`SELECT `+runColumns+` FROM action_runs WHERE alert_id = $1 ORDER BY playbook, idx`, alertID)
}

func (s *Store) listRuns(ctx context.Context, what, query string, args ...any) ([]store.ActionRun, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	defer rows.Close()
	var out []store.ActionRun
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
