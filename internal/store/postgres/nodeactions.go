package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
)

var _ store.NodeActions = (*Store)(nil)

// RequestNodeAction queues a node's request; see store.NodeActions.
func (s *Store) RequestNodeAction(ctx context.Context, r store.NodeRequest) (store.NodeAction, bool, error) {
	if err := store.CheckNodeRequest(r); err != nil {
		return store.NodeAction{}, false, fmt.Errorf("request node action: %w", err)
	}
	var created bool
	err := s.write(ctx, false, func(t *wtx) error {
		tag, err := t.tx.Exec(t.ctx, `INSERT INTO node_actions (key, node, action, payload, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (key) DO NOTHING`, r.Key, r.Node, r.Action, string(r.Payload), store.FormatTime(t.now))
		created = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return store.NodeAction{}, false, fmt.Errorf("request node action %s: %w", r.Key, err)
	}
	a, err := s.GetNodeAction(ctx, r.Key)
	return a, created, err
}

// ClaimNodeActions leases a node's open requests with FOR UPDATE SKIP
// LOCKED: agents of one node on several connections never take one
// request twice; see store.NodeActions.
func (s *Store) ClaimNodeActions(ctx context.Context, node, agent string, max int, lease time.Duration) ([]store.NodeAction, error) {
	if max <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim node actions: lease must be positive, got %s", lease)
	}
	if err := errors.Join(store.CheckText(node), store.CheckText(agent)); err != nil {
		return nil, fmt.Errorf("claim node actions: %w", err)
	}
	var out []store.NodeAction
	err := s.write(ctx, false, func(t *wtx) error {
		out = out[:0]
		now := store.FormatTime(t.now)
		rows, err := t.tx.Query(t.ctx, `WITH c AS (
			SELECT key FROM node_actions WHERE node = $1 AND (state = 'pending' OR (state = 'claimed' AND lease_until < $2))
			ORDER BY created_at, key LIMIT $3 FOR UPDATE SKIP LOCKED)
			UPDATE node_actions n SET state = 'claimed', agent = $4, attempts = n.attempts + 1, lease_until = $5
			FROM c WHERE n.key = c.key
			RETURNING `+prefixed("n.", store.NodeActionColumns),
			node, now, max, agent, store.FormatTime(t.now.Add(lease)))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, err := store.ScanNodeAction(rows.Scan)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim node actions of %s: %w", node, err)
	}
	return out, nil
}

// FinishNodeAction records a request's outcome; see store.NodeActions.
func (s *Store) FinishNodeAction(ctx context.Context, key string, o store.NodeOutcome) (store.NodeAction, bool, error) {
	if err := store.CheckNodeOutcome(o); err != nil {
		return store.NodeAction{}, false, fmt.Errorf("finish node action %s: %w", key, err)
	}
	var applied bool
	err := s.write(ctx, false, func(t *wtx) error {
		now := store.FormatTime(t.now)
		q := `UPDATE node_actions SET state = $1, result = $2, error = $3, finished_at = $4, lease_until = ''
			WHERE key = $5 AND state IN ('pending', 'claimed')`
		args := []any{string(o.State), string(o.Result), o.Error, now, key}
		if o.IfUnclaimed {
			q += ` AND (state = 'pending' OR lease_until < $4)`
		}
		if o.Agent != "" {
			args = append(args, o.Agent)
			q += fmt.Sprintf(` AND agent = $%d`, len(args))
		}
		tag, err := t.tx.Exec(t.ctx, q, args...)
		applied = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return store.NodeAction{}, false, fmt.Errorf("finish node action %s: %w", key, err)
	}
	a, err := s.GetNodeAction(ctx, key)
	return a, applied, err
}

// GetNodeAction reads a node's request; see store.NodeActions.
func (s *Store) GetNodeAction(ctx context.Context, key string) (store.NodeAction, error) {
	a, err := store.ScanNodeAction(s.pool.QueryRow(ctx, `SELECT `+store.NodeActionColumns+` FROM node_actions WHERE key = $1`, key).Scan)
	if err != nil {
		return store.NodeAction{}, fmt.Errorf("get node action %s: %w", key, notFound(err))
	}
	return a, nil
}

// AgentSeen records an agent's heartbeat; see store.NodeActions.
func (s *Store) AgentSeen(ctx context.Context, node, agent string, running []string, lease time.Duration) error {
	if err := errors.Join(store.CheckText(node), store.CheckText(agent)); err != nil || node == "" {
		return fmt.Errorf("record agent heartbeat: node %q: %w", node, errors.Join(err, errors.New("a node name is required")))
	}
	err := s.write(ctx, false, func(t *wtx) error {
		now := store.FormatTime(t.now)
		if _, err := t.tx.Exec(t.ctx, `INSERT INTO agents (node, agent, seen_at) VALUES ($1, $2, $3)
			ON CONFLICT (node) DO UPDATE SET agent = excluded.agent, seen_at = excluded.seen_at`, node, agent, now); err != nil {
			return err
		}
		if len(running) == 0 || lease <= 0 {
			return nil
		}
		_, err := t.tx.Exec(t.ctx, `UPDATE node_actions SET lease_until = $1 WHERE node = $2 AND agent = $3 AND state = 'claimed' AND key = ANY($4)`,
			store.FormatTime(t.now.Add(lease)), node, agent, running)
		return err
	})
	if err != nil {
		return fmt.Errorf("record agent heartbeat of %s: %w", node, err)
	}
	return nil
}

// Agents lists the agents seen; see store.NodeActions.
func (s *Store) Agents(ctx context.Context) ([]store.AgentInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT node, agent, seen_at FROM agents ORDER BY node`)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []store.AgentInfo
	for rows.Next() {
		var a store.AgentInfo
		var seen string
		if err := rows.Scan(&a.Node, &a.Agent, &seen); err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		if a.SeenAt, err = store.ParseTime(seen); err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}

// prefixed qualifies each of a comma-separated column list with p.
func prefixed(p, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}
