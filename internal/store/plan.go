package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// PlanStep is one action of a playbook as a playbook.matched entry lists
// it in the entry's "plan" detail, when nothing of that playbook runs (dry
// run): the engine journals such a playbook as that one entry, with no
// action.planned, no action.skipped_dry_run and no action run per action.
// Decision is an actions.Status: skipped_dry_run, skipped (its `if` was
// false, or it needs a container the alert is not about) or failed (a
// template or `if` error; the playbook's later actions are not listed
// unless it says on_error: continue). Reason is why it was skipped
// ("silenced" when a silence muted it, named by Silence), or the error.
type PlanStep struct {
	Index    int            `json:"index"`
	Action   string         `json:"do"`
	With     map[string]any `json:"with,omitempty"`
	Decision string         `json:"decision"`
	Reason   string         `json:"reason,omitempty"`
	Silence  string         `json:"silence,omitempty"`
}

// PlanDetail is the key of a playbook.matched entry's detail that holds
// its []PlanStep.
const PlanDetail = "plan"

// PlannedAction is an action a playbook planned for an alert, as the
// journal records it.
type PlannedAction struct {
	AlertID  string `json:"alert_id"`
	Playbook string `json:"playbook"`
	PlanStep
	// Seq is the entry that planned it: the playbook.matched entry of a
	// dry-run playbook, or the action's action.planned entry.
	Seq int64 `json:"seq"`
}

// PlannedActions reads which actions were planned for alerts from their
// journal entries (Entries with Filter.AlertID, in seq order), in both of
// the forms the engine writes: a dry-run playbook's playbook.matched entry
// with a plan (one PlannedAction per PlanStep), and an action.planned
// entry per action of a playbook that runs (its decision is the type of
// the action's next entry without "action.", e.g. started, queued,
// held_for_approval, or "note"; "" when there is none yet). Entries of
// other types are read only for those decisions.
func PlannedActions(entries []Entry) ([]PlannedAction, error) {
	var out []PlannedAction
	type step struct{ alert, playbook, action string }
	undecided := map[step][]int{} // indexes into out, oldest first
	for _, e := range entries {
		k := step{e.AlertID, e.Playbook, e.Action}
		switch e.Type {
		case PlaybookMatched:
			raw, ok := e.Detail[PlanDetail]
			if !ok {
				continue
			}
			steps, err := decodePlan(raw)
			if err != nil {
				return nil, fmt.Errorf("read plan of entry %d: %w", e.Seq, err)
			}
			for _, s := range steps {
				out = append(out, PlannedAction{AlertID: e.AlertID, Playbook: e.Playbook, PlanStep: s, Seq: e.Seq})
			}
		case ActionPlanned:
			pa := PlannedAction{AlertID: e.AlertID, Playbook: e.Playbook, Seq: e.Seq, PlanStep: PlanStep{Action: e.Action}}
			if n, err := detailInt(e.Detail["index"]); err != nil {
				return nil, fmt.Errorf("read action.planned entry %d: index: %w", e.Seq, err)
			} else {
				pa.Index = n
			}
			if w, ok := e.Detail["with"].(map[string]any); ok {
				pa.With = w
			}
			undecided[k] = append(undecided[k], len(out))
			out = append(out, pa)
		default:
			q := undecided[k]
			if len(q) == 0 {
				continue
			}
			out[q[0]].Decision = strings.TrimPrefix(string(e.Type), "action.")
			for _, key := range []string{"reason", "error"} {
				if s, ok := e.Detail[key].(string); ok && out[q[0]].Reason == "" {
					out[q[0]].Reason = s
				}
			}
			if s, ok := e.Detail["silence"].(string); ok {
				out[q[0]].Silence = s
			}
			undecided[k] = q[1:]
		}
	}
	return out, nil
}

// decodePlan reads a plan detail, as written ([]PlanStep) or read back
// (decoded JSON).
func decodePlan(raw any) ([]PlanStep, error) {
	if steps, ok := raw.([]PlanStep); ok {
		return steps, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var steps []PlanStep
	if err := json.Unmarshal(b, &steps); err != nil {
		return nil, fmt.Errorf("want a list of {index, do, with, decision, reason}: %w", err)
	}
	return steps, nil
}

// detailInt reads a number of a detail, as written or read back.
func detailInt(v any) (int, error) {
	switch n := v.(type) {
	case nil:
		return 0, nil
	case int:
		return n, nil
	case float64:
		return int(n), nil
	case json.Number:
		i, err := strconv.Atoi(string(n))
		if err != nil {
			return 0, fmt.Errorf("want an integer, got %s", n)
		}
		return i, nil
	}
	return 0, fmt.Errorf("want an integer, got %T", v)
}
