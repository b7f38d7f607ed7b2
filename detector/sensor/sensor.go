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
}

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

// Filtered returns how many open events the kernel filter dropped
// (SkipLibraryReads).
func (s *Sensor) Filtered() (uint64, error) {
	const evOpen = 4 // enum event_type in sensor.c
	var perCPU []uint64
	if err := s.objs.Filtered.Lookup(uint32(evOpen), &perCPU); err != nil {
		return 0, fmt.Errorf("read filter counter: %w", err)
	}
	var sum uint64
	for _, v := range perCPU {
		sum += v
	}
	return sum, nil
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
