package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// NodeActions holds the actions the replicas address to the agent of a
// node (cluster mode): a replica's engine, running a container action
// for an alert of node N, queues a request keyed by the action's
// idempotency key and waits for its outcome; N's agent claims it with a
// lease, runs it and records the outcome. It is not part of Backend: both
// backends implement it; a process that routes no action needs none.
//
// Once only: a request is created once per key (a replica that takes over
// an action in doubt finds the request of the first and waits for it); it
// is finished once (FinishNodeAction applies only while it is open, so an
// agent's late answer after a replica gave up, or a second answer, changes
// nothing). A claim whose lease ran out (its agent died) is claimed again
// with its attempts counted: the agent decides from that and its own
// ledger whether it may run it again.
type NodeActions interface {
	// RequestNodeAction queues r unless a request with its key exists, and
	// returns the request as stored (created false: an existing one).
	RequestNodeAction(ctx context.Context, r NodeRequest) (NodeAction, bool, error)
	// ClaimNodeActions leases to agent up to max open requests of node,
	// oldest first: pending ones and claimed ones whose lease ran out.
	// Each claim counts one attempt.
	ClaimNodeActions(ctx context.Context, node, agent string, max int, lease time.Duration) ([]NodeAction, error)
	// FinishNodeAction records the outcome of the request with key. It
	// applies only while the request is open, and with o.IfUnclaimed only
	// while it is pending or its lease ran out (a replica giving up on an
	// agent that is gone); applied false leaves the request as it was.
	FinishNodeAction(ctx context.Context, key string, o NodeOutcome) (NodeAction, bool, error)
	// GetNodeAction returns the request with key (ErrNotFound).
	GetNodeAction(ctx context.Context, key string) (NodeAction, error)
	// AgentSeen records a heartbeat of agent, the agent of node, and
	// extends to lease from now the leases it holds on the requests of
	// running.
	AgentSeen(ctx context.Context, node, agent string, running []string, lease time.Duration) error
	// Agents lists the agents seen, by node.
	Agents(ctx context.Context) ([]AgentInfo, error)
}

// NodeRequest is one action for the agent of Node.
type NodeRequest struct {
	Key    string // the action's idempotency key
	Node   string
	Action string
	// Payload is what the agent needs to run it (JSON).
	Payload []byte
}

// NodeActionState is where a node's request is.
type NodeActionState string

// Node request states.
const (
	NodeActionPending   NodeActionState = "pending"
	NodeActionClaimed   NodeActionState = "claimed"
	NodeActionSucceeded NodeActionState = "succeeded"
	NodeActionFailed    NodeActionState = "failed"
)

// Open reports whether the request waits for an outcome.
func (s NodeActionState) Open() bool { return s == NodeActionPending || s == NodeActionClaimed }

// NodeAction is a stored request.
type NodeAction struct {
	NodeRequest
	State      NodeActionState
	Agent      string // the agent that claimed it last
	Attempts   int    // claims
	LeaseUntil time.Time
	CreatedAt  time.Time
	FinishedAt time.Time
	// Result is the outcome the agent (or a replica) recorded (JSON).
	Result []byte
	Error  string
}

// NodeOutcome finishes a request.
type NodeOutcome struct {
	State  NodeActionState // succeeded or failed
	Result []byte          // JSON; nil for none
	Error  string
	// Agent, when set, must be the agent holding the claim.
	Agent string
	// IfUnclaimed: only while pending or while its lease ran out.
	IfUnclaimed bool
}

// AgentInfo is the last heartbeat of a node's agent.
type AgentInfo struct {
	Node   string    `json:"node"`
	Agent  string    `json:"agent"`
	SeenAt time.Time `json:"seen_at"`
}

// CheckNodeRequest checks a request before it is stored.
func CheckNodeRequest(r NodeRequest) error {
	if r.Key == "" || r.Node == "" || r.Action == "" {
		return errors.New("key, node and action are required")
	}
	if err := errors.Join(checkText(r.Key), checkText(r.Node), checkText(r.Action)); err != nil {
		return err
	}
	if !json.Valid(r.Payload) {
		return errors.New("payload is not valid JSON")
	}
	return nil
}

// CheckNodeOutcome checks an outcome before it is stored.
func CheckNodeOutcome(o NodeOutcome) error {
	if o.State != NodeActionSucceeded && o.State != NodeActionFailed {
		return fmt.Errorf("state: want succeeded or failed, got %q", o.State)
	}
	if len(o.Result) > 0 && !json.Valid(o.Result) {
		return errors.New("result is not valid JSON")
	}
	return errors.Join(checkText(o.Error), checkText(o.Agent))
}

const nodeActionColumns = `key, node, action, payload, state, agent, attempts, lease_until, created_at, finished_at, result, error`

// ScanNodeAction reads one row of NodeActionColumns; both backends share
// it.
func ScanNodeAction(scan func(dest ...any) error) (NodeAction, error) {
	var a NodeAction
	var payload, lease, created, finished, result string
	if err := scan(&a.Key, &a.Node, &a.Action, &payload, &a.State, &a.Agent, &a.Attempts, &lease, &created, &finished, &result, &a.Error); err != nil {
		return NodeAction{}, err
	}
	a.Payload = []byte(payload)
	if result != "" {
		a.Result = []byte(result)
	}
	var err error
	if a.CreatedAt, err = parseTime(created); err != nil {
		return NodeAction{}, err
	}
	if lease != "" {
		if a.LeaseUntil, err = parseTime(lease); err != nil {
			return NodeAction{}, err
		}
	}
	if finished != "" {
		if a.FinishedAt, err = parseTime(finished); err != nil {
			return NodeAction{}, err
		}
	}
	return a, nil
}

// NodeActionColumns are the columns ScanNodeAction reads, in order.
const NodeActionColumns = nodeActionColumns

var _ NodeActions = (*Store)(nil)

// RequestNodeAction queues a node's request; see NodeActions.
func (s *Store) RequestNodeAction(ctx context.Context, r NodeRequest) (NodeAction, bool, error) {
	if err := CheckNodeRequest(r); err != nil {
		return NodeAction{}, false, fmt.Errorf("request node action: %w", err)
	}
	var created bool
	err := s.write(ctx, 1, func(t *wtx) error {
		n, err := t.affected(`INSERT INTO node_actions (key, node, action, payload, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (key) DO NOTHING`, r.Key, r.Node, r.Action, string(r.Payload), FormatTime(t.now))
		created = n == 1
		return err
	})
	if err != nil {
		return NodeAction{}, false, fmt.Errorf("request node action %s: %w", r.Key, err)
	}
	a, err := s.GetNodeAction(ctx, r.Key)
	return a, created, err
}

// ClaimNodeActions leases a node's open requests; see NodeActions.
func (s *Store) ClaimNodeActions(ctx context.Context, node, agent string, max int, lease time.Duration) ([]NodeAction, error) {
	if max <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("claim node actions: lease must be positive, got %s", lease)
	}
	if err := errors.Join(checkText(node), checkText(agent)); err != nil {
		return nil, fmt.Errorf("claim node actions: %w", err)
	}
	var out []NodeAction
	err := s.write(ctx, max, func(t *wtx) error {
		out = out[:0]
		now := FormatTime(t.now)
		rows, err := t.query(`SELECT key FROM node_actions WHERE node = ? AND (state = 'pending' OR (state = 'claimed' AND lease_until < ?))
			ORDER BY created_at, key LIMIT ?`, node, now, max)
		if err != nil {
			return err
		}
		var keys []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				t.dirty = true
				return err
			}
			keys = append(keys, k)
		}
		if err := rows.Close(); err != nil {
			t.dirty = true
			return err
		}
		until := FormatTime(t.now.Add(lease))
		for _, k := range keys {
			a, err := ScanNodeAction(t.queryRow(`UPDATE node_actions SET state = 'claimed', agent = ?, attempts = attempts + 1, lease_until = ?
				WHERE key = ? RETURNING `+nodeActionColumns, agent, until, k).Scan)
			if err != nil {
				t.dirty = true
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim node actions of %s: %w", node, err)
	}
	return out, nil
}

// FinishNodeAction records a request's outcome; see NodeActions.
func (s *Store) FinishNodeAction(ctx context.Context, key string, o NodeOutcome) (NodeAction, bool, error) {
	if err := CheckNodeOutcome(o); err != nil {
		return NodeAction{}, false, fmt.Errorf("finish node action %s: %w", key, err)
	}
	var applied bool
	err := s.write(ctx, 1, func(t *wtx) error {
		now := FormatTime(t.now)
		q := `UPDATE node_actions SET state = ?, result = ?, error = ?, finished_at = ?, lease_until = '' WHERE key = ? AND state IN ('pending', 'claimed')`
		args := []any{string(o.State), string(o.Result), o.Error, now, key}
		if o.IfUnclaimed {
			q += ` AND (state = 'pending' OR lease_until < ?)`
			args = append(args, now)
		}
		if o.Agent != "" {
			q += ` AND agent = ?`
			args = append(args, o.Agent)
		}
		n, err := t.affected(q, args...)
		applied = n == 1
		return err
	})
	if err != nil {
		return NodeAction{}, false, fmt.Errorf("finish node action %s: %w", key, err)
	}
	a, err := s.GetNodeAction(ctx, key)
	return a, applied, err
}

// GetNodeAction reads a node's request; see NodeActions.
func (s *Store) GetNodeAction(ctx context.Context, key string) (NodeAction, error) {
	a, err := ScanNodeAction(s.rdb.QueryRowContext(ctx, `SELECT `+nodeActionColumns+` FROM node_actions WHERE key = ?`, key).Scan)
	if err != nil {
		return NodeAction{}, fmt.Errorf("get node action %s: %w", key, notFound(err))
	}
	return a, nil
}

// AgentSeen records an agent's heartbeat; see NodeActions.
func (s *Store) AgentSeen(ctx context.Context, node, agent string, running []string, lease time.Duration) error {
	if err := errors.Join(checkText(node), checkText(agent)); err != nil || node == "" {
		return fmt.Errorf("record agent heartbeat: node %q: %w", node, errors.Join(err, errors.New("a node name is required")))
	}
	err := s.write(ctx, 1+len(running), func(t *wtx) error {
		now := FormatTime(t.now)
		if _, err := t.exec(`INSERT INTO agents (node, agent, seen_at) VALUES (?, ?, ?)
			ON CONFLICT (node) DO UPDATE SET agent = excluded.agent, seen_at = excluded.seen_at`, node, agent, now); err != nil {
			return err
		}
		if len(running) == 0 || lease <= 0 {
			return nil
		}
		args := []any{FormatTime(t.now.Add(lease)), node, agent}
		for _, k := range running {
			args = append(args, k)
		}
		_, err := t.exec(`UPDATE node_actions SET lease_until = ? WHERE node = ? AND agent = ? AND state = 'claimed'
			AND key IN (?`+strings.Repeat(", ?", len(running)-1)+`)`, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("record agent heartbeat of %s: %w", node, err)
	}
	return nil
}

// Agents lists the agents seen; see NodeActions.
func (s *Store) Agents(ctx context.Context) ([]AgentInfo, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT node, agent, seen_at FROM agents ORDER BY node`)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []AgentInfo
	for rows.Next() {
		var a AgentInfo
		var seen string
		if err := rows.Scan(&a.Node, &a.Agent, &seen); err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		if a.SeenAt, err = parseTime(seen); err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}
