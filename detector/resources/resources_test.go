package resources

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector/cgroup"
	"github.com/riposte-sec/riposte/detector/containers"
	"github.com/riposte-sec/riposte/detector/event"
)

type list []containers.Info

func (l list) Running() []containers.Info { return l }

// fakeHost builds a /proc and a v1 cgroup tree for one container whose
// counters the test sets.
type fakeHost struct {
	t    *testing.T
	proc string
	cg   string
}

func newFakeHost(t *testing.T, id string, pid int) *fakeHost {
	h := &fakeHost{t: t, proc: t.TempDir(), cg: t.TempDir()}
	for _, d := range []string{filepath.Join(h.proc, fmt.Sprint(pid)), filepath.Join(h.cg, "cpuacct/docker", id), filepath.Join(h.cg, "memory/docker", id)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	content := fmt.Sprintf("3:cpuacct:/docker/%s\n2:memory:/docker/%s\n", id, id)
	if err := os.WriteFile(filepath.Join(h.proc, fmt.Sprint(pid), "cgroup"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *fakeHost) set(id string, cpuNanos uint64, mem int64) {
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	write(filepath.Join(h.cg, "cpuacct/docker", id, "cpuacct.usage"), fmt.Sprint(cpuNanos))
	write(filepath.Join(h.cg, "memory/docker", id, "memory.usage_in_bytes"), fmt.Sprint(mem))
	write(filepath.Join(h.cg, "memory/docker", id, "memory.stat"), "total_inactive_file 0\n")
}

func TestCPUAndMemoryEpisodes(t *testing.T) {
	const id = "c1"
	h := newFakeHost(t, id, 77)
	mounts := cgroup.Mounts{V1: map[string]string{"cpuacct": filepath.Join(h.cg, "cpuacct"), "memory": filepath.Join(h.cg, "memory")}}
	cfg := Config{Interval: time.Second, CPUPercent: 80, CPUFor: 3 * time.Second, MemoryGrowthBytes: 100, MemoryWindow: 10 * time.Second}
	m := New(cfg, list{{ID: id, Pid: 77, Running: true, Known: true}}, cgroup.V1, mounts, nil)
	m.procRoot = h.proc

	t0 := time.Unix(1000, 0)
	var cpu uint64
	mem := int64(1000)
	step := func(sec int, cpuPct float64, memDelta int64) []event.Event {
		cpu += uint64(cpuPct / 100 * 1e9)
		mem += memDelta
		h.set(id, cpu, mem)
		return m.Sample(t0.Add(time.Duration(sec) * time.Second))
	}
	want := func(evs []event.Event, types ...string) {
		t.Helper()
		if len(evs) != len(types) {
			t.Fatalf("got %d events %+v, want %v", len(evs), evs, types)
		}
		for i, ev := range evs {
			if ev.Type != types[i] || ev.Container.ID != id {
				t.Fatalf("event %d = %+v, want %s of %s", i, ev, types[i], id)
			}
		}
	}
	want(step(0, 0, 0))
	want(step(1, 95, 0)) // high for 1s
	want(step(2, 95, 0)) // 2s
	evs := step(3, 95, 0)
	want(evs, event.CPUHigh) // 3s: fire
	if evs[0].CPUSeconds != 3 || evs[0].CPUPercent < 94 || evs[0].CPUPercent > 96 {
		t.Fatalf("cpu_high = %+v", evs[0])
	}
	want(step(4, 95, 0))  // still high: once per episode
	want(step(5, 10, 0))  // back down: re-armed
	want(step(6, 100, 0)) // high again, counted from the sample at 5s
	want(step(7, 100, 0))
	want(step(8, 100, 0), event.CPUHigh)
	want(step(9, 100, 0))

	want(step(10, 0, 60))
	evs = step(11, 0, 60) // +120 over the window minimum
	want(evs, event.MemoryGrowth)
	if evs[0].MemoryGrowthBytes != 120 || evs[0].MemoryBytes != 1120 {
		t.Fatalf("memory_growth = %+v", evs[0])
	}
	want(step(12, 0, 10)) // still grown: once
	// The window slides past the minimum: growth falls under half, re-arms.
	for s := 13; s <= 25; s++ {
		want(step(s, 0, 0))
	}
	want(step(26, 0, 150), event.MemoryGrowth)
}

func TestSampleSkipsUnlocatable(t *testing.T) {
	m := New(Config{}, list{{ID: "gone", Pid: 999999, Running: true}, {ID: "nopid"}}, cgroup.V1, cgroup.Mounts{}, nil)
	m.procRoot = t.TempDir()
	if evs := m.Sample(time.Now()); len(evs) != 0 {
		t.Fatalf("events from containers that cannot be located: %+v", evs)
	}
}

func TestConfig(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Interval != time.Second || c.CPUPercent != 90 || c.CPUFor != 30*time.Second || c.MemoryGrowthBytes != 256<<20 || c.MemoryWindow != time.Minute {
		t.Fatalf("defaults = %+v", c)
	}
	for _, bad := range []Config{{CPUPercent: -1}, {CPUFor: -time.Second}, {MemoryGrowthBytes: -5}} {
		if bad.Validate() == nil {
			t.Errorf("%+v: want an error", bad)
		}
	}
}
