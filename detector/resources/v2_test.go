package resources

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector/cgroup"
	"github.com/riposte-sec/riposte/detector/event"
)

// recordedScope is a container cgroup of the recorded v2 tree in the
// cgroup package's testdata (Docker, systemd driver).
const (
	recordedID    = "3f1c9d0e8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d"
	recordedScope = "system.slice/docker-" + recordedID + ".scope"
)

// v2Host copies the recorded scope into a temporary unified tree and a
// /proc whose PID 77 is in it, so that a test can rewrite usage_usec.
func v2Host(t *testing.T) (proc, root, scope string) {
	t.Helper()
	proc, root = t.TempDir(), t.TempDir()
	scope = filepath.Join(root, recordedScope)
	if err := os.MkdirAll(scope, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cpu.stat", "memory.current", "memory.stat"} {
		b, err := os.ReadFile(filepath.Join("../cgroup/testdata/v2", recordedScope, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(scope, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(proc, "77"), 0o755); err != nil {
		t.Fatal(err)
	}
	content := "4:cpu,cpuacct:/v1/elsewhere\n0::/" + recordedScope + "\n"
	if err := os.WriteFile(filepath.Join(proc, "77", "cgroup"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return proc, root, scope
}

var usageLine = regexp.MustCompile(`(?m)^usage_usec \d+$`)

// setUsage rewrites usage_usec in the recorded cpu.stat, keeping its other
// lines.
func setUsage(t *testing.T, scope string, usec uint64) {
	t.Helper()
	p := filepath.Join(scope, "cpu.stat")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !usageLine.Match(b) {
		t.Fatalf("%s has no usage_usec line", p)
	}
	b = usageLine.ReplaceAll(b, []byte(fmt.Sprintf("usage_usec %d", usec)))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCPURateFromV2UsageUsec drives the monitor with two samples of a v2
// cpu.stat and checks the CPU percentage cpu_high reports: usage_usec
// delta over wall time, 100 = one core.
func TestCPURateFromV2UsageUsec(t *testing.T) {
	cases := []struct {
		name      string
		deltaUsec uint64
		elapsed   time.Duration
		want      float64
	}{
		{"three quarters of a core", 1_500_000, 2 * time.Second, 75},
		{"two cores nearly full", 3_800_000, 2 * time.Second, 190},
		{"a quarter over one second", 250_000, time.Second, 25},
		{"idle-ish over ten seconds", 100_000, 10 * time.Second, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proc, root, scope := v2Host(t)
			mounts := cgroup.Mounts{V2: root, V1: map[string]string{}}
			place, err := cgroup.PlacementFor(mounts, []byte("cpu memory pids\n"))
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Interval: c.elapsed, CPUPercent: 0.5, CPUFor: c.elapsed, CPUMinSamples: 1, MemoryGrowthBytes: 1 << 40}
			m := New(cfg, list{{ID: recordedID, Pid: 77, Running: true, Known: true}}, place, mounts, nil)
			m.procRoot = proc
			t0 := time.Unix(5000, 0)
			const start = 1843211 * 2 // the recorded scope's usage_usec
			setUsage(t, scope, start)
			if evs := m.Sample(t0); len(evs) != 0 {
				t.Fatalf("first sample: %+v, want no event", evs)
			}
			setUsage(t, scope, start+c.deltaUsec)
			evs := m.Sample(t0.Add(c.elapsed))
			if len(evs) != 1 || evs[0].Type != event.CPUHigh {
				t.Fatalf("second sample: %+v, want one cpu_high", evs)
			}
			if math.Abs(evs[0].CPUPercent-c.want) > 1e-9 || evs[0].CPUSeconds != c.elapsed.Seconds() {
				t.Fatalf("cpu_high %.6f%% over %vs, want %v%% over %v", evs[0].CPUPercent, evs[0].CPUSeconds, c.want, c.elapsed)
			}
		})
	}
}

// TestMemoryGrowthFromV2 reads memory.current minus inactive_file: growth
// of memory.current with inactive_file unchanged is working-set growth.
func TestMemoryGrowthFromV2(t *testing.T) {
	proc, root, scope := v2Host(t)
	mounts := cgroup.Mounts{V2: root, V1: map[string]string{}}
	place := cgroup.Placement{CPU: cgroup.V2, Memory: cgroup.V2}
	m := New(Config{Interval: time.Second, MemoryGrowthBytes: 64 << 20, MemoryWindow: time.Minute}, list{{ID: recordedID, Pid: 77, Running: true, Known: true}}, place, mounts, nil)
	m.procRoot = proc
	t0 := time.Unix(5000, 0)
	if evs := m.Sample(t0); len(evs) != 0 {
		t.Fatalf("first sample: %+v", evs)
	}
	const recordedCurrent, recordedInactive = 17108992, 6561792
	if err := os.WriteFile(filepath.Join(scope, "memory.current"), []byte(fmt.Sprintf("%d\n", recordedCurrent+(100<<20))), 0o644); err != nil {
		t.Fatal(err)
	}
	evs := m.Sample(t0.Add(time.Second))
	if len(evs) != 1 || evs[0].Type != event.MemoryGrowth {
		t.Fatalf("second sample: %+v, want one memory_growth", evs)
	}
	if evs[0].MemoryGrowthBytes != 100<<20 || evs[0].MemoryBytes != recordedCurrent+(100<<20)-recordedInactive {
		t.Fatalf("memory_growth = growth %d, bytes %d", evs[0].MemoryGrowthBytes, evs[0].MemoryBytes)
	}
}
