package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/internal/testutil"
)

func TestFormatStats(t *testing.T) {
	full := detector.Stats{
		Events: 1204, QueueDrops: 3, KernelDrops: map[string]uint64{"exec": 2, "open": 5}, KernelFiltered: 310,
		KernelFilteredByType: map[string]uint64{"open": 300, "chmod": 10},
		SubscriberDrops:      1, DecodeErrors: 4, RuleErrors: 6, Alerts: 3,
		AlertsByRule: map[string]uint64{"Terminal shell in container": 1, "Read sensitive file untrusted": 2},
	}
	tests := []struct {
		name  string
		stats detector.Stats
		final bool
		json  bool
		want  string
	}{
		{
			name: "text final", stats: full, final: true,
			want: `stats: final events=1204 kernel_filtered=310 kernel_dropped=7 queue_dropped=3 subscriber_dropped=1 decode_errors=4 rule_errors=6 alerts=3` +
				` fired="Read sensitive file untrusted"=2 fired="Terminal shell in container"=1` + "\n",
		},
		{
			name: "text periodic empty", stats: detector.Stats{},
			want: "stats: periodic events=0 kernel_filtered=0 kernel_dropped=0 queue_dropped=0 subscriber_dropped=0 decode_errors=0 rule_errors=0 alerts=0\n",
		},
		{
			name: "text quotes rule names", stats: detector.Stats{Alerts: 1, AlertsByRule: map[string]uint64{`a "b" c`: 1}}, final: true,
			want: `stats: final events=0 kernel_filtered=0 kernel_dropped=0 queue_dropped=0 subscriber_dropped=0 decode_errors=0 rule_errors=0 alerts=1 fired="a \"b\" c"=1` + "\n",
		},
		{
			name: "json final", stats: full, final: true, json: true,
			want: `{"stats":"final","events":1204,"kernel_filtered":310,"kernel_filtered_by_type":{"chmod":10,"open":300},"kernel_dropped":7,"kernel_dropped_by_type":{"exec":2,"open":5},` +
				`"queue_dropped":3,"subscriber_dropped":1,"decode_errors":4,"rule_errors":6,"alerts":3,` +
				`"alerts_by_rule":{"Read sensitive file untrusted":2,"Terminal shell in container":1}}` + "\n",
		},
		{
			name: "json periodic empty maps are objects", stats: detector.Stats{}, json: true,
			want: `{"stats":"periodic","events":0,"kernel_filtered":0,"kernel_filtered_by_type":{},"kernel_dropped":0,"kernel_dropped_by_type":{},` +
				`"queue_dropped":0,"subscriber_dropped":0,"decode_errors":0,"rule_errors":0,"alerts":0,"alerts_by_rule":{}}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := formatStats(tt.stats, tt.final, tt.json)
			if err != nil {
				t.Fatalf("format: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestDetectStatsFlagRejectsNegative(t *testing.T) {
	_, errText, code := run(t, "", "detect", "--stats", "-1s")
	if code != exitBadInput || !strings.Contains(errText, "--stats") {
		t.Fatalf("code %d, err %q: want a bad-input error naming --stats", code, errText)
	}
}

// statsLines returns the JSON stats objects in stderr, in order.
func statsLines(t *testing.T, stderr string) []detectStats {
	t.Helper()
	var out []detectStats
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(line, `{"stats":`) {
			continue
		}
		var s detectStats
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("decode stats line %q: %v", line, err)
		}
		out = append(out, s)
	}
	return out
}

// TestDetectPrintsStats runs `riposte detect --output json --stats 200ms`,
// reads /etc/shadow with a shell exec'd in a container, and checks the
// periodic and final stats lines count the events and the rules that
// fired, and agree with the alerts printed on stdout.
func TestDetectPrintsStats(t *testing.T) {
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	cli := testutil.DockerClient(t)
	id := testutil.RunContainer(t, cli, testutil.UniqueName("detect-stats"), nil)

	var stdout, stderr testutil.SyncBuffer
	root := newRootCmd()
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs([]string{"detect", "--output", "json", "--stats", "200ms"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	// A periodic line is printed only once the sensor is attached.
	testutil.Eventually(t, 30*time.Second, func() bool { return len(statsLines(t, stderr.String())) > 0 },
		"no periodic stats line on stderr:\n%s", stderr.String())

	testutil.ExecCode(t, cli, id, "sh", "-c", "cat /etc/shadow")

	// The alerts of this container, by rule, as printed on stdout.
	ours := func() map[string]uint64 {
		n := map[string]uint64{}
		for _, line := range strings.Split(stdout.String(), "\n") {
			var a struct {
				Rule         string         `json:"rule"`
				OutputFields map[string]any `json:"output_fields"`
			}
			if json.Unmarshal([]byte(line), &a) == nil && a.OutputFields["container.id"] == id[:12] {
				n[a.Rule]++
			}
		}
		return n
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		lines := statsLines(t, stderr.String())
		last := lines[len(lines)-1]
		for rule := range ours() {
			if last.AlertsByRule[rule] > 0 {
				return true
			}
		}
		return false
	}, "no periodic stats line counts a rule that fired for the container; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("detect: %v\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("detect did not stop 30s after its context ended")
	}
	lines := statsLines(t, stderr.String())
	final := lines[len(lines)-1]
	if final.Stats != "final" {
		t.Fatalf("last stats line is %q, want final; stderr:\n%s", final.Stats, stderr.String())
	}
	for i, l := range lines[:len(lines)-1] {
		if l.Stats != "periodic" {
			t.Errorf("stats line %d is %q, want periodic", i, l.Stats)
		}
	}
	if final.Events == 0 {
		t.Errorf("final stats count no events: %+v", final)
	}
	var sum uint64
	for _, n := range final.AlertsByRule {
		sum += n
	}
	if sum != final.Alerts || final.Alerts == 0 {
		t.Errorf("alerts %d, per-rule sum %d: want equal and non-zero", final.Alerts, sum)
	}
	var printed uint64
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(line, "{") {
			printed++
		}
	}
	if printed != final.Alerts {
		t.Errorf("stdout has %d alerts, final stats count %d", printed, final.Alerts)
	}
	for rule, n := range ours() {
		if final.AlertsByRule[rule] < n {
			t.Errorf("rule %q: %d alerts for the container on stdout, final stats count %d", rule, n, final.AlertsByRule[rule])
		}
	}
	t.Logf("final stats: %+v", final)
}
