package detector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riposte-sec/riposte/detector/cgroup"
	"github.com/riposte-sec/riposte/detector/enforce"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/detector/sensor"
	"github.com/riposte-sec/riposte/internal/alert"
)

// EnforceConfig turns on in-kernel enforcement of the rules marked
// `enforce: sigkill|sigstop`: the detector's own exec hook signals the
// process before the exec'd program runs. It is off by default: an
// operator opts in to kernel kills.
type EnforceConfig struct {
	// Enabled loads the enforcement program when some rule is marked
	// `enforce:`.
	Enabled bool `yaml:"enabled"`
	// DryRun records, and alerts, what would have been signalled, and
	// signals nothing. The engine's global dry run implies it.
	DryRun bool `yaml:"dry_run"`
	// MaxSignals is the kernel's budget: at most this many signals per
	// Window; a match beyond it is alerted as budget_exhausted and runs.
	// Default 10; -1 means no limit.
	MaxSignals int `yaml:"max_signals"`
	// Window is the budget's window. Default 1m.
	Window time.Duration `yaml:"window"`
}

// Enforcement defaults.
const (
	DefaultEnforceMaxSignals = 10
	DefaultEnforceWindow     = time.Minute
)

func (c EnforceConfig) withDefaults() EnforceConfig {
	if c.MaxSignals == 0 {
		c.MaxSignals = DefaultEnforceMaxSignals
	}
	if c.Window == 0 {
		c.Window = DefaultEnforceWindow
	}
	return c
}

func (c EnforceConfig) validate() error {
	var errs []error
	if c.MaxSignals < -1 {
		errs = append(errs, fmt.Errorf("detector: enforce.max_signals must be positive or -1 (no limit), got %d", c.MaxSignals))
	}
	if c.Window < time.Millisecond {
		errs = append(errs, fmt.Errorf("detector: enforce.window must be at least 1ms, got %s", c.Window))
	}
	return errors.Join(errs...)
}

func (c EnforceConfig) options(rs *rules.Ruleset) enforce.Options {
	o := enforce.Options{Entries: enforce.Entries(rs), Mode: enforce.Armed, Window: c.Window}
	if c.DryRun {
		o.Mode = enforce.DryRun
	}
	if c.MaxSignals > 0 {
		o.Budget = uint32(c.MaxSignals)
	}
	return o
}

// ProtectedFunc says whether a container may not be acted on, and why
// (docker.Responder.Protected). Enforcement arms a container's cgroup only
// once it answered "not protected".
type ProtectedFunc func(ctx context.Context, containerID string) (protected bool, reason string, err error)

// Output fields of an alert whose rule is enforced (see package alert).
const (
	FieldEnforceOutcome = alert.FieldEnforceOutcome // enforce.Outcome, or "protected" / "not_armed"
	FieldEnforceSignal  = alert.FieldEnforceSignal  // SIGKILL or SIGSTOP
	FieldEnforcePID     = alert.FieldEnforcePID     // the process the kernel decided about
	FieldEnforceReason  = alert.FieldEnforceReason  // why nothing was sent
)

// Outcomes for enforced rules that the kernel did not decide about.
const (
	OutcomeProtected = "protected" // the container is protected: its cgroup is never armed
	OutcomeNotArmed  = "not_armed" // the container was not checked yet, or the check failed
)

// armState is what the detector knows about one container's cgroup.
type armState struct {
	container string
	armed     bool
	protected bool      // final: a protected container is never armed
	reason    string    // why not armed
	retryAt   time.Time // a failed check is tried again from then
}

// armer arms the cgroups of containers that are not protected. The state
// goroutine asks (consider) without blocking; one goroutine checks and
// arms. Safe for concurrent use.
type armer struct {
	enf       *enforce.Enforcer
	protected ProtectedFunc
	log       *slog.Logger
	queue     chan armRequest

	mu      sync.Mutex
	byGroup map[uint64]armState // cgroup id -> state
	byID    map[string]armState // container id -> state
	waiting map[uint64]bool     // queued, not checked yet
}

type armRequest struct {
	cgroup    uint64
	container string
}

// retryAfter is how soon a failed check is tried again.
const retryAfter = 2 * time.Second

func newArmer(enf *enforce.Enforcer, protected ProtectedFunc, log *slog.Logger) *armer {
	return &armer{enf: enf, protected: protected, log: log, queue: make(chan armRequest, 256),
		byGroup: map[uint64]armState{}, byID: map[string]armState{}, waiting: map[uint64]bool{}}
}

// consider queues a check of the container seen in cgroup id, unless it
// was checked (a failed check is retried after retryAfter).
func (a *armer) consider(id uint64, container string) {
	if id == 0 || container == "" || container == event.HostID {
		return
	}
	a.mu.Lock()
	st, ok := a.byGroup[id]
	if a.waiting[id] || ok && (st.armed || st.protected || time.Now().Before(st.retryAt)) {
		a.mu.Unlock()
		return
	}
	a.waiting[id] = true
	a.mu.Unlock()
	select {
	case a.queue <- armRequest{id, container}:
	default:
		a.mu.Lock()
		delete(a.waiting, id)
		a.mu.Unlock()
	}
}

// run arms the containers already running (seen in procRoot), and beside
// that checks and arms what consider queues, until ctx ends: a new
// container does not wait for the ones found at start.
func (a *armer) run(ctx context.Context, procRoot string, mode cgroup.Mode, mounts cgroup.Mounts) {
	seeded := make(chan struct{})
	go func() {
		defer close(seeded)
		for _, r := range running(procRoot, mode, mounts) {
			if ctx.Err() != nil {
				return
			}
			a.mu.Lock()
			_, known := a.byGroup[r.cgroup]
			a.mu.Unlock()
			if !known {
				a.record(r, a.check(ctx, r))
			}
		}
	}()
	defer func() { <-seeded }()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-a.queue:
			a.record(r, a.check(ctx, r))
		}
	}
}

func (a *armer) record(r armRequest, st armState) {
	st.container = r.container
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.waiting, r.cgroup)
	if len(a.byGroup) > 1<<14 {
		clear(a.byGroup)
		clear(a.byID)
	}
	a.byGroup[r.cgroup] = st
	a.byID[r.container] = st
}

// running lists the containers of the processes under procRoot with the
// cgroup that names each: the pids controller's (v1) or the unified
// hierarchy's, whichever the kernel program checks. A container that sits
// idle from the start is armed this way, before anything execs in it.
func running(procRoot string, mode cgroup.Mode, mounts cgroup.Mounts) []armRequest {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	type where struct{ key, base string }
	var places []where
	if mode == cgroup.V1 && mounts.V1["pids"] != "" {
		places = append(places, where{"pids", mounts.V1["pids"]})
	}
	if mounts.V2 != "" {
		places = append(places, where{"", mounts.V2})
	}
	seen := map[uint64]bool{}
	var out []armRequest
	for _, e := range ents {
		if _, err := strconv.ParseUint(e.Name(), 10, 32); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cgroup"))
		if err != nil {
			continue
		}
		paths, err := cgroup.ProcPaths(b)
		if err != nil {
			continue
		}
		for _, w := range places {
			p, ok := paths[w.key]
			if !ok {
				continue
			}
			ref, ok := cgroup.ParsePath(p)
			if !ok {
				continue
			}
			var st syscall.Stat_t
			if syscall.Stat(filepath.Join(w.base, p), &st) != nil || seen[st.Ino] {
				continue
			}
			seen[st.Ino] = true
			out = append(out, armRequest{cgroup: st.Ino, container: ref.ID})
			break
		}
	}
	return out
}

func (a *armer) check(ctx context.Context, r armRequest) armState {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	protected, reason, err := a.protected(ctx, r.container)
	switch {
	case err != nil:
		a.log.Warn("enforcement not armed: cannot check the container's protection", "container", r.container, "err", err)
		return armState{reason: "cannot check protection: " + err.Error(), retryAt: time.Now().Add(retryAfter)}
	case protected:
		a.log.Info("enforcement not armed: protected container", "container", r.container, "reason", reason)
		return armState{protected: true, reason: "protected container: " + reason}
	}
	if err := a.enf.Arm(r.cgroup); err != nil {
		a.log.Warn("enforcement not armed", "container", r.container, "err", err)
		return armState{reason: err.Error(), retryAt: time.Now().Add(retryAfter)}
	}
	a.log.Debug("enforcement armed", "container", r.container, "cgroup", r.cgroup)
	return armState{armed: true}
}

// containerOf returns the container whose cgroup has that id, or the
// host's id when none is known.
func (a *armer) containerOf(cgroupID uint64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st, ok := a.byGroup[cgroupID]; ok && st.container != "" {
		return st.container
	}
	return event.HostID
}

// state returns what is known of a container, by its id or a prefix of
// it (the 12-character short id).
func (a *armer) state(container string) (armState, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st, ok := a.byID[container]; ok || container == "" {
		return st, ok
	}
	for id, st := range a.byID {
		if strings.HasPrefix(id, container) {
			return st, true
		}
	}
	return armState{}, false
}

// applyRecord writes the kernel's decision into the alert's fields and
// output.
func applyRecord(al *alert.Alert, rec enforce.Record) {
	al.OutputFields[FieldEnforceOutcome] = string(rec.Outcome)
	al.OutputFields[FieldEnforceSignal] = rec.Signal.String()
	al.OutputFields[FieldEnforcePID] = int64(rec.PID)
	var what string
	switch rec.Outcome {
	case enforce.Signalled:
		what = fmt.Sprintf("enforced: signal %s sent to pid %d exe %s", rec.Signal, rec.PID, rec.Path)
	case enforce.WouldSignal:
		what = fmt.Sprintf("dry run: signal %s would have been sent to pid %d exe %s", rec.Signal, rec.PID, rec.Path)
	case enforce.BudgetExhausted:
		what = fmt.Sprintf("not enforced: the signal budget is spent, pid %d exe %s runs", rec.PID, rec.Path)
		al.OutputFields[FieldEnforceReason] = "budget spent"
	default:
		what = fmt.Sprintf("enforcement failed: signal %s to pid %d exe %s: error %d", rec.Signal, rec.PID, rec.Path, rec.Err)
		al.OutputFields[FieldEnforceReason] = "bpf_send_signal returned " + strconv.Itoa(int(rec.Err))
	}
	al.Output += " (" + what + ")"
}

// staleAge is how old a kernel decision gets before the detector reports
// it without its exec event (lost in a full ring buffer); well above how
// long a queued event waits.
const staleAge = 10 * time.Second

// sweep reports, every interval, the kernel's decisions whose exec event
// never reached the rules: the signal was sent all the same, so it is
// alerted (and journaled) from the kernel's record.
func (p *pipeline) sweep(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		recs, err := p.arm.enf.Stale(staleAge)
		if err != nil {
			p.d.log.Warn("read stale enforcement records", "err", err)
		}
		for _, rec := range recs {
			if a, ok := p.staleAlert(ctx, rec, p.arm.enf.Entries(), p.arm.containerOf(rec.CgroupID)); ok {
				p.d.metrics.alerted(a.Rule)
				p.out.send(a)
			}
		}
	}
}

// staleAlert builds the alert of a kernel decision from its record alone;
// entries are the enforced rules, container the one the record's cgroup
// belongs to.
func (p *pipeline) staleAlert(ctx context.Context, rec enforce.Record, entries []enforce.Entry, container string) (alert.Alert, bool) {
	if rec.Rule >= len(entries) {
		return alert.Alert{}, false
	}
	r := p.d.rules.Rule(entries[rec.Rule].Rule)
	if r == nil {
		return alert.Alert{}, false
	}
	ev := &Event{Type: event.Exec, PID: rec.PID, TID: rec.PID, Comm: rec.Comm, Exe: rec.Path,
		Time: time.Unix(0, int64(rec.BootNanos)+int64(sensor.BootOffset()))}
	ev.Container.ID = container
	p.enrich(ctx, ev)
	a := p.d.rules.Alert(r, ev, nil, p.d.hostname)
	applyRecord(&a, rec)
	a.Output += " (reported from the kernel's record: the exec event was lost)"
	a.ID = alert.DeterministicID(a)
	return a, true
}

// annotate adds what the kernel did to the alert of an enforced rule r
// matching the exec ev: the kernel's record for the pid when it decided,
// else why it did not (a protected or unchecked container).
func (a *armer) annotate(al *alert.Alert, r *rules.Rule, ev *event.Event) {
	// Peek, then take only the record of this rule: an exec may match
	// another enforced rule in user space (by path, when the kernel matched
	// by name), whose alert must not lose the record.
	rec, found, err := a.enf.Peek(ev.PID)
	if err != nil {
		a.log.Warn("read enforcement record", "pid", ev.PID, "err", err)
	}
	entries := a.enf.Entries()
	if found && rec.Rule < len(entries) && entries[rec.Rule].Rule == r.Name {
		if _, _, err := a.enf.Take(ev.PID); err != nil {
			a.log.Warn("remove enforcement record", "pid", ev.PID, "err", err)
		}
		applyRecord(al, rec)
	} else {
		outcome, reason := OutcomeNotArmed, "the container was not checked yet"
		if st, ok := a.state(ev.Container.ID); ok {
			reason = st.reason
			switch {
			case st.protected:
				outcome = OutcomeProtected
			case st.armed:
				reason = "the exec came before the container's cgroup was armed"
			}
		}
		al.OutputFields[FieldEnforceOutcome] = outcome
		al.OutputFields[FieldEnforceSignal] = r.Enforce.Signal.String()
		al.OutputFields[FieldEnforceReason] = reason
		al.Output += " (not enforced: " + reason + ")"
	}
	al.ID = alert.DeterministicID(*al)
}

// enforceCounters exports the enforcement program's counters (a BPF map)
// at scrape time.
type enforceCounters struct{ m *metrics }

var enforceDesc = prometheus.NewDesc("riposte_detector_enforce_total",
	"In-kernel enforcement decisions on execs of enforced programs, by outcome (matched counts them all; "+
		"unarmed: in a container not armed, nothing done).", []string{"outcome"}, nil)

func (c *enforceCounters) Describe(ch chan<- *prometheus.Desc) { ch <- enforceDesc }

func (c *enforceCounters) Collect(ch chan<- prometheus.Metric) {
	e := c.m.enforcer.Load()
	if e == nil {
		return
	}
	st, err := e.Stats()
	if err != nil {
		return
	}
	for outcome, n := range map[string]uint64{"matched": st.Matched, "signalled": st.Signalled, "dry_run": st.DryRun,
		"budget_exhausted": st.BudgetExhausted, "failed": st.Failed, "unarmed": st.Unarmed} {
		ch <- prometheus.MustNewConstMetric(enforceDesc, prometheus.CounterValue, float64(n), outcome)
	}
}
