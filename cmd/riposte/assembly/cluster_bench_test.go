package assembly

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/store/postgres/pgtest"
)

// pgBench is the benchmarks' PostgreSQL, with fsync on: an alert answered
// 202 is on disk, as with SQLite.
var pgBench = pgtest.Shared{Options: pgtest.Options{Durable: true}}

// intakePlaybook matches no alert: the replicas store, claim and finish
// every alert, and run nothing.
const intakePlaybook = `
- playbook: intake-only
  match:
    rules: ["never fires"]
  actions:
    - do: journal.note
      with: {text: x}
`

// benchAlerts is how many alerts one trial posts (RIPOSTE_BENCH_ALERTS).
func benchAlerts(b *testing.B) int {
	n := 3000
	if v := os.Getenv("RIPOSTE_BENCH_ALERTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("RIPOSTE_BENCH_ALERTS=%q: want a positive count", v)
		}
	}
	return n
}

// BenchmarkClusterIntake measures durable intake through `riposte serve`
// processes: SQLite on one node, and 1, 2 and 3 replicas on one
// PostgreSQL (fsync on), in the same run. 64 callers post unique alerts
// over HTTP, spread round-robin over the replicas (a load balancer's
// view). Reported: alerts/s answered 202, p50 and p99 of the 202, and
// each replica's share of the alerts (r0-%, r1-%, ...). One iteration is
// one trial of RIPOSTE_BENCH_ALERTS alerts (default 3000) on fresh
// processes and a fresh database; scripts/bench-cluster.sh runs three.
//
//	go test -run '^$' -bench ClusterIntake -benchtime 1x -count 3 ./cmd/riposte/assembly
func BenchmarkClusterIntake(b *testing.B) {
	b.Run("sqlite-1", func(b *testing.B) {
		for range b.N {
			intakeTrial(b, startServeSet(b, intakePlaybook, "", ""))
		}
	})
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("postgres-%d", n), func(b *testing.B) {
			for range b.N {
				url := pgBench.Database(b)
				urls := make([]string, n)
				for i := range urls {
					urls[i] = url
				}
				intakeTrial(b, startServeSet(b, intakePlaybook, "", urls...))
			}
		})
	}
}

func intakeTrial(b *testing.B, cs []*child) {
	defer stopBenchReplicas(b, cs)
	const callers = 64
	total := benchAlerts(b)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: callers}}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	lat := make([][]time.Duration, callers)
	per := make([]atomic.Int64, len(cs))
	trial := time.Now().UnixNano()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(total) {
					return
				}
				r := int(i) % len(cs)
				t0 := time.Now()
				code, err := postAlert(client, cs[r].addr, fmt.Sprintf("bench-%d-%d", trial, i), fmt.Sprintf("c-%d", c))
				if err != nil || code != http.StatusAccepted {
					b.Errorf("post to replica %d: %d %v", r, code, err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
				per[r].Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "alerts/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	for r := range per {
		b.ReportMetric(100*float64(per[r].Load())/float64(len(all)), fmt.Sprintf("r%d-%%", r))
	}
}

func stopBenchReplicas(b *testing.B, cs []*child) {
	for _, c := range cs {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Signal(syscall.SIGTERM)
			c.cmd.Wait()
		}
	}
}

// benchLease is the alert lease in the failover benchmark.
const benchLease = "2s"

// BenchmarkClusterFailover measures failover: two replicas on one
// PostgreSQL with a lease of 2s; alerts (two journal notes each) stream
// into replica A until it holds claimed, unfinished alerts, and A is
// killed with SIGKILL. Reported: the alerts A held at the kill, the time
// until replica B took the first of them over (resume-s) and until it had
// finished all of them (done-s), from the SIGKILL.
//
//	go test -run '^$' -bench ClusterFailover -benchtime 1x -count 3 ./cmd/riposte/assembly
func BenchmarkClusterFailover(b *testing.B) {
	for range b.N {
		failoverTrial(b)
	}
}

func failoverTrial(b *testing.B) {
	url := pgBench.Database(b)
	cs := startServeSet(b, crashPlaybook, benchLease, url, url)
	defer stopBenchReplicas(b, cs)
	a := cs[0]
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	// A's claims: its store's owner is host-pid-random.
	owner := fmt.Sprintf("%%-%d-%%", a.cmd.Process.Pid)
	held := func() (n int) {
		_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM inbox WHERE state = 'processing' AND owner LIKE $1`, owner).Scan(&n)
		return n
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	trial := time.Now().UnixNano()
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := postAlert(client, a.addr, fmt.Sprintf("fo-%d-%d-%d", trial, w, i), fmt.Sprintf("c-%d", w)); err != nil {
					return // A died
				}
			}
		})
	}
	tick := time.NewTicker(5 * time.Millisecond) // polling the database
	defer tick.Stop()
	b.ResetTimer()
	deadline := time.Now().Add(60 * time.Second)
	for ; held() < 20; <-tick.C {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			b.Fatalf("replica A never held 20 claimed alerts:\n%s", logsOf(cs))
		}
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		b.Fatal(err)
	}
	killed := time.Now()
	a.cmd.Wait()
	close(stop)
	wg.Wait()
	var orphans []string
	rows, err := conn.Query(context.Background(), `SELECT id FROM inbox WHERE state = 'processing' AND owner LIKE $1`, owner)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		orphans = append(orphans, id)
	}
	if rows.Err() != nil {
		b.Fatal(rows.Err())
	}
	var resumed time.Duration
	deadline = time.Now().Add(60 * time.Second)
	for ; ; <-tick.C {
		var taken, done int
		if err := conn.QueryRow(context.Background(),
			`SELECT count(*) FILTER (WHERE owner NOT LIKE $2), count(*) FILTER (WHERE state = 'done') FROM inbox WHERE id = ANY($1)`,
			orphans, owner).Scan(&taken, &done); err != nil {
			b.Fatal(err)
		}
		if taken > 0 && resumed == 0 {
			resumed = time.Since(killed)
		}
		if done == len(orphans) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d orphaned alerts done 60s after the kill:\n%s", done, len(orphans), logsOf(cs))
		}
	}
	doneAfter := time.Since(killed)
	b.StopTimer()
	b.ReportMetric(float64(len(orphans)), "orphaned")
	b.ReportMetric(resumed.Seconds(), "resume-s")
	b.ReportMetric(doneAfter.Seconds(), "done-s")
}
