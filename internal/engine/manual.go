package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/store"
)

// Manual is an action a human asked for: a Slack button, a slash command,
// `riposte act`.
type Manual struct {
	Action    string
	Container string // id, short id or name
	Incident  string // "" when not tied to one
	Params    actions.Params
	// Actor is who asked: "slack:U024BE7LH (jane)", "cli:root".
	Actor  string
	DryRun bool
	// Override, when not empty, is the operator's reason to run a
	// destructive action beyond the blast-radius budget; it is journaled
	// with the action.
	Override string
	// Report shows the step on the incident's notifications (Slack
	// message). Slack's own handler reports button presses itself.
	Report bool
}

// ManualPlaybook is the playbook name manual actions are journaled under.
const ManualPlaybook = "manual"

// ErrOverBudget: a hand-run destructive action would exceed the
// blast-radius budget and no override was given.
var ErrOverBudget = errors.New("blast-radius budget spent")

// Act runs one action by hand, through the same guardrails (dry run,
// protected containers in the responder, the blast-radius budget) and the
// same journal as playbook actions. A destructive action beyond the budget
// is refused (ErrOverBudget, journaled) unless m.Override gives a reason,
// which is journaled with it: nobody waits for an approval at a terminal,
// and a stolen credential cannot kill more than the budget unnoticed. It
// does not need Run.
func (e *Engine) Act(ctx context.Context, m Manual) (actions.Result, error) {
	spec, ok := e.deps.Catalog.Lookup(m.Action)
	if !ok {
		return actions.Result{}, fmt.Errorf("act: unknown action %q", m.Action)
	}
	for name, v := range m.Params {
		p, ok := spec.Param(name)
		if !ok {
			return actions.Result{}, fmt.Errorf("act %s: unknown parameter %q", m.Action, name)
		}
		if err := p.Check(v); err != nil {
			return actions.Result{}, fmt.Errorf("act %s: parameter %s: %w", m.Action, name, err)
		}
	}
	if spec.Container && m.Container == "" {
		return actions.Result{}, fmt.Errorf("act %s: no container given", m.Action)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return actions.Result{}, fmt.Errorf("act %s: %w", m.Action, err)
	}
	key := store.ActionKey{AlertID: "manual-" + hex.EncodeToString(id[:]), Playbook: ManualPlaybook}
	entry := func(t store.EntryType, detail map[string]any) store.Entry {
		if detail == nil {
			detail = map[string]any{}
		}
		detail["container"] = m.Container
		if m.Incident != "" {
			detail["incident"] = m.Incident
		}
		return store.Entry{Type: t, AlertID: key.AlertID, Playbook: ManualPlaybook, Action: m.Action, Actor: m.Actor, Detail: detail}
	}
	planned := entry(store.ActionPlanned, map[string]any{"with": map[string]any(m.Params)})
	if m.Override != "" {
		planned.Detail["blast_radius_override"] = m.Override
	}
	if m.DryRun || e.cfg.DryRun {
		_, _, err := e.deps.Store.RecordAction(ctx, store.ActionUpdate{Key: key, Action: m.Action, Incident: m.Incident, State: store.ActionStateSkipped},
			planned, entry(store.ActionSkippedDryRun, nil))
		if err != nil {
			return actions.Result{}, fmt.Errorf("act %s: %w", m.Action, err)
		}
		e.m.Actions.WithLabelValues(m.Action, string(actions.StatusDryRun)).Inc()
		return actions.Result{Note: "dry run: nothing executed"}, nil
	}
	cr := store.ClaimRequest{Key: key, Action: m.Action, Incident: m.Incident, Destructive: spec.Destructive}
	if spec.Destructive && e.cfg.BlastRadius.Max > 0 && m.Override == "" {
		cr.Budget = store.Budget{Max: e.cfg.BlastRadius.Max, Window: e.cfg.BlastRadius.Window}
	}
	claim, err := e.deps.Store.ClaimAction(ctx, cr, planned, entry(store.ActionStarted, nil))
	if err != nil {
		return actions.Result{}, fmt.Errorf("act %s: %w", m.Action, err)
	}
	if claim.Outcome == store.ClaimOverBudget {
		reason := fmt.Sprintf("more than %d destructive actions within %s", e.cfg.BlastRadius.Max, e.cfg.BlastRadius.Window)
		if _, err := e.deps.Store.Append(ctx, planned, entry(store.ActionRefusedBudget, map[string]any{"reason": reason})); err != nil {
			return actions.Result{}, fmt.Errorf("act %s: journal refusal: %w", m.Action, err)
		}
		e.m.Actions.WithLabelValues(m.Action, string(actions.StatusOverBudget)).Inc()
		return actions.Result{}, fmt.Errorf("act %s on %s: %w: %s (an operator may override with a journaled reason)", m.Action, m.Container, ErrOverBudget, reason)
	}
	if claim.Outcome != store.ClaimRun {
		return actions.Result{}, fmt.Errorf("act %s: %s", m.Action, claim.Outcome)
	}
	req := actions.Request{Action: m.Action, Params: m.Params, Incident: m.Incident, Container: m.Container, Actor: m.Actor, Key: key.String()}
	if req.Params == nil {
		req.Params = actions.Params{}
	}
	status, res, err := e.runClaimed(ctx, key, spec, req, entry)
	if m.Report && m.Incident != "" {
		e.reportSteps(ctx, m.Incident, key.String(), []actions.Step{{Action: m.Action, Status: status, Note: res.Note, Actor: m.Actor, Time: e.now()}}, 0)
	}
	if err != nil {
		return actions.Result{}, err
	}
	if status == actions.StatusProtected {
		return actions.Result{}, fmt.Errorf("act %s on %s: %w: %s", m.Action, m.Container, actions.ErrProtected, res.Note)
	}
	if spec.Releases && m.Incident != "" {
		e.release(ctx, m.Incident, m.Actor)
	}
	return res, nil
}

// ActionTimeout is how long one action may run (engine.action_timeout).
func (e *Engine) ActionTimeout() time.Duration { return e.cfg.ActionTimeout }

// release closes the incident and queues the actions that follow a release
// (Spec.OnRelease: a page is resolved) whose integration is configured.
func (e *Engine) release(ctx context.Context, incident, actor string) {
	changed, err := e.deps.Store.SetIncidentState(ctx, incident, store.IncidentStateReleased,
		store.Entry{Type: store.IncidentReleased, Actor: actor, Detail: map[string]any{"incident": incident}})
	if err != nil {
		e.log.Warn("release incident", "incident", incident, "err", err)
		return
	}
	if !changed {
		return
	}
	var msgs []store.Message
	for _, spec := range e.deps.Catalog.Specs() {
		if _, ok := e.deps.Runners[spec.Name]; !ok || !spec.OnRelease {
			continue
		}
		payload, err := encodeRequest(actions.Request{Action: spec.Name, Incident: incident, Actor: actor, Key: "release/" + incident})
		if err != nil {
			e.log.Error("encode release follow-up", "action", spec.Name, "incident", incident, "err", err)
			continue
		}
		msgs = append(msgs, store.Message{Key: "release/" + spec.Name + "/" + incident, Kind: spec.Name, Incident: incident, Payload: payload})
	}
	if len(msgs) == 0 {
		return
	}
	if _, err := e.deps.Store.Enqueue(ctx, msgs); err != nil {
		e.log.Error("queue release follow-ups", "incident", incident, "err", err)
		return
	}
	e.notifyOutbox()
}

// Acknowledge records that a human took the incident.
func (e *Engine) Acknowledge(ctx context.Context, incident, actor string) (actions.Result, error) {
	in, err := e.deps.Store.GetIncident(ctx, incident)
	if err != nil {
		return actions.Result{}, fmt.Errorf("acknowledge incident %s: %w", incident, err)
	}
	_, err = e.deps.Store.Append(ctx, store.Entry{Type: store.IncidentAcknowledged, Actor: actor,
		Detail: map[string]any{"incident": in.ID, "container": in.ContainerID, "rule": in.Rule}})
	if err != nil {
		return actions.Result{}, fmt.Errorf("acknowledge incident %s: %w", incident, err)
	}
	return actions.Result{Note: "acknowledged by " + actor}, nil
}
