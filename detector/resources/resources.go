package resources

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/riposte-sec/riposte/detector/cgroup"
	"github.com/riposte-sec/riposte/detector/containers"
	"github.com/riposte-sec/riposte/detector/event"
)

// Config holds the thresholds. Zero values take the defaults.
type Config struct {
	Interval          time.Duration `yaml:"interval"`            // sampling period; default 1s
	CPUPercent        float64       `yaml:"cpu_percent"`         // 100 = one full core; default 90
	CPUFor            time.Duration `yaml:"cpu_for"`             // the sliding window whose mean must reach CPUPercent; default 30s
	CPUMinSamples     int           `yaml:"cpu_min_samples"`     // samples the window must hold before it may fire; default half of CPUFor/Interval, at least 2
	MemoryGrowthBytes int64         `yaml:"memory_growth_bytes"` // default 256 MiB
	MemoryWindow      time.Duration `yaml:"memory_window"`       // growth is measured against the minimum over this window; default 60s
}

// WithDefaults fills zero fields with the defaults.
func (c Config) WithDefaults() Config {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.CPUPercent == 0 {
		c.CPUPercent = 90
	}
	if c.CPUFor == 0 {
		c.CPUFor = 30 * time.Second
	}
	if c.CPUMinSamples == 0 {
		c.CPUMinSamples = max(2, int(c.CPUFor/c.Interval)/2)
	}
	if c.MemoryGrowthBytes == 0 {
		c.MemoryGrowthBytes = 256 << 20
	}
	if c.MemoryWindow == 0 {
		c.MemoryWindow = time.Minute
	}
	return c
}

// Validate reports nonsensical thresholds.
func (c Config) Validate() error {
	switch {
	case c.Interval < 0 || c.CPUFor < 0 || c.MemoryWindow < 0:
		return fmt.Errorf("resources: durations must not be negative")
	case c.CPUMinSamples < 0:
		return fmt.Errorf("resources: cpu_min_samples must not be negative")
	case c.CPUPercent < 0:
		return fmt.Errorf("resources: cpu_percent must not be negative")
	case c.MemoryGrowthBytes < 0:
		return fmt.Errorf("resources: memory_growth_bytes must not be negative")
	}
	return nil
}

// Lister lists running containers (containers.Cache implements it).
type Lister interface {
	Running() []containers.Info
}

// Monitor samples containers.
type Monitor struct {
	cfg      Config
	src      Lister
	place    cgroup.Placement
	mounts   cgroup.Mounts
	procRoot string
	now      func() time.Time // the clock of process snapshots; time.Now, a fake in tests
	log      *slog.Logger
	state    map[string]*state
}

type sample struct {
	t   time.Time
	cpu uint64
	mem int64
}

type state struct {
	dirs     cgroup.Dirs
	cpu      []sample // the CPU window: the newest samples covering CPUFor, and the one before them
	cpuFired bool
	cpuProcs *procSnap // per-process CPU when the window's mean first reached half the threshold; nil while cold
	mem      []sample  // samples within the memory window
	memFired bool
	memProcs *procSnap // per-process RSS when growth first reached half the threshold; nil while cold
}

// New returns a monitor of the containers src lists, reading each
// controller from the hierarchy place names (cgroup.ReadPlacement).
func New(cfg Config, src Lister, place cgroup.Placement, mounts cgroup.Mounts, log *slog.Logger) *Monitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Monitor{cfg: cfg.WithDefaults(), src: src, place: place, mounts: mounts, procRoot: "/proc", now: time.Now, log: log, state: map[string]*state{}}
}

// Run samples every Interval until ctx ends, calling emit for each anomaly.
func (m *Monitor) Run(ctx context.Context, emit func(event.Event)) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			for _, ev := range m.Sample(now) {
				emit(ev)
			}
		}
	}
}

// Sample reads every running container once and returns the anomalies
// found.
func (m *Monitor) Sample(now time.Time) []event.Event {
	var out []event.Event
	live := map[string]bool{}
	for _, c := range m.src.Running() {
		if c.Pid <= 0 {
			continue
		}
		live[c.ID] = true
		st := m.state[c.ID]
		if st == nil {
			b, err := os.ReadFile(fmt.Sprintf("%s/%d/cgroup", m.procRoot, c.Pid))
			if err != nil {
				continue
			}
			dirs, err := cgroup.DirsIn(m.place, m.mounts, b)
			if err != nil {
				m.log.Debug("locate container cgroup", "id", c.ID, "err", err)
				continue
			}
			st = &state{dirs: dirs}
			m.state[c.ID] = st
		}
		u, err := cgroup.Read(st.dirs)
		if err != nil {
			delete(m.state, c.ID) // gone or moved; locate again next time
			continue
		}
		out = append(out, m.step(c.ID, st, sample{t: now, cpu: u.CPUNanos, mem: u.MemoryBytes})...)
	}
	for id := range m.state {
		if !live[id] {
			delete(m.state, id)
		}
	}
	return out
}

// step advances one container's state machine with a new sample.
//
// CPU: the window holds the samples of the last CPUFor and the one just
// before, so that it spans CPUFor once full. cpu_high fires once the window
// spans CPUFor, holds at least CPUMinSamples samples and its mean (CPU time
// used over wall time elapsed, first to last sample) is at least
// CPUPercent; one slow sample lowers the mean a little instead of
// restarting the count. It fires once per episode and re-arms when the mean
// falls below the threshold. A counter that goes backwards (the cgroup was
// recreated) empties the window.
//
// Memory: growth is the working set now minus the minimum over
// MemoryWindow; memory_growth fires once it reaches MemoryGrowthBytes and
// re-arms under half of it.
//
// While a window is warm (CPU mean or memory growth at half the threshold)
// the container's processes are read from /proc, so that the alert names
// those that used the CPU or grew.
func (m *Monitor) step(id string, st *state, s sample) []event.Event {
	var out []event.Event
	base := event.Event{Time: s.t, Container: event.Container{ID: id}}

	if n := len(st.cpu); n > 0 && (!s.t.After(st.cpu[n-1].t) || s.cpu < st.cpu[n-1].cpu) {
		st.cpu, st.cpuProcs = nil, nil
	}
	st.cpu = append(st.cpu, s)
	for len(st.cpu) > 2 && s.t.Sub(st.cpu[1].t) >= m.cfg.CPUFor {
		st.cpu = st.cpu[1:]
	}
	if first := st.cpu[0]; len(st.cpu) > 1 {
		span := s.t.Sub(first.t)
		mean := float64(s.cpu-first.cpu) / float64(span.Nanoseconds()) * 100
		switch {
		case mean < m.cfg.CPUPercent/2:
			st.cpuProcs = nil
		case st.cpuProcs == nil:
			snap := m.procSnap(st.dirs.CPU)
			st.cpuProcs = &snap
		}
		if mean < m.cfg.CPUPercent {
			st.cpuFired = false
		} else if span >= m.cfg.CPUFor && len(st.cpu)-1 >= m.cfg.CPUMinSamples && !st.cpuFired {
			st.cpuFired = true
			ev := base
			ev.Type = event.CPUHigh
			ev.CPUPercent = mean
			ev.CPUSeconds = span.Seconds()
			ev.TopProcesses = topCPU(*st.cpuProcs, m.procSnap(st.dirs.CPU), 3)
			setTop(&ev)
			out = append(out, ev)
		}
	}

	keep := st.mem[:0]
	for _, x := range st.mem {
		if s.t.Sub(x.t) <= m.cfg.MemoryWindow {
			keep = append(keep, x)
		}
	}
	st.mem = append(keep, s)
	low := s.mem
	for _, x := range st.mem {
		low = min(low, x.mem)
	}
	growth := s.mem - low
	switch {
	case growth < m.cfg.MemoryGrowthBytes/2:
		st.memProcs = nil
	case st.memProcs == nil && growth < m.cfg.MemoryGrowthBytes:
		snap := m.procSnap(st.dirs.Memory)
		st.memProcs = &snap
	}
	if growth >= m.cfg.MemoryGrowthBytes && !st.memFired {
		st.memFired = true
		ev := base
		ev.Type = event.MemoryGrowth
		ev.MemoryBytes = s.mem
		ev.MemoryGrowthBytes = growth
		// Grown past the threshold within one sample: no earlier
		// snapshot, every process's resident set counts as growth.
		before := procSnap{}
		if st.memProcs != nil {
			before = *st.memProcs
		}
		ev.TopProcesses = topRSS(before, m.procSnap(st.dirs.Memory), 3)
		setTop(&ev)
		out = append(out, ev)
	} else if growth < m.cfg.MemoryGrowthBytes/2 {
		st.memFired = false
	}
	return out
}

// setTop makes the first of the top processes the event's process, so that
// proc.name and proc.pid name it.
func setTop(ev *event.Event) {
	if len(ev.TopProcesses) > 0 {
		ev.PID, ev.Comm = ev.TopProcesses[0].PID, ev.TopProcesses[0].Comm
	}
}
