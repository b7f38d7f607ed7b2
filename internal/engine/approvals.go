package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/store"
)

// ApprovalRequester asks humans to approve a held action (the Slack
// notifier posts Approve / Deny buttons). Requests go through the outbox.
type ApprovalRequester interface {
	RequestApproval(ctx context.Context, ap store.Approval, req actions.Request) error
}

// KindApprovalRequest is the outbox kind of approval requests.
const KindApprovalRequest = "approval.request"

// ErrDecided is returned when an approval was already decided.
var ErrDecided = errors.New("approval already decided")

// hold parks an action until a human approves it or the timeout passes.
func (e *Engine) hold(ctx context.Context, s *step, approvers []string, timeout time.Duration, proceed bool, reason string, steps []actions.Step) {
	req := s.request(steps)
	raw, err := encodeRequest(req)
	if err != nil {
		e.log.Error("encode held action", "key", s.key.String(), "err", err)
		return
	}
	onTimeout := "abort"
	if proceed {
		onTimeout = "proceed"
	}
	deadline := e.now().Add(timeout)
	detail := map[string]any{"approvers": approvers, "reason": reason, "on_timeout": onTimeout, "deadline": deadline.UTC().Format(time.RFC3339)}
	h := store.Hold{
		Key: s.key, Action: s.planned.Do, Incident: s.incident, Destructive: s.spec.Destructive, Deadline: deadline,
		Detail: map[string]any{"approvers": approvers, "reason": reason, "on_timeout": onTimeout, "request": json.RawMessage(raw)},
	}
	ap, created, err := e.deps.Store.HoldAction(ctx, h, append(s.pre, s.entry(store.ActionHeldForApproval, detail))...)
	if err != nil {
		if !errors.Is(err, store.ErrState) {
			e.log.Error("hold action", "key", s.key.String(), "err", err)
		}
		return
	}
	if created && len(e.deps.Approvals) > 0 {
		e.requestApproval(ctx, ap, req)
	}
}

func (e *Engine) requestApproval(ctx context.Context, ap store.Approval, req actions.Request) {
	var msgs []store.Message
	for _, to := range sortedKeys(e.deps.Approvals) {
		payload, err := json.Marshal(approvalPayload{To: to, Approval: ap, Request: req})
		if err != nil {
			e.log.Error("encode approval request", "approval", ap.ID, "err", err)
			return
		}
		msgs = append(msgs, store.Message{Key: "approval/" + to + "/" + ap.ID, Kind: KindApprovalRequest, Incident: ap.Incident, Payload: payload})
	}
	if _, err := e.deps.Store.Enqueue(ctx, msgs); err != nil {
		e.log.Error("queue approval request", "approval", ap.ID, "err", err)
		return
	}
	e.notifyOutbox()
}

type approvalPayload struct {
	// To names the integration that asks; "" (requests queued before they
	// were addressed) asks every one.
	To       string          `json:"to,omitempty"`
	Approval store.Approval  `json:"approval"`
	Request  actions.Request `json:"request"`
}

// Decide records a human's answer to an approval and, when granted, runs
// the action now. by names the human ("slack:U024BE7LH (jane)").
func (e *Engine) Decide(ctx context.Context, approvalID string, granted bool, by, note string) (actions.Result, error) {
	d := store.Decision{State: store.ApprovalStateDenied, By: by, Note: note}
	typ := store.ApprovalDenied
	if granted {
		d.State, typ = store.ApprovalStateGranted, store.ApprovalGranted
	}
	cur, err := e.deps.Store.GetApproval(ctx, approvalID)
	if err != nil {
		return actions.Result{}, fmt.Errorf("decide approval %s: %w", approvalID, err)
	}
	ent := store.Entry{Type: typ, AlertID: cur.Key.AlertID, Playbook: cur.Key.Playbook, Action: cur.Action, Actor: by,
		Detail: map[string]any{"approval": approvalID, "note": note}}
	ap, decided, err := e.deps.Store.DecideApproval(ctx, approvalID, d, ent)
	if err != nil {
		return actions.Result{}, fmt.Errorf("decide approval %s: %w", approvalID, err)
	}
	if !decided {
		return actions.Result{}, fmt.Errorf("decide approval %s: %w (%s by %s)", approvalID, ErrDecided, ap.State, ap.DecidedBy)
	}
	if !granted {
		return actions.Result{Note: "denied"}, nil
	}
	return e.runApproved(ctx, ap, by)
}

// runApproved runs an action whose approval was granted (or expired with
// on_timeout: proceed).
func (e *Engine) runApproved(ctx context.Context, ap store.Approval, by string) (actions.Result, error) {
	req, err := heldRequest(ap)
	if err != nil {
		return actions.Result{}, err
	}
	spec, _ := e.deps.Catalog.Lookup(req.Action)
	entry := func(t store.EntryType, detail map[string]any) store.Entry {
		if detail == nil {
			detail = map[string]any{}
		}
		detail["approval"] = ap.ID
		return store.Entry{Type: t, AlertID: ap.Key.AlertID, Playbook: ap.Key.Playbook, Action: req.Action, Actor: by, Detail: detail}
	}
	claim, err := e.deps.Store.ClaimAction(ctx, store.ClaimRequest{Key: ap.Key, Action: req.Action, Incident: ap.Incident, Destructive: spec.Destructive},
		entry(store.ActionStarted, nil))
	if err != nil {
		return actions.Result{}, fmt.Errorf("run approved %s: %w", req.Action, err)
	}
	if claim.Outcome != store.ClaimRun {
		return actions.Result{}, fmt.Errorf("run approved %s: %s", req.Action, claim.Outcome)
	}
	req.Actor = by
	status, res, err := e.runClaimed(ctx, ap.Key, spec, req, entry)
	e.reportSteps(ctx, ap.Incident, "approval/"+ap.ID, []actions.Step{{Action: req.Action, Status: status, Note: res.Note, Actor: by, Time: e.now()}}, 0)
	if err != nil {
		return actions.Result{}, err
	}
	if status == actions.StatusProtected {
		return actions.Result{}, fmt.Errorf("run approved %s: %w: %s", req.Action, actions.ErrProtected, res.Note)
	}
	return res, nil
}

func heldRequest(ap store.Approval) (actions.Request, error) {
	raw, err := json.Marshal(ap.Detail["request"])
	if err != nil {
		return actions.Request{}, fmt.Errorf("read held action of approval %s: %w", ap.ID, err)
	}
	req, err := decodeRequest(raw)
	if err != nil {
		return actions.Request{}, fmt.Errorf("read held action of approval %s: %w", ap.ID, err)
	}
	return req, nil
}

// approvalLoop expires approvals whose deadline passed.
func (e *Engine) approvalLoop(ctx, work context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pending, err := e.deps.Store.PendingApprovals(work)
		if err != nil {
			e.log.Error("list approvals", "err", err)
			continue
		}
		e.m.QueueDepth.WithLabelValues("approvals").Set(float64(len(pending)))
		now := e.now()
		for _, ap := range pending {
			if ap.Deadline.After(now) {
				break // earliest deadline first
			}
			proceed := ap.Detail["on_timeout"] == "proceed"
			ent := store.Entry{Type: store.ApprovalTimeout, AlertID: ap.Key.AlertID, Playbook: ap.Key.Playbook, Action: ap.Action,
				Actor: "riposte", Detail: map[string]any{"approval": ap.ID, "on_timeout": ap.Detail["on_timeout"]}}
			got, decided, err := e.deps.Store.DecideApproval(work, ap.ID,
				store.Decision{State: store.ApprovalStateExpired, Proceed: proceed, By: "riposte", Note: "timeout"}, ent)
			if err != nil || !decided {
				continue
			}
			if proceed {
				if _, err := e.runApproved(work, got, "riposte (approval timeout, on_timeout: proceed)"); err != nil {
					e.log.Warn("run action after approval timeout", "approval", ap.ID, "err", err)
				}
			}
		}
	}
}
