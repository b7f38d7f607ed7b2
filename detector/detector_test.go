package detector

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/riposte-sec/riposte/detector/event"
)

func TestNewValidatesConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative queue", Config{QueueSize: -1}, "detector: queue_size must be positive, got -1"},
		{"too many workers", Config{Workers: 1000}, "detector: workers must be between 1 and 64, got 1000"},
		{"ring not a power of two", Config{RingBufferBytes: 5000}, "detector: ring_buffer_bytes must be a power of two of at least 4096, got 5000"},
		{"unknown cgroup hierarchy", Config{Cgroup: "v3"}, `detector: cgroup must be auto, v1 or v2, got "v3"`},
		{"missing rules path", Config{Rules: []string{"/nonexistent/rules.yaml"}}, "read rules: stat /nonexistent/rules.yaml: no such file or directory"},
		{"enforce budget", Config{Enforce: EnforceConfig{MaxSignals: -2}}, "detector: enforce.max_signals must be positive or -1 (no limit), got -2"},
		{"enforce window", Config{Enforce: EnforceConfig{Window: time.Microsecond}}, "detector: enforce.window must be at least 1ms, got 1µs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, Deps{})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("New error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestNewReportsRuleErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(p, []byte("- rule: X\n  desc: d\n  condition: proc.nme == 1\n  output: o\n  priority: Warning\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{Rules: []string{dir}}, Deps{})
	if err == nil || !strings.Contains(err.Error(), p+`:3: rule "X": condition: unknown field proc.nme`) {
		t.Fatalf("error = %v", err)
	}
}

// TestNewEnforceNeedsProtection: enforcement arms only containers the
// docker integration said are not protected; without it New refuses.
func TestNewEnforceNeedsProtection(t *testing.T) {
	dir := t.TempDir()
	rule := "- rule: X\n  desc: d\n  condition: evt.type == \"exec\" and container.id != \"host\" and proc.name == \"nc\"\n  output: o\n  priority: Critical\n  enforce: sigkill\n"
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Rules: []string{dir}, Enforce: EnforceConfig{Enabled: true}}
	_, err := New(cfg, Deps{})
	if want := "detector: enforce.enabled needs the docker integration, which decides which containers are protected (configure docker:)"; err == nil || err.Error() != want {
		t.Fatalf("New error = %v, want %q", err, want)
	}
	cfg.Enforce.Enabled = false
	if _, err := New(cfg, Deps{}); err != nil {
		t.Fatalf("New with enforcement off: %v", err)
	}
}

func TestNewDefaultRulesAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	d, err := New(Config{}, Deps{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(d.Rules().Rules()); n < 15 {
		t.Fatalf("%d default rules", n)
	}
	if _, err := New(Config{}, Deps{Registerer: reg}); err == nil || !strings.Contains(err.Error(), "register detector metrics") {
		t.Fatalf("second registration: %v", err)
	}
	// The exported series exist.
	d.metrics.queueDrops.Inc()
	if n, err := testutil.GatherAndCount(reg, "riposte_detector_queue_dropped_total", "riposte_detector_queue_length"); err != nil || n != 2 {
		t.Fatalf("gathered %d series, %v", n, err)
	}
}

func TestSubscribe(t *testing.T) {
	d, err := New(Config{}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	const a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	const b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	chA, cancelA := d.Subscribe(a[:12], 2)
	chHost, cancelHost := d.Subscribe("host", 8)
	defer cancelHost()
	chAll, cancelAll := d.Subscribe(AllContainers, 16)
	defer cancelAll()
	for i := 0; i < 5; i++ {
		d.subs.dispatch(&Event{Type: event.Open, PID: uint32(i), Container: event.Container{ID: a}})
		d.subs.dispatch(&Event{Type: event.Open, Container: event.Container{ID: b}})
	}
	d.subs.dispatch(&Event{Type: event.Exec, Container: event.Container{ID: event.HostID}})
	if len(chA) != 2 {
		t.Fatalf("subscriber of a holds %d events, want its buffer of 2", len(chA))
	}
	if got := (<-chA).PID; got != 0 {
		t.Fatalf("first event pid %d, want 0 (kernel order)", got)
	}
	if s := d.Stats(); s.SubscriberDrops != 3 {
		t.Fatalf("subscriber drops = %d, want 3", s.SubscriberDrops)
	}
	if len(chHost) != 1 {
		t.Fatalf("host subscriber got %d events, want 1", len(chHost))
	}
	if len(chAll) != 10 {
		t.Fatalf("subscriber of all containers got %d events, want the 10 of a and b (not the host's)", len(chAll))
	}
	cancelA()
	cancelA()
	d.subs.dispatch(&Event{Type: event.Open, Container: event.Container{ID: a}})
	<-chA // the buffered one
	if _, ok := <-chA; ok {
		t.Fatal("channel open after cancel")
	}
}

// TestRunWithoutPrivileges: without root, Run fails saying what it needs.
// As root, the test re-runs itself as nobody.
func TestRunWithoutPrivileges(t *testing.T) {
	if os.Geteuid() == 0 {
		dir := t.TempDir()
		bin := filepath.Join(dir, "detector.test")
		data, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
			_ = os.Chmod(d, 0o755)
		}
		cmd := exec.Command(bin, "-test.run=^TestRunWithoutPrivileges$", "-test.v")
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestRunWithoutPrivileges") {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
		return
	}
	d, err := New(Config{}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(context.Background(), nil)
	want := "load eBPF sensor: needs root, or the capabilities CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Run without privileges = %v, want %q...", err, want)
	}
}
