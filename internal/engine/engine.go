package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/metrics"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/playbooks"
)

// Store is what the engine needs of the store: the inbox it claims from,
// the journal, incidents, action runs, approvals, the outbox, and a little
// key/value state (the stream cursor). Maintenance and closing stay with
// the store's owner.
type Store interface {
	store.Inbox
	store.Journal
	store.Incidents
	store.ActionRuns
	store.Approvals
	store.Outbox
	store.KV
}

// Deps are the engine's collaborators. Store, Playbooks and Catalog are
// required.
type Deps struct {
	Store     Store
	Playbooks *playbooks.Set
	Catalog   *actions.Catalog
	// Runners implement actions, by action name. An action a playbook names
	// without a runner fails with a clear error when it runs.
	Runners map[string]actions.Runner
	// Approvals ask humans for approvals (Slack), by integration name; each
	// gets every request through the outbox. Empty: approvals are only
	// decided through Decide or time out.
	Approvals map[string]ApprovalRequester
	// Updates report later steps of an incident on the messages already
	// sent about it (Slack's message is updated), by integration name.
	Updates map[string]StepUpdater
	// Throttle is the default throttle interval of notification actions,
	// by action name (from their notifiers' configs); an action's
	// `throttle` parameter overrides it. Absent or 0: every alert is sent.
	Throttle map[string]time.Duration
	// Stream sends alerts and journal entries to syslog, files and
	// programs; nil: none configured.
	Stream Streamer
	// Silences say which silence mutes an alert (internal/silence's
	// Cache); nil: nothing is ever silenced.
	Silences Silencer
	Logger   *slog.Logger
	Metrics  *metrics.Metrics
	Now      func() time.Time
}

// Silencer finds the silence in force at time at that matches an alert.
type Silencer interface {
	Match(ctx context.Context, a *alert.Alert, at time.Time) (store.Silence, bool, error)
}

// Engine runs playbooks on accepted alerts.
type Engine struct {
	cfg       Config
	deps      Deps
	log       *slog.Logger
	m         *metrics.Metrics
	now       func() time.Time
	playbooks atomic.Pointer[playbooks.Set]

	wake       chan struct{} // new alerts in the inbox
	wakeOutbox chan struct{} // new messages in the outbox
	running    atomic.Bool
	work       atomic.Pointer[context.Context] // Run's context for in-flight work

	// in-flight alerts, by id, so that a re-claim after a lease expiry
	// never hands the same alert to two workers.
	mu       sync.Mutex
	inflight map[string]bool
	queues   map[string][]store.InboxItem // per container, in order
	closing  bool                         // Run is returning: queue nothing more
	sem      chan struct{}                // bounds concurrent workers
	wg       sync.WaitGroup
}

// New builds an engine.
func New(cfg Config, deps Deps) (*Engine, error) {
	if deps.Store == nil || deps.Playbooks == nil || deps.Catalog == nil {
		return nil, errors.New("new engine: store, playbooks and catalog are required")
	}
	cfg = cfg.withDefaults()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Metrics == nil {
		deps.Metrics = metrics.New(nil)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	e := &Engine{
		cfg: cfg, deps: deps, log: deps.Logger, m: deps.Metrics, now: deps.Now,
		wake: make(chan struct{}, 1), wakeOutbox: make(chan struct{}, 1),
		inflight: map[string]bool{}, queues: map[string][]store.InboxItem{},
		sem: make(chan struct{}, cfg.Workers),
	}
	e.playbooks.Store(deps.Playbooks)
	if deps.Stream != nil {
		if err := e.initStreamCursor(context.Background()); err != nil {
			return nil, fmt.Errorf("new engine: stream cursor: %w", err)
		}
	}
	return e, nil
}

// SetPlaybooks swaps the playbook set; alerts already in a worker finish
// with the set they started with.
func (e *Engine) SetPlaybooks(s *playbooks.Set) { e.playbooks.Store(s) }

// Notify wakes the engine: alerts are waiting in the inbox.
func (e *Engine) Notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) notifyOutbox() {
	select {
	case e.wakeOutbox <- struct{}{}:
	default:
	}
}

// Submit stores alerts and processes them, counting them as received from
// source; the detector feeds the engine through it. Unlike Accept it
// stores them with an urgent write (store.Urgent): committed at once and
// answered at COMMIT, before the fsync that follows, so that the path from
// a kernel event to containment never waits for the disk. No sender waits
// for an acknowledgement, and a power cut that takes the last commits
// back takes the kernel's event with it. See doc.go, Durability.
func (e *Engine) Submit(ctx context.Context, alerts []alert.Alert, source string) ([]store.Accepted, error) {
	acc, err := e.Accept(store.Urgent(ctx), alerts)
	if err != nil {
		return nil, fmt.Errorf("submit alerts: %w", err)
	}
	dups := 0
	for _, a := range acc {
		if a.Duplicate {
			dups++
		}
	}
	e.m.AlertsReceived.WithLabelValues(source).Add(float64(len(acc) - dups))
	e.m.AlertsDuplicate.Add(float64(dups))
	return acc, nil
}

// Accept stores alerts durably (Accept returns once they are on disk) and
// has them processed; the webhook's intake goes through it. While the
// engine runs, an alert whose processing runs no responder (no playbook,
// or only playbooks in dry run) is processed before it is stored and
// stored done, its entries written in the accept's transaction (see
// settleAtAccept). The others, while the engine has room for them among
// its claimed alerts (Config.Batch), are stored already claimed, with
// their incidents, and go straight to the workers: no claim of their own,
// no incident lookup, and the shortest path from an alert to containment.
// Otherwise (a backlog, or the engine not running) they wait in the inbox
// for the dispatcher, which keeps a burst on disk instead of in memory.
func (e *Engine) Accept(ctx context.Context, alerts []alert.Alert) ([]store.Accepted, error) {
	if e.running.Load() {
		start := e.now()
		settled, work := e.settleAtAccept(ctx, alerts, start)
		var lease time.Duration
		if work > 0 && e.room(work) {
			lease = e.cfg.Lease
		}
		acc, items, incidents, err := e.deps.Store.AcceptSettled(ctx, alerts, settled, lease)
		if err != nil {
			return nil, err
		}
		e.settledDone(ctx, alerts, acc, settled, incidents, start)
		switch {
		case lease > 0:
			e.queue(*e.work.Load(), items)
		case work > 0:
			e.Notify()
		}
		return acc, nil
	}
	acc, err := e.deps.Store.Accept(ctx, alerts)
	if err != nil {
		return nil, err
	}
	e.Notify()
	return acc, nil
}

// room reports whether n more claimed alerts fit in the engine's batch.
func (e *Engine) room(n int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.closing && len(e.inflight)+n <= e.cfg.Batch
}

// Ready reports whether the engine is running.
func (e *Engine) Ready(context.Context) error {
	if !e.running.Load() {
		return errors.New("engine not running")
	}
	return nil
}

// Run processes alerts until ctx ends, then waits for in-flight alerts to
// finish (their actions have their own timeouts) and returns.
func (e *Engine) Run(ctx context.Context) error {
	var bg sync.WaitGroup
	// In-flight work finishes on its own context, so that SIGTERM drains
	// instead of cutting a pause in half.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	e.work.Store(&work)
	e.mu.Lock()
	e.closing = false
	e.mu.Unlock()
	e.running.Store(true)
	for i := 0; i < e.cfg.Outbox.Workers; i++ {
		bg.Add(1)
		go func() { defer bg.Done(); e.deliverLoop(ctx, work) }()
	}
	bg.Add(1)
	go func() { defer bg.Done(); e.approvalLoop(ctx, work) }()
	if e.deps.Stream != nil {
		bg.Add(1)
		go func() { defer bg.Done(); e.followJournal(ctx, work) }()
	}

	stopRenew, renewed := make(chan struct{}), make(chan struct{})
	go func() { defer close(renewed); e.renewLoop(work, stopRenew) }()
	err := e.dispatchLoop(ctx, work)
	// From now on Submit stores without claiming, and nothing new reaches
	// the workers: the next start takes what is left.
	e.running.Store(false)
	e.mu.Lock()
	e.closing = true
	e.mu.Unlock()
	e.wg.Wait() // alerts already handed to workers
	close(stopRenew)
	<-renewed
	bg.Wait()
	return err
}

// dispatchLoop claims alerts and hands them to per-container queues.
func (e *Engine) dispatchLoop(ctx, work context.Context) error {
	poll := time.NewTicker(e.cfg.Poll)
	defer poll.Stop()
	for {
		n, err := e.dispatchOnce(work)
		if err != nil {
			e.log.Error("claim alerts", "err", err)
		}
		if n > 0 && err == nil {
			// More may be waiting; go again unless stopping.
			select {
			case <-ctx.Done():
				return nil
			default:
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		case <-poll.C:
		}
	}
}

// dispatchOnce claims up to the free capacity and queues the claims; it
// returns how many new alerts it queued.
func (e *Engine) dispatchOnce(work context.Context) (int, error) {
	e.mu.Lock()
	free := e.cfg.Batch - len(e.inflight)
	e.mu.Unlock()
	if free <= 0 {
		return 0, nil
	}
	items, err := e.deps.Store.ClaimAlerts(work, free, e.cfg.Lease)
	if err != nil {
		return 0, err
	}
	return e.queue(work, items), nil
}

// queue hands claimed alerts to the per-container queues, skipping those
// already in flight here, and returns how many it queued.
func (e *Engine) queue(work context.Context, items []store.InboxItem) int {
	n := 0
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return 0 // claimed by this process, so the next start takes them at once
	}
	for _, it := range items {
		if e.inflight[it.Alert.ID] {
			continue // still being processed here; its lease ran out
		}
		e.inflight[it.Alert.ID] = true
		n++
		key := it.Alert.Field("container.id")
		q, busy := e.queues[key]
		e.queues[key] = append(q, it)
		if !busy {
			e.wg.Add(1)
			go e.drain(work, key)
		}
	}
	return n
}

// maxRun bounds how many queued alerts of one container are processed
// together (one incident lookup, batched recordings).
const maxRun = 64

// Retrying a run the store refused: the first wait, and the longest.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 5 * time.Second
)

// drain processes one container's queue in order, a run at a time. A run
// the store refused (it is down, or its disk is full) stays claimed by this
// engine and is tried again with backoff, so that it goes on as soon as the
// store recovers instead of waiting out its lease; later alerts of the
// container wait behind it, in order.
func (e *Engine) drain(ctx context.Context, key string) {
	defer e.wg.Done()
	wait := retryFirst
	for {
		e.mu.Lock()
		q := e.queues[key]
		if len(q) == 0 {
			delete(e.queues, key)
			e.mu.Unlock()
			return
		}
		n := min(len(q), maxRun)
		run := append([]store.InboxItem(nil), q[:n]...)
		e.queues[key] = q[n:]
		e.mu.Unlock()

		e.sem <- struct{}{}
		finished := e.process(ctx, run)
		<-e.sem
		if !finished && ctx.Err() == nil {
			e.log.Warn("store refused a run; trying again", "alerts", len(run), "in", wait)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait = min(2*wait, retryMax)
			if ctx.Err() == nil {
				for i := range run {
					// A retry: an earlier write of the run may have gone
					// through (process looks for what it journaled).
					run[i].Attempts = max(run[i].Attempts, 1) + 1
				}
				e.mu.Lock()
				e.queues[key] = append(run, e.queues[key]...)
				e.mu.Unlock()
				continue
			}
			// Stopping: leave them claimed; the next start takes them.
		} else {
			wait = retryFirst
		}

		e.mu.Lock()
		wasFull := len(e.inflight) >= e.cfg.Batch
		for _, it := range run {
			delete(e.inflight, it.Alert.ID)
		}
		e.mu.Unlock()
		if wasFull {
			e.Notify() // the dispatcher stopped claiming; room again
		}
	}
}

// InFlight is how many claimed alerts are not finished yet.
func (e *Engine) InFlight() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.inflight)
}

// queued reports whether an action is a notification: delivered through the
// outbox instead of run inline.
func (e *Engine) queued(action string) bool {
	spec, ok := e.deps.Catalog.Lookup(action)
	return ok && spec.Notification
}
