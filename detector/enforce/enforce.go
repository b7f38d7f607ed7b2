package enforce

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/bpf"
	"github.com/riposte-sec/riposte/detector/cgroup"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/detector/sensor"
)

// Mode is the kernel program's global switch.
type Mode uint32

// Modes (MODE_* in bpf/enforce.c).
const (
	Off    Mode = 0 // nothing is checked
	DryRun Mode = 1 // matches are recorded as "would signal", nothing is sent
	Armed  Mode = 2 // matches are signalled, within the budget
)

func (m Mode) String() string {
	switch m {
	case Off:
		return "off"
	case DryRun:
		return "dry run"
	case Armed:
		return "armed"
	}
	return fmt.Sprintf("mode %d", uint32(m))
}

// Outcome is what the kernel did about one matching exec.
type Outcome string

// Outcomes (OUT_* in bpf/enforce.c).
const (
	Signalled       Outcome = "signalled"        // the signal was sent
	WouldSignal     Outcome = "dry_run"          // dry run: it would have been sent
	BudgetExhausted Outcome = "budget_exhausted" // the window's budget was spent: not sent
	Failed          Outcome = "failed"           // bpf_send_signal refused (Record.Err)
)

var outcomes = [...]Outcome{1: Signalled, 2: WouldSignal, 3: BudgetExhausted, 4: Failed}

// Entry is one enforced rule as the kernel sees it.
type Entry struct {
	Rule   string
	Signal rules.Signal
	Names  []string // comm values
	Paths  []string // exec paths
}

// Entries lists the enforced rules of rs.
func Entries(rs *rules.Ruleset) []Entry {
	var out []Entry
	for _, r := range rs.Enforced() {
		out = append(out, Entry{Rule: r.Name, Signal: r.Enforce.Signal, Names: r.Enforce.Names, Paths: r.Enforce.Paths})
	}
	return out
}

// Options configure Open.
type Options struct {
	// Entries are the enforced rules; their index is the rule number in
	// records.
	Entries []Entry
	// Mode is the initial mode; SetMode changes it.
	Mode Mode
	// Budget is how many signals the kernel sends per Window; beyond that
	// it records BudgetExhausted. 0 means no limit.
	Budget uint32
	// Window is the budget's window; at least a millisecond when Budget is
	// set.
	Window time.Duration
	// Cgroup is the hierarchy the armed cgroup ids belong to (the sensor's).
	Cgroup cgroup.Mode
	// IgnorePID is a process never signalled (the detector itself).
	IgnorePID uint32
}

// Record is one decision of the kernel program.
type Record struct {
	Rule      int // index in Options.Entries
	PID       uint32
	Signal    rules.Signal
	Outcome   Outcome
	Err       int32  // bpf_send_signal's return when Failed
	ByPath    bool   // matched by exec path (else by name)
	CgroupID  uint64 // the armed cgroup
	Comm      string
	Path      string
	BootNanos uint64 // CLOCK_BOOTTIME of the exec tracepoint
	ExitNanos uint64 // CLOCK_BOOTTIME the process exited; 0 while it lives
}

// Stats are the kernel program's counters since Open.
type Stats struct {
	Matched, Signalled, DryRun, BudgetExhausted, Failed, Unarmed uint64
}

// Enforcer is the loaded and attached enforcement program.
type Enforcer struct {
	objs    bpf.EnforceObjects
	links   []link.Link
	entries []Entry
	opts    Options
}

// Open checks opts, loads the program, fills its maps and attaches it. Open
// it before the sensor: programs on one tracepoint run in attach order, so
// a decision is recorded before the sensor's exec event can be read.
func Open(opts Options) (*Enforcer, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := sensor.Check(); err != nil {
		return nil, fmt.Errorf("load enforcement: %w", err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("load enforcement: raise memlock limit: %w", err)
	}
	spec, err := bpf.LoadEnforce()
	if err != nil {
		return nil, fmt.Errorf("load enforcement: %w", err)
	}
	v2 := uint32(0)
	if opts.Cgroup == cgroup.V2 {
		v2 = 1
	}
	if err := spec.Variables[bpf.EnforceVarCgroupV2].Set(v2); err != nil {
		return nil, fmt.Errorf("load enforcement: set cgroup mode: %w", err)
	}
	if err := spec.Variables[bpf.EnforceVarSelfTgid].Set(opts.IgnorePID); err != nil {
		return nil, fmt.Errorf("load enforcement: set own pid: %w", err)
	}
	e := &Enforcer{entries: opts.Entries, opts: opts}
	if err := spec.LoadAndAssign(&e.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load enforcement: verifier rejected a program: %+v", ve)
		}
		return nil, fmt.Errorf("load enforcement: %w", err)
	}
	if err := e.fill(); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.SetMode(opts.Mode); err != nil {
		e.Close()
		return nil, err
	}
	for _, p := range []struct {
		name string
		prog *ebpf.Program
	}{{"sched_process_exec", e.objs.EnforceExec}, {"sched_process_exit", e.objs.EnforceExit}} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p.prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("load enforcement: attach tp_btf/%s: %w", p.name, err)
		}
		e.links = append(e.links, l)
	}
	return e, nil
}

func (o Options) validate() error {
	var errs []error
	if o.Mode > Armed {
		errs = append(errs, fmt.Errorf("enforcement: unknown mode %d", o.Mode))
	}
	if o.Budget > 0 && o.Window < time.Millisecond {
		errs = append(errs, fmt.Errorf("enforcement: a budget of %d signals needs a window of at least 1ms, got %s", o.Budget, o.Window))
	}
	if len(o.Entries) > 1024 {
		errs = append(errs, fmt.Errorf("enforcement: %d enforced rules, at most 1024", len(o.Entries)))
	}
	for _, en := range o.Entries {
		if en.Signal != rules.SigKill && en.Signal != rules.SigStop {
			errs = append(errs, fmt.Errorf("enforcement: rule %q: signal %s is neither SIGKILL nor SIGSTOP", en.Rule, en.Signal))
		}
		for _, n := range en.Names {
			if n == "" || len(n) > 15 {
				errs = append(errs, fmt.Errorf("enforcement: rule %q: name %q is not 1 to 15 bytes", en.Rule, n))
			}
		}
		for _, p := range en.Paths {
			if p == "" || len(p) > 255 {
				errs = append(errs, fmt.Errorf("enforcement: rule %q: path %q is not 1 to 255 bytes", en.Rule, p))
			}
		}
	}
	return errors.Join(errs...)
}

// fill writes the enforced names and paths.
func (e *Enforcer) fill() error {
	for i, en := range e.entries {
		v := bpf.EnforceEnforceVerdict{Signal: uint32(en.Signal), Rule: uint32(i)}
		for _, n := range en.Names {
			var k [16]byte
			copy(k[:], n)
			if err := e.objs.Names.Put(k, v); err != nil {
				return fmt.Errorf("load enforcement: rule %q: add name %q: %w", en.Rule, n, err)
			}
		}
		for _, p := range en.Paths {
			var k [256]byte
			copy(k[:], p)
			if err := e.objs.Paths.Put(k, v); err != nil {
				return fmt.Errorf("load enforcement: rule %q: add path %q: %w", en.Rule, p, err)
			}
		}
	}
	return nil
}

// SetMode switches the kernel program (the arm switch): Off, DryRun or
// Armed. The budget goes with it.
func (e *Enforcer) SetMode(m Mode) error {
	if m > Armed {
		return fmt.Errorf("set enforcement mode: unknown mode %d", m)
	}
	cfg := bpf.EnforceEnforceConfig{Mode: uint32(m), Budget: e.opts.Budget, WindowNs: uint64(e.opts.Window)}
	if err := e.objs.Settings.Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("set enforcement mode %s: %w", m, err)
	}
	return nil
}

// Mode returns the current mode.
func (e *Enforcer) Mode() (Mode, error) {
	var cfg bpf.EnforceEnforceConfig
	if err := e.objs.Settings.Lookup(uint32(0), &cfg); err != nil {
		return Off, fmt.Errorf("read enforcement mode: %w", err)
	}
	return Mode(cfg.Mode), nil
}

// Entries returns the enforced rules, indexed as Record.Rule.
func (e *Enforcer) Entries() []Entry { return e.entries }

// Arm lets the kernel signal in the cgroup with that kernfs id. Only arm a
// cgroup whose container was checked not to be protected.
func (e *Enforcer) Arm(cgroupID uint64) error {
	if err := e.objs.Armed.Put(cgroupID, uint32(1)); err != nil {
		return fmt.Errorf("arm cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// Disarm stops the kernel signalling in the cgroup.
func (e *Enforcer) Disarm(cgroupID uint64) error {
	if err := e.objs.Armed.Delete(cgroupID); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("disarm cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// Take returns and removes the record of pid's last enforced exec.
func (e *Enforcer) Take(pid uint32) (Record, bool, error) {
	var raw bpf.EnforceEnforceRecord
	if err := e.objs.Records.LookupAndDelete(pid, &raw); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return Record{}, false, nil
		}
		return Record{}, false, fmt.Errorf("read enforcement record of pid %d: %w", pid, err)
	}
	return decode(&raw), true, nil
}

// Peek returns the record of pid's last enforced exec and leaves it.
func (e *Enforcer) Peek(pid uint32) (Record, bool, error) {
	var raw bpf.EnforceEnforceRecord
	if err := e.objs.Records.Lookup(pid, &raw); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return Record{}, false, nil
		}
		return Record{}, false, fmt.Errorf("read enforcement record of pid %d: %w", pid, err)
	}
	return decode(&raw), true, nil
}

// Stale takes the records at least age old that nobody took: decisions
// whose exec event user space never saw (the sensor's ring buffer was
// full). A record a newer exec of the same pid replaced meanwhile is left.
func (e *Enforcer) Stale(age time.Duration) ([]Record, error) {
	now := BootNow()
	var pid uint32
	var raw bpf.EnforceEnforceRecord
	var old []uint32
	it := e.objs.Records.Iterate()
	for it.Next(&pid, &raw) {
		if now-raw.Ts >= uint64(age) {
			old = append(old, pid)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list enforcement records: %w", err)
	}
	var out []Record
	for _, pid := range old {
		r, found, err := e.Take(pid)
		if err != nil {
			return out, err
		}
		if !found {
			continue
		}
		if now-r.BootNanos < uint64(age) {
			// Replaced by a newer exec between the listing and the take.
			raw := encode(r)
			if err := e.objs.Records.Update(pid, &raw, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
				return out, fmt.Errorf("put back enforcement record of pid %d: %w", pid, err)
			}
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func encode(r Record) bpf.EnforceEnforceRecord {
	out := bpf.EnforceEnforceRecord{Ts: r.BootNanos, ExitTs: r.ExitNanos, CgroupId: r.CgroupID, Err: r.Err, Pid: r.PID,
		Signal: uint32(r.Signal), Rule: uint32(r.Rule)}
	for i, o := range outcomes {
		if o == r.Outcome && o != "" {
			out.Outcome = uint32(i)
		}
	}
	if r.ByPath {
		out.ByPath = 1
	}
	for i := 0; i < len(r.Comm) && i < len(out.Comm)-1; i++ {
		out.Comm[i] = int8(r.Comm[i])
	}
	for i := 0; i < len(r.Path) && i < len(out.Path)-1; i++ {
		out.Path[i] = int8(r.Path[i])
	}
	return out
}

func decode(r *bpf.EnforceEnforceRecord) Record {
	out := Record{Rule: int(r.Rule), PID: r.Pid, Signal: rules.Signal(r.Signal), Err: r.Err, ByPath: r.ByPath != 0,
		CgroupID: r.CgroupId, Comm: cstr(r.Comm[:]), Path: cstr(r.Path[:]), BootNanos: r.Ts, ExitNanos: r.ExitTs}
	if int(r.Outcome) < len(outcomes) {
		out.Outcome = outcomes[r.Outcome]
	}
	if out.Outcome == "" {
		out.Outcome = Outcome(fmt.Sprintf("unknown outcome %d", r.Outcome))
	}
	return out
}

func cstr(b []int8) string {
	bs := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
	for i, c := range bs {
		if c == 0 {
			return string(bs[:i])
		}
	}
	return string(bs)
}

// Stats sums the kernel counters over CPUs.
func (e *Enforcer) Stats() (Stats, error) {
	var s Stats
	dst := []*uint64{&s.Matched, &s.Signalled, &s.DryRun, &s.BudgetExhausted, &s.Failed, &s.Unarmed}
	var perCPU []uint64
	for i, p := range dst {
		if err := e.objs.Stats.Lookup(uint32(i), &perCPU); err != nil {
			return Stats{}, fmt.Errorf("read enforcement counters: %w", err)
		}
		for _, v := range perCPU {
			*p += v
		}
	}
	return s, nil
}

// Close detaches the programs and frees the maps: nothing is enforced
// any more.
func (e *Enforcer) Close() error {
	var errs []error
	for _, l := range e.links {
		errs = append(errs, l.Close())
	}
	errs = append(errs, e.objs.Close())
	return errors.Join(errs...)
}

// BootNow is CLOCK_BOOTTIME now, the clock of Record's timestamps.
func BootNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano())
}
