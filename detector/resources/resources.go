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
	CPUFor            time.Duration `yaml:"cpu_for"`             // how long above CPUPercent before alerting; default 30s
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
	mode     cgroup.Mode
	mounts   cgroup.Mounts
	procRoot string
	log      *slog.Logger
	state    map[string]*state
}

type sample struct {
	t   time.Time
	cpu uint64
	mem int64
}

type state struct {
	dirs      cgroup.Dirs
	last      sample
	highSince sample // first sample of the current high-CPU episode; zero t when not high
	cpuFired  bool
	mem       []sample // samples within the memory window
	memFired  bool
	seen      bool
}

// New returns a monitor of the containers src lists.
func New(cfg Config, src Lister, mode cgroup.Mode, mounts cgroup.Mounts, log *slog.Logger) *Monitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Monitor{cfg: cfg.WithDefaults(), src: src, mode: mode, mounts: mounts, procRoot: "/proc", log: log, state: map[string]*state{}}
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
			dirs, err := cgroup.DirsFor(m.mode, m.mounts, b)
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
func (m *Monitor) step(id string, st *state, s sample) []event.Event {
	var out []event.Event
	base := event.Event{Time: s.t, Container: event.Container{ID: id}}
	if st.seen && s.t.After(st.last.t) && s.cpu >= st.last.cpu {
		pct := float64(s.cpu-st.last.cpu) / float64(s.t.Sub(st.last.t).Nanoseconds()) * 100
		if pct >= m.cfg.CPUPercent {
			if st.highSince.t.IsZero() {
				st.highSince = st.last
			}
			dur := s.t.Sub(st.highSince.t)
			if dur >= m.cfg.CPUFor && !st.cpuFired {
				st.cpuFired = true
				ev := base
				ev.Type = event.CPUHigh
				ev.CPUPercent = float64(s.cpu-st.highSince.cpu) / float64(dur.Nanoseconds()) * 100
				ev.CPUSeconds = dur.Seconds()
				out = append(out, ev)
			}
		} else {
			st.highSince = sample{}
			st.cpuFired = false
		}
	}
	// Memory: growth over the minimum of the window.
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
	if growth >= m.cfg.MemoryGrowthBytes && !st.memFired {
		st.memFired = true
		ev := base
		ev.Type = event.MemoryGrowth
		ev.MemoryBytes = s.mem
		ev.MemoryGrowthBytes = growth
		out = append(out, ev)
	} else if growth < m.cfg.MemoryGrowthBytes/2 {
		st.memFired = false
	}
	st.last, st.seen = s, true
	return out
}
