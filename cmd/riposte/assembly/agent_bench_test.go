package assembly

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/agent"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

// benchCluster is one replica (PostgreSQL store) serving in this process,
// routing container actions, and one agent of node "bench-node" whose
// container.pause answers at once: what is measured is riposte's path,
// not Docker's.
type benchCluster struct {
	app   *App
	addr  string
	agent *agent.Agent
}

func startBenchCluster(b *testing.B) *benchCluster {
	b.Helper()
	url := pg.Database(b)
	dir := b.TempDir()
	pbs := filepath.Join(dir, "playbooks.yaml")
	cfgPath := filepath.Join(dir, "riposte.yaml")
	os.WriteFile(pbs, []byte("- playbook: freeze\n  match: {rules: [\"Bench\"]}\n  actions:\n    - do: container.pause\n"), 0o600)
	os.WriteFile(cfgPath, []byte("engine: {poll: 20ms}\ncluster: {route_container_actions: true}\nauth:\n  tokens:\n    - {name: agents, scope: agent, env: RIPOSTE_BENCH_AGENT_TOKEN, node: bench-node}\n"), 0o600)
	b.Setenv("RIPOSTE_BENCH_AGENT_TOKEN", routeAgentToken("bench-node"))
	cfg, err := LoadConfig(cfgPath, Overrides{Listen: "127.0.0.1:0", Data: filepath.Join(dir, "replica"), Playbooks: []string{pbs}, Store: url})
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app, err := Build(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, crashToken, func(addr string) { ready <- addr }) }()
	addr := <-ready
	reps, err := agent.NewReplicas([]string{"http://" + addr}, func() (string, error) { return routeAgentToken("bench-node"), nil }, nil)
	if err != nil {
		b.Fatal(err)
	}
	pause := actions.RunnerFunc(func(context.Context, actions.Request) (actions.Result, error) {
		return actions.Result{Note: "paused"}, nil
	})
	ag, err := agent.New(agent.Config{Node: "bench-node", Data: filepath.Join(dir, "agent")},
		agent.Deps{Replicas: reps, Runners: map[string]actions.Runner{"container.pause": pause}})
	if err != nil {
		b.Fatal(err)
	}
	agentDone := make(chan error, 1)
	go func() { agentDone <- ag.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-agentDone
		<-done
		app.Close()
	})
	return &benchCluster{app: app, addr: addr, agent: ag}
}

// BenchmarkAgentForward: one alert handed to the agent (as its detector
// does) until a replica answered 202 for it: spool fsync, POST, the
// replica's durable commit in PostgreSQL. One alert at a time: latency,
// not throughput.
func BenchmarkAgentForward(b *testing.B) {
	c := startBenchCluster(b)
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		c.agent.Emit(alert.Alert{ID: fmt.Sprintf("fwd-%d-%d", time.Now().UnixNano(), i), Time: time.Now().UTC(), Rule: "Forward",
			Priority: alert.PriorityWarning, Output: "x"})
		for c.agent.Forwarded() < int64(i+1) {
			time.Sleep(100 * time.Microsecond) // a benchmark's poll, not a test's synchronisation
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat, "fwd")
}

// BenchmarkAgentActionRoundTrip: an alert posted to the replica until its
// container.pause, run by the node's agent, is journaled succeeded
// (intake, engine, node request, the agent's claim, its answer, the
// engine's record). ms-action is the action's own round trip through the
// agent (the journaled duration: request queued to outcome seen).
func BenchmarkAgentActionRoundTrip(b *testing.B) {
	c := startBenchCluster(b)
	var lat, act []time.Duration
	client := &http.Client{Timeout: 10 * time.Second}
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("rt-%d-%d", time.Now().UnixNano(), i)
		body := fmt.Sprintf(`{"uuid":%q,"time":%q,"rule":"Bench","priority":"Warning","output":"x","hostname":"bench-node","output_fields":{"container.id":"c%d"}}`,
			id, time.Now().UTC().Format(time.RFC3339Nano), i)
		start := time.Now()
		req, _ := http.NewRequest("POST", "http://"+c.addr+"/v1/alerts", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+crashToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			b.Fatalf("post: %v %v", resp, err)
		}
		resp.Body.Close()
		for {
			es, err := c.app.Store.Entries(context.Background(), store.Filter{AlertID: id, Types: []store.EntryType{store.ActionSucceeded, store.ActionFailed}})
			if err != nil {
				b.Fatal(err)
			}
			if len(es) > 0 {
				if es[0].Type != store.ActionSucceeded {
					b.Fatalf("action failed: %+v", es[0].Detail)
				}
				ms, _ := strconv.ParseFloat(fmt.Sprint(es[0].Detail["duration_ms"]), 64)
				act = append(act, time.Duration(ms*float64(time.Millisecond)))
				break
			}
			time.Sleep(time.Millisecond) // a benchmark's poll
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportLatency(b, lat, "alert-to-done")
	reportLatency(b, act, "action")
}

func reportLatency(b *testing.B, lat []time.Duration, name string) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "ms-"+name+"-p50")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "ms-"+name+"-p99")
}
