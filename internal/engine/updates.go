package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/store"
)

// StepUpdater shows later steps of an incident on what was already sent
// about it (the Slack notifier updates its message and replies in its
// thread). An incident it sent nothing about is not an error: it returns
// an error wrapping actions.ErrNotFound, which the engine takes as done.
type StepUpdater interface {
	Update(ctx context.Context, incident string, steps ...actions.Step) error
}

// KindStepUpdate is the outbox kind of step reports.
const KindStepUpdate = "steps.update"

type stepsPayload struct {
	Incident string         `json:"incident"`
	Steps    []actions.Step `json:"steps"`
}

// reportSteps queues a report of steps for the incident's messages. key
// makes it idempotent across a re-run of the same plan.
func (e *Engine) reportSteps(ctx context.Context, incident, key string, steps []actions.Step) {
	if e.deps.Updates == nil || incident == "" || len(steps) == 0 {
		return
	}
	var shown []actions.Step
	for _, s := range steps {
		if !e.deps.Queued(s.Action) && s.Status != statusDone {
			shown = append(shown, s)
		}
	}
	if len(shown) == 0 {
		return
	}
	payload, err := json.Marshal(stepsPayload{Incident: incident, Steps: shown})
	if err != nil {
		e.log.Error("encode step report", "incident", incident, "err", err)
		return
	}
	if _, err := e.deps.Store.Enqueue(ctx, []store.Message{{Key: "steps/" + key, Kind: KindStepUpdate, Incident: incident, Payload: payload}}); err != nil {
		e.log.Error("queue step report", "incident", incident, "err", err)
		return
	}
	e.notifyOutbox()
}

func (e *Engine) sendSteps(ctx context.Context, it store.OutboxItem, entry *store.Entry) (actions.Result, error) {
	var p stepsPayload
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		return actions.Result{}, fmt.Errorf("decode step report: %w", err)
	}
	entry.Actor = "riposte"
	entry.Detail["incident"] = p.Incident
	if e.deps.Updates == nil {
		return actions.Result{Note: "no notifier to update"}, nil
	}
	if err := e.deps.Updates.Update(ctx, p.Incident, p.Steps...); err != nil {
		if isNotFound(err) {
			return actions.Result{Note: "no message about this incident"}, nil
		}
		return actions.Result{}, err
	}
	return actions.Result{Note: fmt.Sprintf("%d steps reported", len(p.Steps))}, nil
}
