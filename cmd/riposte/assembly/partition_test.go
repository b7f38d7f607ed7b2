package assembly

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/store/postgres/pgtest"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// TestClusterReplicaPartitioned: replica A reaches PostgreSQL through a
// TCP proxy, replica B through the socket; alerts stream into both, and
// the proxy is cut, resetting A's connections or blackholing them. While
// cut, A answers 503 and never 202; B keeps taking alerts and takes over
// what A had claimed once its lease ran out, so every alert A
// acknowledged before the cut is processed while A is still cut off.
// Healed, A serves again. Every alert answered 202 is processed once, no
// action runs twice, and the journal verifies.
func TestClusterReplicaPartitioned(t *testing.T) {
	pg.Get(t) // the gate: PostgreSQL's programs are installed
	srv, err := pgtest.Start(pgtest.Options{TCP: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	for _, tt := range []struct {
		name string
		cut  pgtest.Cut
	}{{"reset", pgtest.Reset}, {"blackhole", pgtest.Blackhole}} {
		t.Run(tt.name, func(t *testing.T) { partitioned(t, srv, tt.cut) })
	}
}

func partitioned(t *testing.T, srv *pgtest.Server, cut pgtest.Cut) {
	url, err := srv.Database(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := pgtest.NewProxy(srv.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cs := startReplicasAt(t, pgtest.URLAt(proxy.Addr(), pgtest.DBName(url))+"&connect_timeout=2", url)

	var (
		mu              sync.Mutex
		acked           []string
		ackedBy         [2]int
		aUnavailable    int
		aAckedBeforeCut []string
		cutAt, healAt   time.Time
	)
	count := func(f func() bool) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return f() }
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	stopLoad := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	// A blackholed A answers 503 after the intake's store timeout (20 s).
	client := &http.Client{Timeout: 40 * time.Second}
	for w := range 8 {
		r := w % 2
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("part-%d-%d", w, i)
				start := time.Now()
				code, err := postAlert(client, cs[r].addr, id, fmt.Sprintf("c-%d", w))
				done := time.Now()
				mu.Lock()
				switch {
				case err != nil:
					t.Errorf("post %s to replica %d: %v", id, r, err)
				case code == http.StatusAccepted:
					acked = append(acked, id)
					ackedBy[r]++
					if r == 0 && cutAt.IsZero() {
						aAckedBeforeCut = append(aAckedBeforeCut, id)
					}
					if r == 0 && !cutAt.IsZero() && start.After(cutAt) && (healAt.IsZero() || done.Before(healAt)) {
						t.Errorf("replica A answered 202 for %s while cut off from PostgreSQL", id)
					}
				case code == http.StatusServiceUnavailable && r == 0:
					aUnavailable++
				default:
					t.Errorf("post %s to replica %d: %d", id, r, code)
				}
				failed := t.Failed()
				mu.Unlock()
				if failed {
					return
				}
				if code == http.StatusServiceUnavailable {
					select { // pace the retries, as Retry-After asks
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		})
	}
	defer stopLoad()

	testutil.Eventually(t, 60*time.Second, count(func() bool { return ackedBy[0] >= 100 && ackedBy[1] >= 100 }),
		"100 alerts per replica were not acknowledged:\n%s", logsOf(cs))
	mu.Lock()
	cutAt = time.Now()
	bAtCut := ackedBy[1]
	before := append([]string(nil), aAckedBeforeCut...)
	mu.Unlock()
	proxy.Cut(cut)

	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	testutil.Eventually(t, 60*time.Second, count(func() bool { return aUnavailable >= 3 && ackedBy[1] >= bAtCut+100 }),
		"A did not answer 503 while B took alerts:\n%s", logsOf(cs))
	var waiting int
	testutil.Eventually(t, 60*time.Second, func() bool {
		err := conn.QueryRow(context.Background(), `SELECT count(*) FROM inbox WHERE id = ANY($1) AND state <> 'done'`, before).Scan(&waiting)
		return err == nil && waiting == 0
	}, "%d alerts A acknowledged before the cut were not processed while it was cut off:\n%s", &waiting, logsOf(cs))
	var takenOver int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM inbox WHERE id = ANY($1) AND attempts > 1`, before).Scan(&takenOver); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	healAt = time.Now()
	aAtHeal := ackedBy[0]
	mu.Unlock()
	proxy.Heal()
	testutil.Eventually(t, 90*time.Second, count(func() bool { return ackedBy[0] >= aAtHeal+50 }),
		"A did not serve again after the partition healed:\n%s", logsOf(cs))
	stopLoad()
	mu.Lock()
	all := append([]string(nil), acked...)
	t.Logf("%d alerts acknowledged (A %d, B %d); A answered 503 %d times while cut off; %d of A's %d were taken over by B; healed after %s",
		len(all), ackedBy[0], ackedBy[1], aUnavailable, takenOver, len(before), healAt.Sub(cutAt).Round(time.Millisecond))
	mu.Unlock()

	st := openReadOnly(t, url)
	waitDrained(t, st, 60*time.Second, cs)
	stopReplicas(t, cs)
	processedOnce(t, st, all)
}
