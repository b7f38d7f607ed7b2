package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/playbooks"
)

// process runs every matched playbook for a run of claimed alerts of one
// container, in order: their incidents in one store request, their
// recordings batched, and every alert finished with the last batch. It
// reports whether the alerts were finished: false when the store refused
// (they are still claimed by this engine; processing them again records
// nothing twice).
func (e *Engine) process(ctx context.Context, items []store.InboxItem) (finished bool) {
	start := e.now()
	// Incidents: found already for alerts the engine stored itself
	// (Submit), in one request for the others.
	var qs []store.IncidentQuery
	var missing []int
	for i := range items {
		if items[i].Incident == "" {
			a := &items[i].Alert
			qs = append(qs, store.IncidentQuery{ContainerID: a.Field("container.id"), Rule: a.Rule, At: a.Time, ReceivedAt: items[i].ReceivedAt})
			missing = append(missing, i)
		}
	}
	if len(qs) > 0 {
		refs, err := e.deps.Store.IncidentsFor(ctx, qs)
		if err != nil {
			e.log.Error("open incidents", "alerts", len(items), "err", err)
			return false
		}
		for k, i := range missing {
			items[i].Incident = refs[k].ID
		}
	}
	set := e.playbooks.Load()
	b := &batch{}
	finish := make([]string, len(items))
	for i := range items {
		it := &items[i]
		a, incident := &it.Alert, it.Incident
		finish[i] = a.ID
		e.streamAlert(ctx, a, incident)
		retry := it.Attempts > 1
		var before journaled
		if retry {
			var err error
			if before, err = e.journaledBefore(ctx, a.ID); err != nil {
				e.log.Error("read earlier plans", "alert", a.ID, "err", err)
				return false
			}
		}
		if ent, ok := enforcedEntry(a); ok && !before.enforced {
			b.entries = append(b.entries, ent)
		}
		sil := e.silenced(ctx, it, b, before.silenced)
		planned := before.planned
		for _, plan := range set.Match(a) {
			e.m.PlaybookMatches.WithLabelValues(plan.Playbook.Name).Inc()
			if e.dryRun(plan.Playbook) {
				if !planned[plan.Playbook.Name] {
					e.planDry(ctx, a, incident, plan, retry, sil, b)
				}
				continue
			}
			e.runPlan(ctx, a, incident, plan, retry, sil, b)
		}
	}
	if err := e.flush(ctx, b, finish...); err != nil {
		e.log.Error("finish alerts", "alerts", len(items), "err", err)
		return false
	}
	took := e.now().Sub(start).Seconds()
	for range items {
		e.m.ProcessSeconds.Observe(took)
	}
	return true
}

// dryRun reports whether a playbook only plans: the global dry run, or
// its own.
func (e *Engine) dryRun(pb *playbooks.Playbook) bool { return e.cfg.DryRun || pb.DryRun }

// batch collects the transitions of a run of alerts that need no round
// trip of their own (dry-run plans, skips, notes, queued notifications), so
// that they reach the store in one request: before any step that must come
// after them in the journal (an action that runs, a hold), and at the end
// with the alerts' finish. A run of dry-run alerts is then one write.
type batch struct {
	// entries (action.enforced, alert.silenced, dry-run playbooks'
	// playbook.matched entries) are appended before the updates' entries.
	entries []store.Entry
	updates []store.ActionUpdate
	queued  bool // some update puts messages in the outbox
}

func (b *batch) add(u store.ActionUpdate) {
	b.updates = append(b.updates, u)
	b.queued = b.queued || len(u.Enqueue) > 0
}

// flush applies what is collected, finishing the given alerts in the same
// transaction.
func (e *Engine) flush(ctx context.Context, b *batch, finish ...string) error {
	if len(b.entries) == 0 && len(b.updates) == 0 && len(finish) == 0 {
		return nil
	}
	_, err := e.deps.Store.Apply(ctx, store.Batch{Entries: b.entries, Actions: b.updates, Finish: finish})
	if err == nil && b.queued {
		e.notifyOutbox()
	}
	b.entries, b.updates, b.queued = nil, nil, false
	return err
}

// silenced returns the silence that mutes the alert, if any, and journals
// alert.silenced naming it unless an earlier attempt did (journaled). The silence in force when the alert was
// received applies (not when it is processed: a backlog does not escape a
// silence, and replay finds the same one). A store that cannot be read
// silences nothing: a silence must never hide an alert by accident.
func (e *Engine) silenced(ctx context.Context, it *store.InboxItem, b *batch, journaled bool) *store.Silence {
	at := it.ReceivedAt
	if at.IsZero() {
		at = e.now()
	}
	s := e.silenceAt(ctx, &it.Alert, at)
	if s == nil || journaled { // journaled by an earlier attempt at the alert
		return s
	}
	b.entries = append(b.entries, silencedEntry(it.Alert.ID, *s, it.Incident))
	return s
}

// silencedEntry is the alert.silenced entry naming s; incident is the
// incident id, or store.TheIncident for an alert settled at its accept.
func silencedEntry(alertID string, s store.Silence, incident any) store.Entry {
	return store.Entry{Type: store.AlertSilenced, AlertID: alertID, Actor: "riposte",
		Detail: map[string]any{"silence": s.ID, "scope": string(s.Scope), "incident": incident, "ends_at": store.FormatTime(s.EndsAt)}}
}

// journaled is what an earlier attempt at an alert wrote that a retry must
// not write again: the playbooks whose dry-run plan is journaled (a dry-run
// playbook has no action runs to make a repeat a no-op), and whether
// action.enforced and alert.silenced are.
type journaled struct {
	planned            map[string]bool
	enforced, silenced bool
}

// journaledBefore reads what earlier attempts at the alert journaled.
func (e *Engine) journaledBefore(ctx context.Context, alertID string) (journaled, error) {
	es, err := e.deps.Store.Entries(ctx, store.Filter{AlertID: alertID,
		Types: []store.EntryType{store.PlaybookMatched, store.ActionEnforced, store.AlertSilenced}})
	if err != nil {
		return journaled{}, err
	}
	j := journaled{planned: map[string]bool{}}
	for _, en := range es {
		switch en.Type {
		case store.ActionEnforced:
			j.enforced = true
		case store.AlertSilenced:
			j.silenced = true
		default:
			if _, ok := en.Detail[store.PlanDetail]; ok {
				j.planned[en.Playbook] = true
			}
		}
	}
	return j, nil
}

// planDry journals a playbook in dry run as one playbook.matched entry
// that lists each action with its parameters and what was decided
// (store.PlanStep): nothing runs, so nothing needs an action run or an
// entry of its own. The decisions are the ones runStep makes: an `if`
// that is false or a container action for a host alert is skipped, a
// render error fails (and stops the playbook unless on_error: continue),
// an action the alert's silence mutes is skipped (reason silenced), and
// everything else is skipped for the dry run.
func (e *Engine) planDry(ctx context.Context, a *alert.Alert, incident string, plan playbooks.Plan, retry bool, sil *store.Silence, b *batch) {
	// The alert's entries stay in order: what is collected of it goes first.
	for _, u := range b.updates {
		if u.Key.AlertID == a.ID {
			if err := e.flush(ctx, b); err != nil {
				e.log.Error("record actions", "alert", a.ID, "err", err)
			}
			break
		}
	}
	b.entries = append(b.entries, e.dryEntry(a, incident, plan, retry, sil))
}

// dryEntry is the playbook.matched entry of a playbook in dry run (see
// planDry); incident is the incident id, or store.TheIncident for an alert
// settled at its accept.
func (e *Engine) dryEntry(a *alert.Alert, incident any, plan playbooks.Plan, retry bool, sil *store.Silence) store.Entry {
	pb := plan.Playbook
	steps := make([]store.PlanStep, 0, len(plan.Actions))
	for _, pa := range plan.Actions {
		ps := store.PlanStep{Index: pa.Index, Action: pa.Do, With: pa.With, Decision: string(actions.StatusDryRun)}
		switch {
		case pa.Skip != "":
			ps.Decision, ps.Reason = string(actions.StatusSkipped), pa.Skip
		case pa.Err != nil:
			ps.Decision, ps.Reason = string(actions.StatusFailed), pa.Err.Error()
		case pa.Action.Spec.Container && !a.InContainer():
			ps.Decision, ps.Reason = string(actions.StatusSkipped), notAboutContainer
		case sil != nil && silence.Mutes(*sil, pa.Action.Spec):
			ps.Decision, ps.Reason, ps.Silence = string(actions.StatusSkipped), SkipSilenced, sil.ID
		}
		e.m.Actions.WithLabelValues(pa.Do, ps.Decision).Inc()
		steps = append(steps, ps)
		if pa.Err != nil && pa.Action.OnError != playbooks.ErrorContinue {
			break
		}
	}
	return store.Entry{
		Type: store.PlaybookMatched, AlertID: a.ID, Playbook: pb.Name, Actor: "playbook:" + pb.Name,
		Detail: map[string]any{
			"incident": incident, "order": pb.Order, "actions": len(pb.Actions), "dry_run": true, "retry": retry,
			store.PlanDetail: steps,
		},
	}
}

// step is the context of one planned action.
type step struct {
	alert    *alert.Alert
	incident string
	book     *playbooks.Playbook
	planned  playbooks.Planned
	key      store.ActionKey
	spec     actions.Spec
	actor    string
	silence  *store.Silence // the silence that mutes the alert, nil when none
	// pre are the entries written with the first transition of this
	// action: playbook.matched (first action only) and action.planned.
	pre []store.Entry
}

func (s *step) entry(t store.EntryType, detail map[string]any) store.Entry {
	return store.Entry{Type: t, AlertID: s.alert.ID, Playbook: s.book.Name, Action: s.planned.Do, Actor: s.actor, Detail: detail}
}

func (s *step) request(steps []actions.Step) actions.Request {
	req := actions.Request{
		Action: s.planned.Do, Params: s.planned.With, Alert: *s.alert, Incident: s.incident,
		Actor: s.actor, Key: s.key.String(), Steps: steps,
	}
	if s.alert.InContainer() {
		req.Container = s.alert.Field("container.id")
	}
	return req
}

// runPlan runs a playbook that is not in dry run, action by action.
func (e *Engine) runPlan(ctx context.Context, a *alert.Alert, incident string, plan playbooks.Plan, retry bool, sil *store.Silence, bt *batch) {
	b := plan.Playbook
	var steps []actions.Step
	notified := false
	var every time.Duration // the longest throttle of the notifications queued
	defer func() {
		// The message a notifier already sent about this incident shows
		// what happened after it.
		if notified {
			// The notification must be in the outbox before its update.
			if err := e.flush(ctx, bt); err != nil {
				e.log.Error("record actions", "alert", a.ID, "err", err)
			}
			e.reportSteps(ctx, incident, a.ID+"/"+b.Name, steps, every)
		}
	}()
	for i, pa := range plan.Actions {
		s := &step{
			alert: a, incident: incident, book: b, planned: pa, spec: pa.Action.Spec, actor: "playbook:" + b.Name, silence: sil,
			key: store.ActionKey{AlertID: a.ID, Playbook: b.Name, Index: pa.Index},
		}
		if i == 0 {
			s.pre = append(s.pre, s.entry(store.PlaybookMatched, map[string]any{
				"incident": incident, "order": b.Order, "actions": len(b.Actions), "dry_run": false, "retry": retry,
			}))
		}
		s.pre = append(s.pre, s.entry(store.ActionPlanned, map[string]any{"index": pa.Index, "with": map[string]any(pa.With), "incident": incident}))

		status, note, err := e.runStep(ctx, s, steps, bt)
		steps = append(steps, actions.Step{Action: pa.Do, Status: status, Note: note, Actor: s.actor, Time: e.now()})
		if pa.Action.Spec.Notification && status == actions.StatusQueued {
			notified = true
			if d, err := e.throttle(pa.Do, pa.With); err == nil && d > every {
				every = d
			}
		}
		if err != nil && pa.Action.OnError != playbooks.ErrorContinue {
			break
		}
	}
}

// SkipSilenced is the reason of an action.skipped entry for an action a
// silence muted.
const SkipSilenced = "silenced"

// notAboutContainer is why a container action is skipped for a host alert.
const notAboutContainer = "the alert is not about a container"

// runStep takes one action through the guardrails. err is non-nil only when
// the action failed (which stops the playbook unless on_error: continue).
func (e *Engine) runStep(ctx context.Context, s *step, steps []actions.Step, b *batch) (status actions.Status, note string, err error) {
	pa := s.planned
	record := func(state store.ActionState, res *actions.Result, errText string, entries ...store.Entry) {
		b.add(store.ActionUpdate{
			Key: s.key, Action: pa.Do, Incident: s.incident, Destructive: s.spec.Destructive,
			State: state, Result: res, Error: errText, Entries: append(s.pre, entries...),
		})
	}
	// Steps with a round trip of their own come after what is collected.
	flushFirst := func(ctx context.Context) error {
		if err := e.flush(ctx, b); err != nil {
			e.log.Error("record actions", "key", s.key.String(), "err", err)
			return err
		}
		return nil
	}
	count := func(status actions.Status) { e.m.Actions.WithLabelValues(pa.Do, string(status)).Inc() }

	switch {
	case pa.Skip != "":
		record(store.ActionStateSkipped, nil, "", s.entry(store.ActionSkipped, map[string]any{"reason": pa.Skip}))
		count(actions.StatusSkipped)
		return actions.StatusSkipped, pa.Skip, nil
	case pa.Err != nil:
		record(store.ActionStateFailed, nil, pa.Err.Error(), s.entry(store.ActionFailed, map[string]any{"error": pa.Err.Error()}))
		count(actions.StatusFailed)
		return actions.StatusFailed, pa.Err.Error(), pa.Err
	case s.spec.Container && !s.alert.InContainer():
		record(store.ActionStateSkipped, nil, "", s.entry(store.ActionSkipped, map[string]any{"reason": notAboutContainer}))
		count(actions.StatusSkipped)
		return actions.StatusSkipped, notAboutContainer, nil
	case s.silence != nil && silence.Mutes(*s.silence, s.spec):
		record(store.ActionStateSkipped, nil, "", s.entry(store.ActionSkipped, map[string]any{"reason": SkipSilenced, "silence": s.silence.ID}))
		count(actions.StatusSkipped)
		return actions.StatusSkipped, "silenced by " + s.silence.ID, nil
	case pa.Action.Gated && s.book.Approval != nil:
		if err := flushFirst(ctx); err != nil {
			return actions.StatusFailed, err.Error(), err
		}
		ap := s.book.Approval
		e.hold(ctx, s, ap.Approvers, ap.Timeout, ap.OnTimeout == playbooks.TimeoutProceed, "playbook approval", steps)
		count(actions.StatusHeld)
		return actions.StatusHeld, "waiting for approval", nil
	case s.spec.NoteParam != "":
		text := pa.With.String(s.spec.NoteParam, "")
		record(store.ActionStateSucceeded, &actions.Result{Note: text}, "", s.entry(store.Note, map[string]any{"text": text}))
		count(actions.StatusSucceeded)
		return actions.StatusSucceeded, text, nil
	case s.spec.Notification:
		return e.enqueue(s, steps, b)
	}
	if err := flushFirst(e.claimContext(ctx, s.spec)); err != nil {
		return actions.StatusFailed, err.Error(), err
	}
	return e.execute(ctx, s, steps)
}

// claimContext is the context of the writes right before an action runs
// (what is collected, then its claim): urgent (store.Urgent, answered at
// commit) for an idempotent action, so that containment never waits for
// an fsync; see execute.
func (e *Engine) claimContext(ctx context.Context, spec actions.Spec) context.Context {
	if spec.Idempotent {
		return store.Urgent(ctx)
	}
	return ctx
}

// enqueue records a notification as done-by-being-queued and puts it in the
// outbox, in one transaction (with the rest of the batch).
func (e *Engine) enqueue(s *step, steps []actions.Step, b *batch) (actions.Status, string, error) {
	payload, err := encodeRequest(s.request(steps))
	if err != nil {
		return actions.StatusFailed, err.Error(), fmt.Errorf("encode notification: %w", err)
	}
	msg := store.Message{Key: "notify/" + s.key.String(), Kind: s.planned.Do, Incident: s.incident, Payload: payload}
	every, err := e.throttle(s.planned.Do, s.planned.With)
	if err != nil {
		b.add(store.ActionUpdate{Key: s.key, Action: s.planned.Do, Incident: s.incident, State: store.ActionStateFailed, Error: err.Error(),
			Entries: append(s.pre, s.entry(store.ActionFailed, map[string]any{"error": err.Error()}))})
		e.m.Actions.WithLabelValues(s.planned.Do, string(actions.StatusFailed)).Inc()
		return actions.StatusFailed, err.Error(), err
	}
	if every > 0 && s.incident != "" {
		msg.Fold = &store.Fold{Key: throttleKey(s.planned.Do, s.incident), Every: every,
			Held: s.entry(store.NotificationThrottled, map[string]any{"incident": s.incident, "throttle": every.String()})}
	}
	b.add(store.ActionUpdate{
		Key: s.key, Action: s.planned.Do, Incident: s.incident, State: store.ActionStateSucceeded,
		Result: &actions.Result{Note: "queued for delivery"}, Enqueue: []store.Message{msg},
		Entries: append(s.pre, s.entry(store.ActionQueued, map[string]any{"outbox_key": msg.Key})),
	})
	e.m.Actions.WithLabelValues(s.planned.Do, string(actions.StatusQueued)).Inc()
	return actions.StatusQueued, "queued", nil
}

// execute claims the action (blast radius counted atomically), runs it and
// records the outcome. For an idempotent action the claim is urgent
// (claimContext): it is answered at its commit, before it is durable, and
// the action runs at once. A power cut before the fsync that follows can
// take the claim back; the alert is then processed again after the
// restart (or was lost with it) and the action runs once more, which is
// harmless for an idempotent action and why only those are claimed so.
// The budget and, in the responder, the protected-container check are the
// same either way. The outcome is an ordinary write: once it is recorded,
// the claim is durable too.
func (e *Engine) execute(ctx context.Context, s *step, steps []actions.Step) (actions.Status, string, error) {
	pa := s.planned
	req := s.request(steps)
	cr := store.ClaimRequest{Key: s.key, Action: pa.Do, Incident: s.incident, Destructive: s.spec.Destructive}
	if s.spec.Destructive && e.cfg.BlastRadius.Max > 0 {
		cr.Budget = store.Budget{Max: e.cfg.BlastRadius.Max, Window: e.cfg.BlastRadius.Window}
	}
	claim, err := e.deps.Store.ClaimAction(e.claimContext(ctx, s.spec), cr, append(s.pre, s.entry(store.ActionStarted, nil))...)
	if err != nil {
		e.log.Error("claim action", "key", s.key.String(), "err", err)
		return actions.StatusFailed, err.Error(), err
	}
	switch claim.Outcome {
	case store.ClaimRun:
	case store.ClaimInDoubt:
		// Started by a process that crashed before recording the outcome.
		// Every action is safe to repeat, so run it again, journaled.
		_, applied, err := e.deps.Store.RecordAction(ctx, store.ActionUpdate{Key: s.key, State: store.ActionStateStarted},
			s.entry(store.ActionInDoubt, map[string]any{"attempts": claim.Run.Attempts, "decision": "run again"}),
			s.entry(store.ActionStarted, nil))
		if err != nil || !applied {
			return actions.StatusDone, "taken over elsewhere", err
		}
	case store.ClaimOverBudget:
		e.hold(ctx, s, e.cfg.Approvers, e.cfg.ApprovalTimeout, false,
			fmt.Sprintf("blast radius: more than %d destructive actions within %s", e.cfg.BlastRadius.Max, e.cfg.BlastRadius.Window), steps)
		e.m.Actions.WithLabelValues(pa.Do, string(actions.StatusHeld)).Inc()
		return actions.StatusHeld, "held: blast-radius limit reached", nil
	case store.ClaimHeld:
		return actions.StatusHeld, "waiting for approval", nil
	default: // done or busy: someone else ran or runs it
		return actions.StatusDone, string(claim.Outcome), nil
	}
	status, res, err := e.runClaimed(ctx, s.key, s.spec, req, s.entry)
	return status, res.Note, err
}

// runClaimed runs a claimed action and records its outcome.
func (e *Engine) runClaimed(ctx context.Context, key store.ActionKey, spec actions.Spec, req actions.Request,
	entry func(store.EntryType, map[string]any) store.Entry) (actions.Status, actions.Result, error) {
	start := e.now()
	res, runErr := e.run(ctx, req)
	e.m.ActionSeconds.WithLabelValues(req.Action).Observe(e.now().Sub(start).Seconds())
	upd := store.ActionUpdate{Key: key, Action: req.Action, Incident: req.Incident, Destructive: spec.Destructive}
	var status actions.Status
	var ent store.Entry
	switch {
	case runErr == nil:
		upd.State, upd.Result, status = store.ActionStateSucceeded, &res, actions.StatusSucceeded
		ent = entry(store.ActionSucceeded, resultDetail(res, start, e.now()))
		ent.SHA256 = res.SHA256
		if spec.Destructive && !req.Alert.Time.IsZero() {
			e.m.ContainmentDelay.Observe(e.now().Sub(req.Alert.Time).Seconds())
		}
	case errors.Is(runErr, actions.ErrProtected):
		upd.State, upd.Error, status = store.ActionStateSkipped, runErr.Error(), actions.StatusProtected
		ent = entry(store.ActionBlockedProtected, map[string]any{"reason": runErr.Error()})
	default:
		upd.State, upd.Error, status = store.ActionStateFailed, runErr.Error(), actions.StatusFailed
		ent = entry(store.ActionFailed, map[string]any{"error": runErr.Error(), "retryable": actions.IsRetryable(runErr),
			"duration_ms": e.now().Sub(start).Milliseconds()})
	}
	if _, _, err := e.deps.Store.RecordAction(ctx, upd, ent); err != nil {
		e.log.Error("record action outcome", "key", key.String(), "err", err)
	}
	e.m.Actions.WithLabelValues(req.Action, string(status)).Inc()
	switch status {
	case actions.StatusFailed:
		e.log.Warn("action failed", "action", req.Action, "key", key.String(), "err", runErr)
		return status, actions.Result{Note: runErr.Error()}, runErr
	case actions.StatusProtected:
		return status, actions.Result{Note: runErr.Error()}, nil
	}
	return status, res, nil
}

func (e *Engine) run(ctx context.Context, req actions.Request) (actions.Result, error) {
	r, ok := e.deps.Runners[req.Action]
	if !ok {
		return actions.Result{}, fmt.Errorf("run %s: no integration configured for this action", req.Action)
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ActionTimeout)
	defer cancel()
	return r.Run(ctx, req)
}

func resultDetail(res actions.Result, start, end time.Time) map[string]any {
	d := map[string]any{"duration_ms": end.Sub(start).Milliseconds()}
	if res.Note != "" {
		d["note"] = res.Note
	}
	if len(res.Evidence) > 0 {
		d["evidence"] = res.Evidence
	}
	for k, v := range res.Detail {
		if _, taken := d[k]; !taken {
			d[k] = v
		}
	}
	return d
}
