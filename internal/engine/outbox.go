package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/store"
)

// deliverLoop leases due outbox messages and delivers them until ctx ends.
func (e *Engine) deliverLoop(ctx, work context.Context) {
	poll := time.NewTicker(e.cfg.Poll)
	defer poll.Stop()
	for {
		items, err := e.deps.Store.ClaimOutbox(work, 8, e.cfg.Outbox.Lease)
		if err != nil {
			e.log.Error("claim outbox", "err", err)
		}
		for _, it := range items {
			e.deliver(work, it)
		}
		if len(items) > 0 {
			select {
			case <-ctx.Done():
				return
			default:
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wakeOutbox:
		case <-poll.C:
		}
	}
}

// retryAfter is implemented by notifier errors that carry the far end's
// Retry-After.
type retryAfter interface{ RetryAfter() time.Duration }

// deliver sends one message and records the outcome: delivered (journaled
// notification.sent), retry later with backoff, or dead after a permanent
// error or too many attempts (journaled notification.failed).
func (e *Engine) deliver(ctx context.Context, it store.OutboxItem) {
	if e.deps.Stream != nil && it.Kind == e.deps.Stream.Kind() {
		e.deliverStream(ctx, it)
		return
	}
	entry := store.Entry{Action: it.Kind, Detail: map[string]any{"outbox_id": it.ID, "attempts": it.Attempts}}
	res, err := e.send(ctx, it, &entry)
	if err == nil {
		if res.Note != "" {
			entry.Detail["note"] = res.Note
		}
		for k, v := range res.Detail {
			entry.Detail[k] = v
		}
	}
	e.settle(ctx, it, err, entry, journalSent)
}

// Which delivery outcomes are journaled besides a message's death (which
// always is).
const (
	journalSent  = 1 << iota // a delivery (notification.sent)
	journalRetry             // a failed attempt that will be retried
)

// settle records a delivery's outcome in the outbox: delivered, retry later
// with backoff (or the far end's Retry-After), or dead after a permanent
// error or too many attempts (journaled notification.failed). entry is the
// journal entry to write, its Type set here; journal says when besides
// death.
func (e *Engine) settle(ctx context.Context, it store.OutboxItem, err error, entry store.Entry, journal int) {
	if err == nil {
		var entries []store.Entry
		if journal&journalSent != 0 {
			entry.Type = store.NotificationSent
			entries = append(entries, entry)
		}
		if aerr := e.deps.Store.AckOutbox(ctx, it.ID, entries...); aerr != nil {
			e.log.Error("ack outbox", "id", it.ID, "err", aerr)
		}
		e.m.NotifyAttempts.WithLabelValues(it.Kind, "delivered").Inc()
		return
	}
	if actions.IsRetryable(err) && it.Attempts < e.cfg.Outbox.MaxAttempts {
		delay := store.Backoff(it.Attempts, e.cfg.Outbox.BaseBackoff, e.cfg.Outbox.MaxBackoff)
		var ra retryAfter
		if errors.As(err, &ra) && ra.RetryAfter() > delay {
			delay = ra.RetryAfter()
		}
		var entries []store.Entry
		if journal&journalRetry != 0 {
			entry.Type = store.NotificationFailed
			entry.Detail["error"], entry.Detail["retry_in_ms"] = err.Error(), delay.Milliseconds()
			entries = append(entries, entry)
		}
		if ferr := e.deps.Store.FailOutbox(ctx, it.ID, e.now().Add(delay), err.Error(), entries...); ferr != nil {
			e.log.Error("reschedule outbox", "id", it.ID, "err", ferr)
		}
		e.m.NotifyAttempts.WithLabelValues(it.Kind, "retry").Inc()
		e.log.Warn("delivery failed, will retry", "kind", it.Kind, "target", it.Target, "attempt", it.Attempts, "in", delay, "err", err)
		return
	}
	entry.Type = store.NotificationFailed
	entry.Detail["error"] = err.Error()
	if ferr := e.deps.Store.FailOutbox(ctx, it.ID, time.Time{}, err.Error(), entry); ferr != nil {
		e.log.Error("fail outbox", "id", it.ID, "err", ferr)
	}
	e.m.NotifyAttempts.WithLabelValues(it.Kind, "dead").Inc()
	e.log.Error("delivery failed for good", "kind", it.Kind, "target", it.Target, "attempts", it.Attempts, "err", err)
}

func (e *Engine) send(ctx context.Context, it store.OutboxItem, entry *store.Entry) (actions.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ActionTimeout)
	defer cancel()
	if it.Kind == KindStepUpdate {
		return e.sendSteps(ctx, it, entry)
	}
	if it.Kind == KindApprovalRequest {
		var p approvalPayload
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return actions.Result{}, fmt.Errorf("decode approval request: %w", err)
		}
		entry.AlertID, entry.Playbook, entry.Actor = p.Approval.Key.AlertID, p.Approval.Key.Playbook, "riposte"
		entry.Detail["approval"] = p.Approval.ID
		targets := sortedKeys(e.deps.Approvals)
		if p.To != "" {
			targets = []string{p.To}
		}
		if len(targets) == 0 {
			return actions.Result{}, errors.New("request approval: no approval notifier configured")
		}
		entry.Detail["to"] = strings.Join(targets, ",")
		for _, to := range targets {
			r, ok := e.deps.Approvals[to]
			if !ok {
				return actions.Result{}, fmt.Errorf("request approval: %s is no longer configured", to)
			}
			if err := r.RequestApproval(ctx, p.Approval, p.Request); err != nil {
				return actions.Result{}, fmt.Errorf("%s: %w", to, err)
			}
		}
		return actions.Result{Note: "approval requested"}, nil
	}
	req, err := decodeRequest(it.Payload)
	if err != nil {
		return actions.Result{}, fmt.Errorf("decode %s message: %w", it.Kind, err)
	}
	entry.AlertID, entry.Actor = req.Alert.ID, req.Actor
	if k, ok := parseKey(req.Key); ok {
		entry.Playbook = k.Playbook
	}
	if req.Fold = e.foldOf(it, req); req.Fold != nil {
		entry.Detail["alerts"], entry.Detail["incident"] = req.Fold.Alerts, req.Incident
	}
	return e.run(ctx, req)
}

// parseKey reads an ActionKey back from its String form.
func parseKey(s string) (store.ActionKey, bool) {
	var k store.ActionKey
	last := -1
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			last = i
			break
		}
	}
	if last < 0 {
		return k, false
	}
	first := -1
	for i := 0; i < last; i++ {
		if s[i] == '/' {
			first = i
			break
		}
	}
	if first < 0 {
		return k, false
	}
	if _, err := fmt.Sscanf(s[last+1:], "%d", &k.Index); err != nil {
		return k, false
	}
	k.AlertID, k.Playbook = s[:first], s[first+1:last]
	return k, true
}

func isNotFound(err error) bool { return errors.Is(err, actions.ErrNotFound) }

// deliverStream sends one stream record. Successful deliveries are not
// journaled (that would double the journal) unless the output says they are
// worth it (program runs); failures that end a message are.
func (e *Engine) deliverStream(ctx context.Context, it store.OutboxItem) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ActionTimeout)
	defer cancel()
	detail, err := e.deps.Stream.Deliver(ctx, it.Message)
	if detail == nil {
		detail = map[string]any{}
	}
	detail["outbox_id"], detail["attempts"] = it.ID, it.Attempts
	entry := store.Entry{Action: it.Kind, Actor: "riposte", Detail: detail}
	journal := 0
	if e.deps.Stream.Journal(detail) { // every program run is journaled
		journal = journalSent | journalRetry
	}
	e.settle(ctx, it, err, entry, journal)
}
