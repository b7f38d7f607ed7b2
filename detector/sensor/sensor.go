package sensor

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/bpf"
	"github.com/riposte-sec/riposte/detector/cgroup"
	"github.com/riposte-sec/riposte/detector/event"
)

// BTFPath is where the kernel publishes its BTF.
const BTFPath = "/sys/kernel/btf/vmlinux"

// DefaultRingBufferBytes is the ring buffer size when Options leaves it 0.
const DefaultRingBufferBytes = 16 << 20

// Options configure Open.
type Options struct {
	// RingBufferBytes is the ring buffer size: a power of two, at least one
	// page. 0 means DefaultRingBufferBytes.
	RingBufferBytes int
	// Cgroup selects how containers are attributed: V1 reads the pids
	// controller's cgroup, V2 the unified hierarchy's.
	Cgroup cgroup.Mode
	// WakeupBytes, when not 0, batches wakeups: only exec events wake the
	// reader at once, other events wait until this many bytes are pending
	// or until the reader's next poll (Read with a deadline). 0 wakes the
	// reader for every event.
	WakeupBytes int
	// BatchExec, with WakeupBytes, batches exec events too (they otherwise
	// wake the reader at once).
	BatchExec bool
	// IgnorePID is a process whose events the kernel drops (the detector
	// itself, so that reading /proc does not feed back). 0 ignores none.
	IgnorePID uint32
	// SkipLibraryReads drops, in the kernel, read-only opens below /lib,
	// /lib64, /usr/lib, /usr/lib64 and locale data, and of /etc/ld.so.cache:
	// a dozen per exec that no rule looks at. Counted by Filtered.
	SkipLibraryReads bool
	// Wanted says which events of each kernel type are sent (see Want);
	// the others are dropped in the kernel and counted by Filtered. nil
	// sends every event. Exec, fork and exit are always sent.
	Wanted map[string]Want
}

// Want is which events of one type the kernel sends: a mask of WantOK and
// WantFailed (WANT_* in sensor.c).
type Want uint32

const (
	// WantOK sends successful calls (and connects in progress).
	WantOK Want = 1 << iota
	// WantFailed sends calls that failed (a negative result, -errno). A
	// non-blocking accept that found no connection (EAGAIN) is never
	// sent, whatever Want says: servers poll with it; it is counted by
	// Filtered as an accept.
	WantFailed
	// WantAll sends every event of the type.
	WantAll = WantOK | WantFailed
)

// AlwaysSent are the event types the kernel sends whatever Wanted says:
// the process table is built from them (chdir: each process's working
// directory, against which relative paths resolve).
var AlwaysSent = []string{event.Exec, event.Fork, event.Exit, event.Chdir}

// Sensor is the loaded and attached eBPF sensor.
type Sensor struct {
	objs  bpf.SensorObjects
	links []link.Link
	rd    *ringbuf.Reader
}

// Check reports, without loading anything, whether this process can run
// the sensor, with an error saying what is missing.
func Check() error {
	if os.Geteuid() != 0 {
		var caps unix.CapUserHeader = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&caps, &data[0]); err != nil || !hasCaps(data) {
			return fmt.Errorf("load eBPF sensor: needs root, or the capabilities CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN (running as uid %d)", os.Geteuid())
		}
	}
	if _, err := os.Stat(BTFPath); err != nil {
		return fmt.Errorf("load eBPF sensor: needs kernel BTF at %s (a kernel built with CONFIG_DEBUG_INFO_BTF=y): %w", BTFPath, err)
	}
	return nil
}

func hasCaps(d [2]unix.CapUserData) bool {
	has := func(c int) bool { return d[c/32].Effective&(1<<(uint(c)%32)) != 0 }
	return has(unix.CAP_BPF) && has(unix.CAP_PERFMON) && has(unix.CAP_SYS_ADMIN)
}

// Open loads and attaches the sensor.
func Open(opts Options) (*Sensor, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("load eBPF sensor: raise memlock limit: %w", err)
	}
	spec, err := bpf.LoadSensor()
	if err != nil {
		return nil, fmt.Errorf("load eBPF sensor: %w", err)
	}
	size := opts.RingBufferBytes
	if size == 0 {
		size = DefaultRingBufferBytes
	}
	if size < os.Getpagesize() || size&(size-1) != 0 {
		return nil, fmt.Errorf("load eBPF sensor: ring buffer size %d is not a power of two of at least one page", size)
	}
	spec.Maps[bpf.SensorMapEvents].MaxEntries = uint32(size)
	v2 := uint32(0)
	if opts.Cgroup == cgroup.V2 {
		v2 = 1
	}
	if err := spec.Variables[bpf.SensorVarCgroupV2].Set(v2); err != nil {
		return nil, fmt.Errorf("load eBPF sensor: set cgroup mode: %w", err)
	}
	if err := spec.Variables[bpf.SensorVarWakeupBytes].Set(uint64(opts.WakeupBytes)); err != nil {
		return nil, fmt.Errorf("load eBPF sensor: set wakeup threshold: %w", err)
	}
	execWakeup := uint32(1)
	if opts.BatchExec {
		execWakeup = 0
	}
	if err := spec.Variables[bpf.SensorVarExecWakeup].Set(execWakeup); err != nil {
		return nil, fmt.Errorf("load eBPF sensor: set exec wakeup: %w", err)
	}
	if err := spec.Variables[bpf.SensorVarSelfTgid].Set(opts.IgnorePID); err != nil {
		return nil, fmt.Errorf("load eBPF sensor: set own pid: %w", err)
	}
	skip := uint32(0)
	if opts.SkipLibraryReads {
		skip = 1
	}
	if err := spec.Variables[bpf.SensorVarSkipLibReads].Set(skip); err != nil {
		return nil, fmt.Errorf("load eBPF sensor: set library-read filter: %w", err)
	}
	s := &Sensor{}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load eBPF sensor: verifier rejected a program: %s", lastLines(fmt.Sprintf("%+v", ve), 12))
		}
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("load eBPF sensor: permission denied (needs root or CAP_BPF+CAP_PERFMON; kernel lockdown may forbid it): %w", err)
		}
		return nil, fmt.Errorf("load eBPF sensor: %w", err)
	}
	if err := s.SetWanted(opts.Wanted); err != nil {
		s.Close()
		return nil, fmt.Errorf("load eBPF sensor: %w", err)
	}
	progs := []struct {
		name string
		prog *ebpf.Program
	}{
		{"sched_process_exec", s.objs.HandleExec},
		{"sched_process_fork", s.objs.HandleFork},
		{"sched_process_exit", s.objs.HandleExit},
		{"sys_exit", s.objs.HandleSysExit},
	}
	for _, p := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p.prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("load eBPF sensor: attach tp_btf/%s: %w", p.name, err)
		}
		s.links = append(s.links, l)
	}
	s.rd, err = ringbuf.NewReader(s.objs.Events)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("load eBPF sensor: open ring buffer: %w", err)
	}
	return s, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ErrClosed is returned by Read after Close.
var ErrClosed = ringbuf.ErrClosed

// Read waits for the next record and stores it in rec (its buffer is
// reused). It returns ErrClosed once the sensor is closed.
func (s *Sensor) Read(rec *ringbuf.Record) error { return s.rd.ReadInto(rec) }

// Drops returns, per event type, how many events the kernel could not put
// in the full ring buffer since Open, summed over CPUs.
func (s *Sensor) Drops() (map[string]uint64, error) {
	out := map[string]uint64{}
	var perCPU []uint64
	for t := uint32(1); t < uint32(len(typeNames)); t++ {
		if err := s.objs.Drops.Lookup(t, &perCPU); err != nil {
			return nil, fmt.Errorf("read drop counters: %w", err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		out[typeNames[t]] = sum
	}
	return out, nil
}

// SetWanted changes, while the sensor runs, which events of each type the
// kernel sends (Options.Wanted; nil sends every event). A type not in w is
// not sent; an unknown type is an error, and nothing is changed.
func (s *Sensor) SetWanted(w map[string]Want) error {
	masks := make([]uint32, len(typeNames))
	known := map[string]uint32{}
	for t := 1; t < len(typeNames); t++ {
		known[typeNames[t]] = uint32(t)
		if w == nil {
			masks[t] = uint32(WantAll)
		}
	}
	for name, m := range w {
		t, ok := known[name]
		if !ok {
			return fmt.Errorf("set wanted events: %q is not a kernel event type", name)
		}
		masks[t] = uint32(m & WantAll)
	}
	for _, name := range AlwaysSent {
		masks[known[name]] = uint32(WantAll)
	}
	for t := uint32(1); t < uint32(len(typeNames)); t++ {
		if err := s.objs.Wanted.Update(t, masks[t], ebpf.UpdateAny); err != nil {
			return fmt.Errorf("set wanted events: %s: %w", typeNames[t], err)
		}
	}
	return nil
}

// Filtered returns, per event type, how many events the kernel dropped on
// purpose since Open: types or results not wanted (SetWanted), read-only
// library opens (SkipLibraryReads, counted as open), and non-blocking
// accepts that found no connection (counted as accept). Types with none
// are absent.
func (s *Sensor) Filtered() (map[string]uint64, error) {
	out := map[string]uint64{}
	var perCPU []uint64
	for t := uint32(1); t < uint32(len(typeNames)); t++ {
		if err := s.objs.Filtered.Lookup(t, &perCPU); err != nil {
			return nil, fmt.Errorf("read filter counters: %w", err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		if sum > 0 {
			out[typeNames[t]] = sum
		}
	}
	return out, nil
}

// Close detaches the programs and frees the maps; a blocked Read returns
// ErrClosed.
func (s *Sensor) Close() error {
	var errs []error
	if s.rd != nil {
		errs = append(errs, s.rd.Close())
	}
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	errs = append(errs, s.objs.Close())
	return errors.Join(errs...)
}

// SetDeadline makes a blocked Read return os.ErrDeadlineExceeded at t.
func (s *Sensor) SetDeadline(t time.Time) { s.rd.SetDeadline(t) }
