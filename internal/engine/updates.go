package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

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
	// To names the integration to update; "" (messages queued before
	// updates were addressed) updates every one.
	To       string         `json:"to,omitempty"`
	Incident string         `json:"incident"`
	Steps    []actions.Step `json:"steps"`
}

// reportSteps queues a report of steps for the incident's messages. key
// makes it idempotent across a re-run of the same plan. With a throttle
// (every > 0, the notifications' it follows), the reports of an incident
// fold like its notifications: at most one per interval, the latest.
func (e *Engine) reportSteps(ctx context.Context, incident, key string, steps []actions.Step, every time.Duration) {
	if len(e.deps.Updates) == 0 || incident == "" || len(steps) == 0 {
		return
	}
	var shown []actions.Step
	for _, s := range steps {
		if !e.queued(s.Action) && s.Status != actions.StatusDone {
			shown = append(shown, s)
		}
	}
	if len(shown) == 0 {
		return
	}
	var msgs []store.Message
	for _, to := range sortedKeys(e.deps.Updates) {
		payload, err := json.Marshal(stepsPayload{To: to, Incident: incident, Steps: shown})
		if err != nil {
			e.log.Error("encode step report", "incident", incident, "err", err)
			return
		}
		m := store.Message{Key: "steps/" + to + "/" + key, Kind: KindStepUpdate, Incident: incident, Payload: payload}
		if every > 0 {
			m.Fold = &store.Fold{Key: throttleKey(KindStepUpdate+"/"+to, incident), Every: every}
		}
		msgs = append(msgs, m)
	}
	if _, err := e.deps.Store.Enqueue(ctx, msgs); err != nil {
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
	targets := sortedKeys(e.deps.Updates)
	if p.To != "" {
		if _, ok := e.deps.Updates[p.To]; !ok {
			return actions.Result{Note: p.To + " is no longer configured"}, nil
		}
		targets = []string{p.To}
	}
	if len(targets) == 0 {
		return actions.Result{Note: "no notifier to update"}, nil
	}
	entry.Detail["to"] = strings.Join(targets, ",")
	found := false
	for _, to := range targets {
		if err := e.deps.Updates[to].Update(ctx, p.Incident, p.Steps...); err != nil {
			if isNotFound(err) {
				continue
			}
			return actions.Result{}, fmt.Errorf("%s: %w", to, err)
		}
		found = true
	}
	if !found {
		return actions.Result{Note: "no message about this incident"}, nil
	}
	return actions.Result{Note: fmt.Sprintf("%d steps reported", len(p.Steps))}, nil
}

// sortedKeys returns a map's keys in order, so that messages and journal
// entries come out the same way every run.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
