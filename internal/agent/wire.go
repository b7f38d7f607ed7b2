package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
)

// The replicas' endpoints for agents (scope agent).
const (
	PathClaim     = "/v1/agent/claim"
	PathResult    = "/v1/agent/result"
	PathHeartbeat = "/v1/agent/heartbeat"
	// PathAgents lists the agents seen (GET, scope read-only).
	PathAgents = "/v1/agents"
)

// ClaimRequest is the body of POST /v1/agent/claim: the agent waits up to
// Wait for actions addressed to Node.
type ClaimRequest struct {
	Node  string `json:"node"`
	Agent string `json:"agent"`
	Max   int    `json:"max"`
	// WaitMS is how long the replica holds the request while nothing is
	// there (long poll), in milliseconds.
	WaitMS int `json:"wait_ms"`
}

// Work is one action a replica addressed to this node.
type Work struct {
	Key      string  `json:"key"`
	Attempts int     `json:"attempts"` // claims, this one included
	Request  Request `json:"request"`
}

// ClaimResponse is the answer to a claim.
type ClaimResponse struct {
	Work []Work `json:"work"`
	// LeaseMS is how long a claim holds without a heartbeat; the agent
	// sends heartbeats three times as often.
	LeaseMS int64 `json:"lease_ms,omitempty"`
}

// Request is actions.Request on the wire, with the time the replica's
// engine gives the action.
type Request struct {
	Action    string         `json:"action"`
	Params    actions.Params `json:"params,omitempty"`
	Alert     alert.Alert    `json:"alert"`
	Incident  string         `json:"incident,omitempty"`
	Container string         `json:"container,omitempty"`
	Actor     string         `json:"actor,omitempty"`
	Key       string         `json:"key"`
	Steps     []actions.Step `json:"steps,omitempty"`
	TimeoutMS int64          `json:"timeout_ms,omitempty"`
}

// FromAction is the wire form of an action request.
func FromAction(r actions.Request, timeout time.Duration) Request {
	return Request{Action: r.Action, Params: r.Params, Alert: r.Alert, Incident: r.Incident, Container: r.Container,
		Actor: r.Actor, Key: r.Key, Steps: r.Steps, TimeoutMS: timeout.Milliseconds()}
}

// ActionRequest is the request to hand a runner.
func (r Request) ActionRequest() actions.Request {
	return actions.Request{Action: r.Action, Params: r.Params, Alert: r.Alert, Incident: r.Incident, Container: r.Container,
		Actor: r.Actor, Key: r.Key, Steps: r.Steps}
}

// Status is what became of a node's action.
type Status string

// Statuses an agent reports.
const (
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	// StatusProtected: a guardrail on the node refused (protected container).
	StatusProtected Status = "protected"
)

// Outcome is the body of POST /v1/agent/result, and what the replica
// stores as the request's result.
type Outcome struct {
	Key       string         `json:"key"`
	Node      string         `json:"node"`
	Agent     string         `json:"agent"`
	Status    Status         `json:"status"`
	Result    actions.Result `json:"result"`
	Error     string         `json:"error,omitempty"`
	Retryable bool           `json:"retryable,omitempty"`
	// InDoubt: the action was claimed before by an agent that stopped
	// before answering; it is not run again.
	InDoubt bool `json:"in_doubt,omitempty"`
}

// Err is the outcome as the runner's error (nil when it succeeded).
func (o Outcome) Err() error {
	switch o.Status {
	case StatusSucceeded:
		return nil
	case StatusProtected:
		return fmt.Errorf("%w: %s", actions.ErrProtected, o.Error)
	}
	err := errors.New(o.Error)
	if o.Retryable {
		err = actions.Retryable(err)
	}
	return err
}

// Heartbeat is the body of POST /v1/agent/heartbeat.
type Heartbeat struct {
	Node    string   `json:"node"`
	Agent   string   `json:"agent"`
	Running []string `json:"running,omitempty"`
}

// ResultAnswer is the answer to a result: whether it was recorded, and the
// request's state (an agent keeps an outcome it could not record while the
// request is open).
type ResultAnswer struct {
	Applied bool   `json:"applied"`
	State   string `json:"state"`
}

// maxBody bounds a request body of the agent endpoints.
const maxBody = 4 << 20

// Decode reads one JSON object of type T strictly: no unknown field, no
// trailing data, at most 4 MiB.
func Decode[T any](r io.Reader) (T, error) {
	var v T
	b, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return v, fmt.Errorf("read body: %w", err)
	}
	if len(b) > maxBody {
		return v, fmt.Errorf("body larger than %d bytes", maxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("decode body: %w", err)
	}
	if dec.More() {
		return v, errors.New("decode body: data after the JSON object")
	}
	return v, nil
}
