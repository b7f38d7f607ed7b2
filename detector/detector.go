package detector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/riposte-sec/riposte/detector/cgroup"
	"github.com/riposte-sec/riposte/detector/containers"
	"github.com/riposte-sec/riposte/detector/enforce"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/resources"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/detector/sensor"
	exrules "github.com/riposte-sec/riposte/examples/rules"
	"github.com/riposte-sec/riposte/internal/alert"
)

// Event is one decoded, enriched event; see package event.
type Event = event.Event

// Detector is riposte's eBPF detector. Create it with New, then Run it.
type Detector struct {
	cfg      Config
	log      *slog.Logger
	rules    *rules.Ruleset
	cache    *containers.Cache
	protect  ProtectedFunc
	metrics  *metrics
	hostname string

	subs  subscribers
	bufs  bufs
	ready chan struct{} // closed once Run has attached the sensor

	readyOnce   sync.Once
	mu          sync.Mutex
	running     bool
	queue       chan []byte       // set while running
	lastKernels map[string]uint64 // the sensor's last drop counters, kept for Stats after Run
	lastFilter  map[string]uint64 // the sensor's last filter counters, kept likewise
	arm         *armer            // set while running with enforcement

	wantMu sync.Mutex // serialises changes of the kernel's wanted events
}

// New validates cfg, loads the rules (cfg.Rules, or the built-in default
// rules) and registers the metrics. It does not touch the kernel: Run
// loads the sensor.
func New(cfg Config, deps Deps) (*Detector, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rs, err := LoadRules(cfg.Rules...)
	if err != nil {
		return nil, err
	}
	host := cfg.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	if cfg.Enforce.Enabled && len(rs.Enforced()) > 0 && deps.Protected == nil {
		return nil, errors.New("detector: enforce.enabled needs the docker integration, which decides which containers are protected (configure docker:)")
	}
	d := &Detector{cfg: cfg, log: log, rules: rs, hostname: host, ready: make(chan struct{}), protect: deps.Protected}
	d.metrics, err = newMetrics(deps.Registerer, d.queueLen)
	if err != nil {
		return nil, fmt.Errorf("register detector metrics: %w", err)
	}
	d.subs.init(&d.metrics.nSubDrops, d.metrics.subscriberDrops)
	var api containers.API
	if deps.Docker != nil {
		api = deps.Docker
	}
	d.cache = containers.New(api, log, deps.Resolvers...)
	return d, nil
}

// LoadRules loads rules files and directories, or the built-in default
// rules when paths is empty.
func LoadRules(paths ...string) (*rules.Ruleset, error) {
	var files []rules.File
	var err error
	if len(paths) == 0 {
		files, err = rules.ReadFS(exrules.FS)
	} else {
		files, err = rules.ReadPaths(paths...)
	}
	if err != nil {
		return nil, err
	}
	rs, err := rules.Compile(files...)
	if err != nil {
		return nil, fmt.Errorf("load detection rules:\n%w", err)
	}
	return rs, nil
}

// Ready is closed once Run has loaded and attached the sensor and events
// flow; events from then on are seen.
func (d *Detector) Ready() <-chan struct{} { return d.ready }

// Rules returns the loaded ruleset.
func (d *Detector) Rules() *rules.Ruleset { return d.rules }

// Stats returns the counters since New. It is safe to call at any time,
// also while Run runs and after it returned (the kernel counters are then
// those read when Run stopped).
// Losses is what Stats says about lost events, summed: records the reader
// could not queue, events slow subscribers missed, and events the kernel
// could not put in the ring buffer. Captures record its growth.
func (d *Detector) Losses() (queue, subscriber, kernel uint64) {
	st := d.Stats()
	for _, n := range st.KernelDrops {
		kernel += n
	}
	return st.QueueDrops, st.SubscriberDrops, kernel
}

// Stats returns the detector's counters.
func (d *Detector) Stats() Stats {
	m := d.metrics
	s := Stats{
		Events: m.nEvents.Load(), QueueDrops: m.nQueueDrops.Load(), SubscriberDrops: m.nSubDrops.Load(),
		DecodeErrors: m.nDecodeErrors.Load(), RuleErrors: m.nRuleErrors.Load(), Alerts: m.nAlerts.Load(),
		AlertsByRule: m.alertsByRule(),
	}
	if e := m.enforcer.Load(); e != nil {
		if st, err := e.Stats(); err == nil {
			s.Enforce = st
		}
	}
	if sn := m.sensor.Load(); sn != nil {
		if k, err := sn.Drops(); err == nil {
			s.KernelDrops = k
		}
		if f, err := sn.Filtered(); err == nil {
			s.KernelFilteredByType = f
		}
	}
	d.mu.Lock()
	if s.KernelDrops == nil {
		s.KernelDrops = d.lastKernels
	}
	if s.KernelFilteredByType == nil {
		s.KernelFilteredByType = d.lastFilter
	}
	d.mu.Unlock()
	for _, n := range s.KernelFilteredByType {
		s.KernelFiltered += n
	}
	return s
}

func (d *Detector) queueLen() float64 {
	d.mu.Lock()
	q := d.queue
	d.mu.Unlock()
	return float64(len(q))
}

// Run loads and attaches the eBPF sensor, then reads, decodes, enriches
// and evaluates events, calling emit for every alert, until ctx ends. emit
// is never called concurrently. Run returns an error when the sensor cannot
// be loaded (not root, no BTF, verifier) and nil when ctx ends. A Detector
// runs once at a time.
func (d *Detector) Run(ctx context.Context, emit func(alert.Alert)) error {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return errors.New("run detector: already running")
	}
	d.running = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.running = false
		d.queue = nil
		d.mu.Unlock()
	}()

	mode, err := cgroup.DetectMode("/")
	if err != nil {
		return fmt.Errorf("run detector: %w", err)
	}
	modeFrom := "detected"
	switch d.cfg.Cgroup {
	case "v1":
		mode, modeFrom = cgroup.V1, "config"
	case "v2":
		mode, modeFrom = cgroup.V2, "config"
	}
	var v2 *cgroup.Resolver
	if mounts, err := cgroup.ReadMounts(); err != nil {
		d.log.Warn("cgroup v2 attribution off", "err", err)
	} else if mounts.V2 != "" {
		v2 = cgroup.NewResolver(mounts.V2)
	}
	opts := sensor.Options{RingBufferBytes: d.cfg.RingBufferBytes, Cgroup: mode, IgnorePID: uint32(os.Getpid()),
		SkipLibraryReads: !d.cfg.ReportLibraryReads, Wanted: d.wanted()}
	if d.cfg.PollInterval > 0 {
		size := d.cfg.RingBufferBytes
		if size == 0 {
			size = sensor.DefaultRingBufferBytes
		}
		opts.WakeupBytes = min(size/8, 256<<10)
	}
	// Enforcement attaches first: programs on one tracepoint run in attach
	// order, so its decision is recorded before the sensor's exec event can
	// be read.
	arm, err := d.openEnforcement(mode)
	if err != nil {
		return err
	}
	if arm != nil {
		d.metrics.enforcer.Store(arm.enf)
		defer func() {
			d.metrics.enforcer.Store(nil)
			d.mu.Lock()
			d.arm = nil
			d.mu.Unlock()
			if err := arm.enf.Close(); err != nil {
				d.log.Warn("close enforcement", "err", err)
			}
		}()
	}
	s, err := sensor.Open(opts)
	if err != nil {
		return err
	}
	d.metrics.sensor.Store(s)
	d.applyWanted() // a subscription may have come or gone since Open
	d.log.Info("detector running", "cgroup", mode.String(), "cgroup_choice", modeFrom, "cgroup_v2_fallback", mode == cgroup.V1 && v2 != nil,
		"rules", len(d.rules.Rules()), "workers", d.cfg.Workers)

	p := newPipeline(d, emit)
	p.mode, p.v2, p.arm = mode, v2, arm
	if err := p.table.Seed(); err != nil {
		d.log.Warn("seed process table", "err", err)
	}
	queue := make(chan []byte, d.cfg.QueueSize)
	d.mu.Lock()
	d.queue = queue
	d.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	evalQ := make(chan *Event, d.cfg.QueueSize)
	wg.Add(1)
	go func() { defer wg.Done(); _ = d.cache.Run(ctx) }()
	if arm != nil {
		mounts, err := cgroup.ReadMounts()
		if err != nil {
			d.log.Warn("enforcement: containers already running are armed at their next event", "err", err)
		}
		wg.Add(2)
		go func() { defer wg.Done(); arm.run(ctx, "/proc", mode, mounts) }()
		go func() { defer wg.Done(); p.sweep(ctx, 2*time.Second) }()
	}
	if !d.cfg.DisableResources {
		mounts, err := cgroup.ReadMounts()
		if err != nil {
			d.log.Warn("resource monitor off", "err", err)
		} else {
			place, err := cgroup.ReadPlacement(mounts)
			if err != nil {
				d.log.Warn("resource monitor off", "err", err)
			} else {
				d.log.Info("resource monitor reads", "cpu", place.CPU.String(), "memory", place.Memory.String())
				mon := resources.New(d.cfg.Resources, d.cache, place, mounts, d.log)
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = mon.Run(ctx, func(ev event.Event) {
						p.enrich(ctx, &ev)
						d.subs.dispatch(&ev)
						p.evaluate(&ev)
					})
				}()
			}
		}
	}
	var workers sync.WaitGroup
	for i := 0; i < d.cfg.Workers; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for ev := range evalQ {
				p.enrich(ctx, ev)
				p.evaluate(ev)
			}
		}()
	}
	stateDone := make(chan struct{})
	go func() {
		defer close(stateDone)
		defer close(evalQ)
		p.state(ctx, queue, evalQ)
	}()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		d.read(s, queue)
	}()
	d.readyOnce.Do(func() { close(d.ready) })

	<-ctx.Done()
	if k, err := s.Drops(); err == nil {
		d.mu.Lock()
		d.lastKernels = k
		d.mu.Unlock()
	}
	if f, err := s.Filtered(); err == nil {
		d.mu.Lock()
		d.lastFilter = f
		d.mu.Unlock()
	}
	d.wantMu.Lock() // no filter change on a closing sensor
	d.metrics.sensor.Store(nil)
	d.wantMu.Unlock()
	closeErr := s.Close() // unblocks read
	<-readDone
	close(queue)
	<-stateDone
	workers.Wait()
	wg.Wait()
	d.subs.closeAll()
	if closeErr != nil {
		d.log.Warn("close sensor", "err", closeErr)
	}
	return nil
}

// openEnforcement loads the enforcement program when the config enables
// it and some rule is marked `enforce:`; nil otherwise.
func (d *Detector) openEnforcement(mode cgroup.Mode) (*armer, error) {
	if !d.cfg.Enforce.Enabled {
		return nil, nil
	}
	opts := d.cfg.Enforce.options(d.rules)
	if len(opts.Entries) == 0 {
		d.log.Info("enforcement enabled, but no rule is marked enforce:")
		return nil, nil
	}
	opts.Cgroup, opts.IgnorePID = mode, uint32(os.Getpid())
	enf, err := enforce.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("run detector: %w", err)
	}
	a := newArmer(enf, d.protect, d.log)
	d.mu.Lock()
	d.arm = a
	d.mu.Unlock()
	d.log.Info("enforcement loaded", "rules", len(opts.Entries), "mode", opts.Mode.String(), "budget", opts.Budget, "window", opts.Window)
	return a, nil
}

// EnforcementArmed reports whether the kernel enforces in the container
// with that id (its cgroup is armed), and if not, why.
func (d *Detector) EnforcementArmed(containerID string) (bool, string) {
	d.mu.Lock()
	a := d.arm
	d.mu.Unlock()
	if a == nil {
		return false, "enforcement is not running"
	}
	st, ok := a.state(containerID)
	if !ok {
		return false, "the container was not checked yet"
	}
	return st.armed, st.reason
}

// wanted is what the kernel is to send: every event while someone
// subscribes (a capture, riposte top), otherwise the event types the
// enabled rules can match, and their failures only when a rule can match
// one (see rules.Ruleset.WantsFailed).
func (d *Detector) wanted() map[string]sensor.Want {
	w := map[string]sensor.Want{}
	all := d.subs.active()
	for _, t := range sensor.KernelTypes() {
		switch {
		case all:
			w[t] = sensor.WantAll
		case d.rules.WantsFailed(t):
			w[t] = sensor.WantAll
		case d.rules.Wants(t):
			w[t] = sensor.WantOK
		}
	}
	return w
}

// applyWanted gives the running sensor what wanted says; a no-op when the
// sensor is not running.
func (d *Detector) applyWanted() {
	d.wantMu.Lock()
	defer d.wantMu.Unlock()
	s := d.metrics.sensor.Load()
	if s == nil {
		return
	}
	if err := s.SetWanted(d.wanted()); err != nil {
		d.log.Warn("set the kernel's event filter", "err", err)
	}
}

// read moves ring-buffer records into queue and never blocks on it: a
// record that does not fit is dropped and counted.
func (d *Detector) read(s *sensor.Sensor, queue chan<- []byte) {
	var rec ringbuf.Record
	poll := d.cfg.PollInterval
	for {
		if poll > 0 {
			s.SetDeadline(time.Now().Add(poll))
		}
		if err := s.Read(&rec); err != nil {
			if errors.Is(err, sensor.ErrClosed) {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			d.log.Warn("read ring buffer", "err", err)
			continue
		}
		buf := d.bufs.get(len(rec.RawSample))
		copy(buf, rec.RawSample)
		select {
		case queue <- buf:
		default:
			d.bufs.put(buf)
			d.metrics.nQueueDrops.Add(1)
			d.metrics.queueDrops.Inc()
		}
	}
}

// bufs recycles record buffers between the reader and the state stage.
type bufs struct{ pool sync.Pool }

func (p *bufs) get(n int) []byte {
	if bp, ok := p.pool.Get().(*[]byte); ok && cap(*bp) >= n {
		return (*bp)[:n]
	}
	return make([]byte, n, max(n, 2048))
}

func (p *bufs) put(b []byte) {
	if cap(b) >= 2048 {
		b = b[:0]
		p.pool.Put(&b)
	}
}

// emitAlerts counts and emits alerts one at a time.
type emitter struct {
	mu   sync.Mutex
	emit func(alert.Alert)
}

func (e *emitter) send(a alert.Alert) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.emit(a)
}
