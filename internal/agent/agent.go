package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
)

// Config is an agent's setup.
type Config struct {
	// Node is the name of this node: every alert carries it as its
	// hostname, and the replicas address this node's actions by it.
	Node string
	// Data is the agent's directory: the spool (spool/) and the ledger of
	// node actions (actions/).
	Data string
	// SpoolMax bounds the alerts spooled on disk (default 100000).
	SpoolMax int
	// Queue bounds the alerts between the detector and the spool (default
	// 4096): the detector never waits for the disk.
	Queue int
	// Batch is the most alerts in one POST (default 256).
	Batch int
}

func (c Config) withDefaults() Config {
	if c.SpoolMax <= 0 {
		c.SpoolMax = 100000
	}
	if c.Queue <= 0 {
		c.Queue = 4096
	}
	if c.Batch <= 0 {
		c.Batch = 256
	}
	return c
}

// Deps are the agent's collaborators.
type Deps struct {
	// Replicas reaches the replicas' API. Required.
	Replicas *Replicas
	// Runners run the node actions addressed to this node, by action name;
	// empty: the agent forwards alerts and takes no action.
	Runners    map[string]actions.Runner
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Agent forwards a node's alerts to the replicas and runs the node's
// actions. Emit is safe for concurrent use; Run is called once.
type Agent struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	m     *Metrics
	spool *Spool
	fwd   *Forwarder
	queue chan alert.Alert

	mu      sync.Mutex
	dropped map[string]int64 // not yet logged, by reason

	id      string       // in claims: <node>/<random>, kept in the data directory
	beat    atomic.Int64 // heartbeat interval (ns): a third of the replicas' lease
	ledger  *ledger
	running runningSet
	resend  chan struct{} // wakes the resender (a capture ended)
}

// New opens the agent's spool; the caller runs the agent with Run.
func New(cfg Config, deps Deps) (*Agent, error) {
	cfg = cfg.withDefaults()
	if cfg.Node == "" {
		return nil, errors.New("new agent: no node name")
	}
	if cfg.Data == "" {
		return nil, errors.New("new agent: no data directory")
	}
	if deps.Replicas == nil {
		return nil, errors.New("new agent: no replicas")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	sp, err := OpenSpool(filepath.Join(cfg.Data, "spool"), cfg.SpoolMax)
	if err != nil {
		return nil, fmt.Errorf("new agent: %w", err)
	}
	a := &Agent{cfg: cfg, deps: deps, log: deps.Logger, m: NewMetrics(deps.Registerer), spool: sp,
		queue: make(chan alert.Alert, cfg.Queue), dropped: map[string]int64{}}
	if a.id, err = agentID(cfg.Data, cfg.Node); err != nil {
		return nil, fmt.Errorf("new agent: %w", err)
	}
	if a.ledger, err = openLedger(filepath.Join(cfg.Data, "actions")); err != nil {
		return nil, fmt.Errorf("new agent: %w", err)
	}
	a.running.keys = map[string]bool{}
	a.resend = make(chan struct{}, 1)
	a.beat.Store(int64(heartbeatEvery))
	a.fwd = newForwarder(sp, deps.Replicas, a.log.With("component", "forward"), a.m, cfg.Batch)
	a.m.SpoolDepth.Set(float64(sp.Len()))
	return a, nil
}

// Node is the node's name.
func (a *Agent) Node() string { return a.cfg.Node }

// Forwarded is how many alerts a replica acknowledged since New.
func (a *Agent) Forwarded() int64 { return a.fwd.acked.Load() }

// Spooled is how many alerts wait on disk for a replica.
func (a *Agent) Spooled() int { return a.spool.Len() }

// Emit hands over one alert of this node. It never blocks: when the queue
// to the spool is full, the alert is counted and logged as dropped. The
// alert's hostname becomes the node's name (the replicas route by it); an
// alert without an id gets the deterministic one, so that every retry of it
// is recognised as the same alert.
func (a *Agent) Emit(x alert.Alert) {
	if x.Hostname != a.cfg.Node {
		if x.ID != "" && x.ID == alert.DeterministicID(x) {
			x.ID = "" // a hash of the body, hostname included: hashed again below
		}
		x.Hostname = a.cfg.Node
	}
	if x.ID == "" {
		x.ID = alert.DeterministicID(x)
	}
	select {
	case a.queue <- x:
	default:
		a.drop("queue_full", 1)
	}
}

func (a *Agent) drop(reason string, n int) {
	a.m.Dropped.WithLabelValues(reason).Add(float64(n))
	a.mu.Lock()
	a.dropped[reason] += int64(n)
	a.mu.Unlock()
}

// logDrops logs what was dropped since the last call, so that a burst is
// one line a second, not one per alert.
func (a *Agent) logDrops() {
	a.mu.Lock()
	d := a.dropped
	a.dropped = map[string]int64{}
	a.mu.Unlock()
	for reason, n := range d {
		a.log.Error("alerts dropped: not spooled, never sent", "reason", reason, "alerts", n,
			"spooled", a.spool.Len(), "spool_max", a.cfg.SpoolMax)
	}
}

// Run spools the emitted alerts and forwards them until ctx ends; then
// what is queued is spooled (sent at the next start) and Run returns.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.fwd.Run(ctx) })
	if len(a.deps.Runners) > 0 {
		wg.Go(func() { a.takeActions(ctx) })
	}
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				a.logDrops()
				return
			case <-t.C:
				a.logDrops()
			}
		}
	})
	a.spoolLoop(ctx)
	wg.Wait()
	return nil
}

// spoolLoop writes queued alerts to the spool, a burst at a time (one
// directory fsync per burst).
func (a *Agent) spoolLoop(ctx context.Context) {
	batch := make([]alert.Alert, 0, 256)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			// What the detector handed over before the end is kept.
		rest:
			for {
				select {
				case x := <-a.queue:
					batch = append(batch, x)
				default:
					break rest
				}
			}
			a.write(batch)
			return
		case x := <-a.queue:
			batch = append(batch, x)
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case x := <-a.queue:
				batch = append(batch, x)
			default:
				break more
			}
		}
		a.write(batch)
		a.fwd.Notify()
	}
}

func (a *Agent) write(batch []alert.Alert) {
	if len(batch) == 0 {
		return
	}
	n, err := a.spool.Append(batch...)
	a.m.Spooled.Add(float64(n))
	a.m.SpoolDepth.Set(float64(a.spool.Len()))
	if err != nil {
		reason := "spool_error"
		if errors.Is(err, ErrSpoolFull) {
			reason = "spool_full"
		} else {
			a.log.Error("spool alerts", "err", err)
		}
		a.drop(reason, len(batch)-n)
	}
}
