package resources

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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
	m := New(cfg, list{{ID: id, Pid: 77, Running: true, Known: true}}, cgroup.Placement{CPU: cgroup.V1, Memory: cgroup.V1}, mounts, nil)
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
	m := New(Config{}, list{{ID: "gone", Pid: 999999, Running: true}, {ID: "nopid"}}, cgroup.Placement{CPU: cgroup.V1, Memory: cgroup.V1}, cgroup.Mounts{}, nil)
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

// cpuSeries feeds one container a CPU percentage per second and returns the
// seconds at which cpu_high fired.
func cpuSeries(t *testing.T, cfg Config, at []int, pcts []float64) []int {
	t.Helper()
	const id = "c1"
	h := newFakeHost(t, id, 77)
	mounts := cgroup.Mounts{V1: map[string]string{"cpuacct": filepath.Join(h.cg, "cpuacct"), "memory": filepath.Join(h.cg, "memory")}}
	m := New(cfg, list{{ID: id, Pid: 77, Running: true, Known: true}}, cgroup.Placement{CPU: cgroup.V1, Memory: cgroup.V1}, mounts, nil)
	m.procRoot = h.proc
	t0 := time.Unix(1000, 0)
	var cpu uint64
	var fired []int
	prev := 0
	for i, sec := range at {
		cpu += uint64(pcts[i] / 100 * float64(sec-prev) * 1e9)
		prev = sec
		h.set(id, cpu, 1000)
		for _, ev := range m.Sample(t0.Add(time.Duration(sec) * time.Second)) {
			if ev.Type == event.CPUHigh {
				fired = append(fired, sec)
			}
		}
	}
	return fired
}

func seconds(from, to int) []int {
	var out []int
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// TestCPUSlidingWindow: the CPU rule fires on the window's mean, so a loop
// at 91-93 % of a core with an occasional slow sample fires, a steady 85 %
// does not, and a window made of too few samples does not.
func TestCPUSlidingWindow(t *testing.T) {
	cfg := Config{Interval: time.Second, CPUPercent: 90, CPUFor: 10 * time.Second}
	tests := []struct {
		name string
		cfg  Config
		at   []int
		pcts []float64
		want []int
	}{
		{"91-93% with one sample at 85%", cfg, seconds(0, 12),
			[]float64{0, 92, 92, 85, 93, 92, 92, 91, 92, 93, 92, 92, 92}, []int{10}},
		{"steady 85%", cfg, seconds(0, 15),
			[]float64{0, 85, 85, 85, 85, 85, 85, 85, 85, 85, 85, 85, 85, 85, 85, 85}, nil},
		{"busy, idle, busy again: two episodes", cfg, seconds(0, 40),
			append(append(append([]float64{0}, repeat(100, 12)...), repeat(0, 10)...), repeat(100, 18)...), []int{10, 31}},
		{"one 10s gap is one sample, not enough", Config{Interval: time.Second, CPUPercent: 90, CPUFor: 10 * time.Second, CPUMinSamples: 5},
			[]int{0, 10, 11, 12, 13, 14, 15}, []float64{0, 100, 100, 100, 100, 100, 100}, []int{14}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cpuSeries(t, tt.cfg, tt.at, tt.pcts); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("cpu_high at %v s, want %v", got, tt.want)
			}
		})
	}
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestResourceEventsNameProcesses: cpu_high names the process that used the
// CPU over the window, memory_growth the one whose resident set grew.
func TestResourceEventsNameProcesses(t *testing.T) {
	const id = "c1"
	h := newFakeHost(t, id, 77)
	mounts := cgroup.Mounts{V1: map[string]string{"cpuacct": filepath.Join(h.cg, "cpuacct"), "memory": filepath.Join(h.cg, "memory")}}
	cfg := Config{Interval: time.Second, CPUPercent: 80, CPUFor: 4 * time.Second, MemoryGrowthBytes: 100 << 20, MemoryWindow: time.Minute}
	m := New(cfg, list{{ID: id, Pid: 77, Running: true, Known: true}}, cgroup.Placement{CPU: cgroup.V1, Memory: cgroup.V1}, mounts, nil)
	m.procRoot = h.proc
	t0 := time.Unix(1000, 0)
	now := t0
	m.now = func() time.Time { return now }
	page := int64(os.Getpagesize())
	// pid 77 the entrypoint, 80 an idle shell, 90 a miner whose comm has
	// a space and a parenthesis.
	proc := func(pid int, comm string, ticks uint64, rss int64) {
		dir := filepath.Join(h.proc, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := fmt.Sprintf("%d (%s) R 1 1 1 0 -1 0 0 0 0 0 %d 0 0 0 20 0 1 0 %d 0 %d 0", pid, comm, ticks, 500+pid, rss/page)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"cpuacct/docker", "memory/docker"} {
		if err := os.WriteFile(filepath.Join(h.cg, d, id, "cgroup.procs"), []byte("77\n80\n90\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cpu uint64
	mem := int64(10 << 20)
	var got []event.Event
	for sec := 0; sec <= 6; sec++ {
		now = t0.Add(time.Duration(sec) * time.Second)
		cpu += 95e7 // 95 % of a core
		proc(77, "sleep", 1, 1<<20)
		proc(80, "sh", 2, 2<<20)
		proc(90, "xm rig) x", uint64(sec*95), 4<<20)
		h.set(id, cpu, mem)
		got = append(got, m.Sample(now)...)
	}
	if len(got) != 1 || got[0].Type != event.CPUHigh {
		t.Fatalf("events %+v, want one cpu_high", got)
	}
	top := got[0].TopProcesses
	if len(top) != 3 || top[0].PID != 90 || top[0].Comm != "xm rig) x" || top[0].CPUPercent < 90 || top[0].CPUPercent > 100 {
		t.Fatalf("top processes %+v, want xm rig) x (90) first at ~95%%", top)
	}
	if got[0].PID != 90 || got[0].Comm != "xm rig) x" || top[1].CPUPercent != 0 {
		t.Fatalf("event process %d %q, second %+v", got[0].PID, got[0].Comm, top[1])
	}

	// Memory: the shell grows by 60 MiB (warm), then by 60 MiB more.
	got = nil
	for i, grow := range []int64{0, 60 << 20, 120 << 20} {
		now = now.Add(time.Second)
		proc(80, "sh", 2, 2<<20+grow)
		h.set(id, cpu+uint64(i), mem+grow)
		got = append(got, m.Sample(now)...)
	}
	if len(got) != 1 || got[0].Type != event.MemoryGrowth {
		t.Fatalf("events %+v, want one memory_growth", got)
	}
	if top := got[0].TopProcesses; len(top) == 0 || top[0].PID != 80 || top[0].RSSGrowthBytes != 60<<20 || top[0].RSSBytes != 122<<20 {
		t.Fatalf("top processes %+v, want sh (80) grown by 60 MiB since warm", got[0].TopProcesses)
	}
}

// TestParseStat reads /proc/PID/stat, whose comm may hold spaces and
// parentheses, and refuses malformed content.
func TestParseStat(t *testing.T) {
	u, err := parseStat([]byte("90 (a) b (c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 555 0 10 0"))
	if err != nil || u.comm != "a) b (c" || u.ticks != 10 || u.start != 555 || u.rss != 10*int64(os.Getpagesize()) {
		t.Fatalf("parseStat = %+v, %v", u, err)
	}
	for _, bad := range []string{"", "90 a R", "90 (a) R 1 2", "90 (a) R 1 1 1 0 -1 0 0 0 0 0 x 3 0 0 20 0 1 0 555 0 10 0"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q): want an error", bad)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("90 (a) b (c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 555 0 10 0"))
	f.Add([]byte("1 (systemd) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 9 10 11 12"))
	f.Add([]byte(")("))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := parseStat(b)
		if err == nil && (!bytes.Contains(b, []byte("("+u.comm+")")) || u.rss < 0) {
			t.Fatalf("parseStat(%q) = %+v", b, u)
		}
	})
}
