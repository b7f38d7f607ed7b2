// Package engine is riposte's response pipeline: it takes accepted alerts
// from the durable inbox, matches playbooks, applies the guardrails and runs
// the actions, journaling every step.
//
//	inbox ─> dispatcher ─(by container)─> workers ─> match ─> plan ─> guard ─> run ─> journal
//	                                                                    └─ notifications ─> outbox ─> delivery workers
//
// Per alert, for every matched playbook, every action in order:
//
//   - `if` false: journaled action.skipped, nothing runs;
//   - a render or `if` error: action.failed;
//   - muted by a silence (Deps.Silences; the alert is journaled
//     alert.silenced naming it): action.skipped, reason silenced — scope
//     notify mutes notifications only, scope all every action;
//   - dry run (global or playbook): the whole playbook is one
//     playbook.matched entry whose detail "plan" lists each action with its
//     parameters and decision (store.PlanStep), written with the alert's
//     finish (or its accept, below); no action runs, no entry per action
//     (store.PlannedActions reads both forms);
//   - gated (the playbook has an approval): held, action.held_for_approval,
//     waits for a human (Slack Approve/Deny) or its timeout (on_timeout);
//   - notifications (slack, pagerduty, email, webhook): queued durably in
//     the outbox in the same transaction that records them, and delivered
//     by separate workers with backoff, so a slow or down service never
//     delays containment; with a throttle interval (the notifier's config
//     or the action's throttle), an incident's later notifications are
//     held (journaled notification.throttled) and folded into one update
//     per interval that carries the latest alert and how many it stands
//     for (see throttle.go);
//   - journal.note: a note entry;
//   - everything else runs here: claimed (action.started, with the
//     blast-radius budget checked atomically for destructive actions; over
//     budget, the action is held for approval instead), run with a timeout,
//     recorded as action.succeeded, action.failed or, when a guardrail
//     refused, action.blocked_protected.
//
// A held action does not block the actions after it. A failed action stops
// the playbook's remaining actions unless it says on_error: continue.
//
// Idempotency: every action is keyed by (alert id, playbook, index) in the
// store, and each transition is recorded atomically with its journal entry.
// After a crash, claimed alerts come back; finished actions are not run
// again; an action that had started but never recorded its outcome is
// journaled action.in_doubt and run again (every responder action is safe
// to repeat: pausing a paused container succeeds with a note).
//
// Durability on the way to containment: every write is durable before it
// is answered (store doc, Durability) except two urgent ones
// (store.Urgent: committed at once, answered at COMMIT, durable with the
// fsync that follows), so that a kernel event reaches the freezer without
// waiting for the disk: the detector's alerts (Submit; a power cut loses
// the kernel's event anyway, and no sender waits for a 202: webhook
// alerts through Accept stay durable before their answer), and the claim
// of an action whose spec is Idempotent (container.pause,
// containerd.pause), with what is collected before it. A power cut in the
// millisecond before that fsync can lose the alert (with its event) or the
// claim; then the alert is processed again after the restart and the
// action runs once more, which only an idempotent action may, or nothing
// refers to it. The blast-radius budget and the protected-container check
// run as for any claim, and outcomes are ordinary writes.
//
// Intake: Accept (the webhook) and Submit (the detector) process an alert
// whose playbooks run nothing (none matches, or only playbooks in dry run)
// before it is stored: its entries (action.enforced, alert.silenced, the
// plans) go to the store with it and are written in the accept's own
// transaction, the alert stored done (store.AcceptSettled, settle.go). So
// such an alert is processed when Accept returns, processing keeps up with
// intake at any rate, and it costs one transaction instead of three (accept,
// claim, finish). Other alerts are stored already claimed, with their
// incidents, and handed straight to the workers while the engine has room
// for them (Config.Batch claimed alerts); otherwise, and for alerts accepted
// while the engine was not running, the dispatcher claims them from the
// inbox in batches.
//
// Alerts about the same container are handled in order by one worker;
// different containers in parallel. An *Engine is safe for concurrent use;
// Run returns when its context ends, after in-flight alerts are finished.
package engine
