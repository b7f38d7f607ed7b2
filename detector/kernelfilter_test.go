package detector_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/event"
	rtestutil "github.com/riposte-sec/riposte/internal/testutil"
)

// TestKernelFiltersTypesNoRuleNeeds: with rules that use no chmod event
// the kernel drops chmod events and counts them (none reaches user space);
// a subscription (what a capture makes) turns them on, and they are
// dropped again once it ends.
func TestKernelFiltersTypesNoRuleNeeds(t *testing.T) {
	cli := rtestutil.DockerClient(t)
	t.Parallel()
	dir := t.TempDir()
	const rule = `- rule: Marker read
  desc: the test's marker, read after the commands under test
  condition: evt.type == "open" and fd.name == "/tmp/marker" and container.id != "host"
  output: marker read (container=%container.id)
  priority: Notice
`
	if err := os.WriteFile(filepath.Join(dir, "marker.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	d, got := startDetectorWith(t, detector.Config{DisableResources: true, Rules: []string{dir}},
		detector.Deps{Docker: cli, Registerer: reg})
	id := rtestutil.RunContainer(t, cli, rtestutil.UniqueName("det-kfilter"), nil)
	dockerExec(t, cli, id, false, "sh", "-c", "echo x > /tmp/f; echo m > /tmp/marker")

	chmodEvents := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather metrics: %v", err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "riposte_detector_events_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "type" && l.GetValue() == event.Chmod {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	// markers waits for the n-th marker alert: the events before it in the
	// ring buffer have been counted by then.
	markers := func(n int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			var seen int
			for _, a := range got.snapshot() {
				if a.Rule == "Marker read" && a.Field("container.id") == id[:12] {
					seen++
				}
			}
			if seen >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d marker alerts; got %v", seen, n, ruleNames(got.snapshot()))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	chmods := "chmod 600 /tmp/f; chmod 644 /tmp/f; chmod 4755 /tmp/f; cat /tmp/marker"

	// No rule needs chmod: dropped in the kernel, counted.
	before := d.Stats().KernelFilteredByType[event.Chmod]
	dockerExec(t, cli, id, false, "sh", "-c", chmods)
	markers(1)
	if n := d.Stats().KernelFilteredByType[event.Chmod] - before; n < 3 {
		t.Errorf("kernel filtered %d chmod events, want at least the 3 of the container", n)
	}
	if n := chmodEvents(); n != 0 {
		t.Errorf("%v chmod events reached user space with no rule and no capture needing them", n)
	}

	// A subscription (a capture) turns them on.
	ch, cancel := d.Subscribe(id[:12], 4096)
	dockerExec(t, cli, id, false, "sh", "-c", chmods)
	markers(2)
	var setuid bool
	timeout := time.After(10 * time.Second)
	for !setuid {
		select {
		case ev := <-ch:
			setuid = ev.Type == event.Chmod && ev.Path == "/tmp/f" && ev.Mode == 0o4755
		case <-timeout:
			t.Fatal("the subscriber saw no chmod 4755 of /tmp/f")
		}
	}
	cancel()
	seen := chmodEvents()
	if seen < 3 {
		t.Errorf("%v chmod events reached user space during the subscription, want at least 3", seen)
	}

	// Off again once the subscription ends.
	before = d.Stats().KernelFilteredByType[event.Chmod]
	dockerExec(t, cli, id, false, "sh", "-c", chmods)
	markers(3)
	if n := d.Stats().KernelFilteredByType[event.Chmod] - before; n < 3 {
		t.Errorf("after the subscription the kernel filtered %d chmod events, want at least 3", n)
	}
	if n := chmodEvents(); n != seen {
		t.Errorf("chmod events went from %v to %v after the subscription ended", seen, n)
	}
}
