package assembly

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/engine"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/notifiers/slack"
)

// dispatcher runs what Slack users ask through the engine. The engine is
// set after the integrations are built (they need the dispatcher first).
type dispatcher struct{ a *App }

func (d dispatcher) Act(ctx context.Context, cmd slack.Command) (actions.Result, error) {
	if d.a.Engine == nil {
		return actions.Result{}, errors.New("riposte is starting")
	}
	if cmd.Action == slack.ActionAcknowledge {
		return d.a.Engine.Acknowledge(ctx, cmd.Incident, cmd.Actor.String())
	}
	if cmd.Action == slack.ActionMute {
		return d.a.MuteIncident(ctx, cmd.Incident, cmd.Actor.String(), slack.MuteFor)
	}
	return d.a.Engine.Act(ctx, engine.Manual{Action: cmd.Action, Container: cmd.Container, Incident: cmd.Incident,
		Actor: cmd.Actor.String(), Params: actions.Params{}})
}

func (d dispatcher) Approve(ctx context.Context, approvalID string, actor slack.Actor, approve bool) error {
	if d.a.Engine == nil {
		return errors.New("riposte is starting")
	}
	_, err := d.a.Engine.Decide(ctx, approvalID, approve, actor.String(), "via slack")
	return err
}

func (d dispatcher) Status(ctx context.Context) (string, error) {
	incs, err := d.a.Store.ListIncidents(ctx, store.IncidentFilter{State: store.IncidentStateOpen, Limit: 10})
	if err != nil {
		return "", err
	}
	pending, err := d.a.Store.PendingApprovals(ctx)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d open incidents (newest first, at most 10), %d approvals waiting", len(incs), len(pending))
	for _, in := range incs {
		fmt.Fprintf(&b, "\n• %s: %s in %s, %d alerts, last %s", in.ID, in.Rule, orDash(in.ContainerID), in.Alerts, in.LastSeen.UTC().Format("15:04:05Z"))
	}
	for _, ap := range pending {
		fmt.Fprintf(&b, "\n• approval %s: %s (%s) until %s", ap.ID, ap.Action, ap.Key.Playbook, ap.Deadline.UTC().Format("15:04:05Z"))
	}
	return b.String(), nil
}

func (d dispatcher) Denied(ctx context.Context, den slack.Denial) error {
	_, err := d.a.Store.Append(ctx, store.Entry{Type: store.ApprovalDenied, Action: den.Action, Actor: den.Actor.String(),
		Detail: map[string]any{"reason": den.Reason, "incident": den.Incident, "container": den.Container, "approval": den.ApprovalID, "denied": "not an approver"}})
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
