package engine

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/playbooks"
)

// throughputPlaybooks are shaped like examples/playbooks over the engine's
// test actions: a staging guard the load's Notice alerts do not reach, an
// on-call playbook (notify, snapshot, a gated pause) and a catch-all note
// that they do; two playbooks and four actions per alert, as in
// scripts/bench-serve.sh.
const throughputPlaybooks = `
- playbook: staging-quarantine
  order: 10
  match:
    priority: ">=warning"
    when: 'container.image startsWith "staging/" || container.name startsWith "ci-"'
  continue: false
  actions:
    - do: container.snapshot
      on_error: continue
    - do: container.pause
    - do: journal.note
      with: {text: 'staging guard: {{ .Rule }} in {{ .Field "container.name" }}'}
- playbook: oncall-shell-in-container
  order: 30
  match:
    rules: ["Terminal shell in container", "Shell spawned *"]
    priority: ">=notice"
  approval:
    approvers: ["@security-oncall"]
    timeout: 10m
    on_timeout: proceed
  actions:
    - do: slack.notify
      with:
        channel: "#security-oncall"
        text: '{{ .Rule }}: {{ .Field "proc.cmdline" }} in {{ .Field "container.name" }}'
    - do: container.snapshot
      on_error: continue
    - do: container.pause
      gated: true
- playbook: journal-everything-else
  order: 100
  match:
    priority: ">=notice"
  actions:
    - do: journal.note
      with: {text: '{{ .Priority }} {{ .Rule }} on {{ .Hostname }}'}
`

// throughputEngine is an engine in dry run with throughputPlaybooks over a
// fresh store: the shape of `riposte serve --dry-run` in the intake
// benchmark.
func throughputEngine(tb testing.TB, cfg Config) (*Engine, *store.Store) {
	eng, st, _ := throughputEngineAt(tb, cfg)
	return eng, st
}

// throughputEngineAt is throughputEngine, also returning the store's file.
func throughputEngineAt(tb testing.TB, cfg Config) (*Engine, *store.Store, string) {
	tb.Helper()
	path := store.PathIn(tb.TempDir())
	st, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	set, err := playbooks.Parse(testCatalog(), playbooks.Source{Name: "throughput.yaml", Data: []byte(throughputPlaybooks)})
	if err != nil {
		tb.Fatal(err)
	}
	rec := &recorder{}
	runners := map[string]actions.Runner{}
	for _, s := range testSpecs {
		runners[s.Name] = rec
	}
	cfg.DryRun = true
	eng, err := New(cfg, Deps{Store: st, Playbooks: set, Catalog: testCatalog(), Runners: runners})
	if err != nil {
		tb.Fatal(err)
	}
	return eng, st, path
}

// loadAlert is the load generator's alert (internal/benchtools/loadgen):
// a shell in one of containers staging containers, unique id.
func loadAlert(run string, i, containers int) alert.Alert {
	c := i % containers
	return alert.Alert{
		ID: fmt.Sprintf("%s-%d", run, i), Time: time.Now().UTC(), Rule: "Terminal shell in container",
		Priority: alert.PriorityNotice, Source: "syscall", Hostname: "bench", Tags: []string{"container", "shell"},
		Output: "A shell was spawned in a container with an attached terminal (user=root shell=sh)",
		OutputFields: map[string]any{
			"container.id": fmt.Sprintf("%012d", c), "container.name": fmt.Sprintf("bench-%d", c),
			"container.image.repository": "staging/bench", "proc.cmdline": "sh -i", "user.name": "root",
		},
	}
}

// backlog is what the inbox holds that is not processed yet.
func backlog(tb testing.TB, st *store.Store) int64 {
	tb.Helper()
	s, err := st.Stats(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return s.InboxPending + s.InboxProcessing
}

// runEngine starts eng and stops it (waiting for Run) at cleanup.
func runEngine(tb testing.TB, eng *Engine) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("engine run: %v", err)
		}
	})
}

// waitDrained waits until the inbox has nothing left to process.
func waitDrained(tb testing.TB, st *store.Store, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for backlog(tb, st) > 0 {
		if time.Now().After(deadline) {
			tb.Fatalf("inbox not drained after %s: %d alerts left", within, backlog(tb, st))
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, not synchronising
	}
}

// BenchmarkProcess measures how fast the engine works off an inbox of b.N
// accepted alerts (16 containers, throughputPlaybooks, dry run): claim,
// match, plan, journal every step, finish. Alerts are accepted before the
// timer starts. Reported: alerts/s, and CPU of the whole process per alert
// (steadier than the rate on a shared machine).
//
//	go test -run '^$' -bench Process -benchtime 20000x ./internal/engine
func BenchmarkProcess(b *testing.B) {
	eng, st, path := throughputEngineAt(b, Config{})
	ctx := context.Background()
	const chunk = 500
	for i := 0; i < b.N; i += chunk {
		var as []alert.Alert
		for j := i; j < min(i+chunk, b.N); j++ {
			as = append(as, loadAlert("p", j, 16))
		}
		if _, err := st.Accept(ctx, as); err != nil {
			b.Fatal(err)
		}
	}
	before, err := st.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0, cpuOK := processCPU()
	start := time.Now()
	runEngine(b, eng)
	waitDrained(b, st, 10*time.Minute)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "alerts/s")
	if cpu1, ok := processCPU(); ok && cpuOK {
		// The whole process: engine, store, and the drain check's polls.
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/alert")
	}
	b.StopTimer()
	b.ReportMetric(float64(processingRows(b, st, path, before.JournalSeq))/float64(b.N), "rows/alert")
}

// processingRows counts the rows processing wrote: journal entries after
// seq, action runs, and one finish per alert in the inbox.
func processingRows(tb testing.TB, st *store.Store, path string, seq int64) int64 {
	tb.Helper()
	ctx := context.Background()
	after, err := st.Stats(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var runs, done int64
	if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM action_runs), (SELECT count(*) FROM inbox WHERE state = 'done')`).Scan(&runs, &done); err != nil {
		tb.Fatal(err)
	}
	return after.JournalSeq - seq + runs + done
}

// TestSustainedIntake accepts alerts at a steady rate, one per Accept from
// 64 callers (the webhook's shape), while the engine processes them, and
// checks that the inbox's backlog stays bounded: at most two seconds of
// intake when intake stops (at most five at any time), and drained within
// 5 s after. A processing rate below the intake rate grows the
// backlog by the difference every second and fails it.
//
// By default (CI) it runs 5 s at 400 alerts/s, well inside what a loaded
// 2-core machine processes (1,000/s for 60 s stayed bounded in four runs of
// five at load 13-16). RIPOSTE_SUSTAIN_SECONDS and
// RIPOSTE_SUSTAIN_RATE set both (scripts/bench-sustain.sh, in make bench,
// runs 60 s at several rates); it logs the rates and the backlog.
func TestSustainedIntake(t *testing.T) {
	if raceDetector {
		t.Skip("measures rates; the race detector slows the engine several times over (CI runs without it)")
	}
	seconds, rate := 5, 400
	for _, v := range []struct {
		env string
		dst *int
	}{{"RIPOSTE_SUSTAIN_SECONDS", &seconds}, {"RIPOSTE_SUSTAIN_RATE", &rate}} {
		if s := os.Getenv(v.env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q: want a positive integer", v.env, s)
			}
			*v.dst = n
		}
	}
	eng, st := throughputEngine(t, Config{})
	runEngine(t, eng)
	ctx := context.Background()
	dur := time.Duration(seconds) * time.Second

	// Sampler: the backlog every 100 ms, and its peak.
	var peak, samples atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			close(stopSampling)
			<-sampled
		}
	}
	defer stop() // before the store closes, whichever way the test ends
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			s, err := st.Stats(ctx)
			if err != nil {
				t.Errorf("stats: %v", err)
				return
			}
			n := s.InboxPending + s.InboxProcessing
			samples.Add(1)
			if n > peak.Load() {
				peak.Store(n)
			}
		}
	}()

	// Pacer: alert i is due at i/rate seconds; 64 callers take them.
	due := make(chan int, 1024)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for c := 0; c < 64; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range due {
				// As the webhook does.
				if _, err := eng.Accept(ctx, []alert.Alert{loadAlert("s", i, 64)}); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	total := rate * seconds
	lag := time.Duration(0)
	for i := 0; i < total; i++ {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		if d := time.Until(at); d > 0 {
			time.Sleep(d) // pacing the load, not synchronising
		} else if -d > lag {
			lag = -d
		}
		due <- i
	}
	close(due)
	wg.Wait()
	took := time.Since(start)
	atEnd := backlog(t, st)
	// Drained within the grace, or not: measured either way, judged below.
	const grace = 5 * time.Second
	left := atEnd
	for left > 0 && time.Since(start)-took < grace {
		time.Sleep(50 * time.Millisecond) // polling a condition, not synchronising
		left = backlog(t, st)
	}
	drained := time.Since(start) - took
	stop()

	t.Logf("sustained intake: %d alerts in %s (%.0f/s, offered %d/s); processed %.0f/s meanwhile; backlog peak %d alerts over %d samples, %d at the end of intake, %d left %s later; pacer lag max %s",
		total, took.Round(time.Millisecond), float64(total)/took.Seconds(), rate, float64(int64(total)-atEnd)/took.Seconds(),
		peak.Load(), samples.Load(), atEnd, left, drained.Round(time.Millisecond), lag.Round(time.Millisecond))
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d accepts failed", n)
	}
	if took > dur+dur/10+time.Second {
		t.Fatalf("intake took %s for %s of load: the accepts themselves cannot keep %d/s", took, dur, rate)
	}
	// A processing rate below the intake rate grows the backlog all along:
	// it is largest at the end. A stall (the machine is shared) makes a
	// spike that drains: tolerated up to 5 s of intake.
	if limit := int64(2 * rate); atEnd > limit {
		t.Fatalf("backlog at the end of intake %d alerts, more than 2 s of intake (%d): processing does not keep up with %d/s", atEnd, limit, rate)
	}
	if limit := int64(5 * rate); peak.Load() > limit {
		t.Fatalf("backlog peaked at %d alerts, more than 5 s of intake (%d)", peak.Load(), limit)
	}
	if left > 0 {
		t.Fatalf("backlog not drained %s after intake stopped: %d alerts left", grace, left)
	}
}
