package assembly

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/postgres"
	"github.com/riposte-sec/riposte/internal/store/postgres/pgtest"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// pg is this test binary's PostgreSQL server, started on first use.
var pg pgtest.Shared

// clusterLease is the replicas' alert lease in these tests: a killed
// replica's claimed alerts are taken over this long after it died.
const clusterLease = "3s"

// startReplicas starts n `riposte serve` children on one database, each
// with its own data directory (evidence, serve.json).
func startReplicas(t *testing.T, url string, n int) []*child {
	t.Helper()
	urls := make([]string, n)
	for i := range urls {
		urls[i] = url
	}
	return startReplicasAt(t, urls...)
}

// startReplicasAt starts one `riposte serve` child per URL (one database
// reached different ways).
func startReplicasAt(t testing.TB, urls ...string) []*child {
	t.Helper()
	return startServeSet(t, crashPlaybook, clusterLease, urls...)
}

// startServeSet starts one `riposte serve` child per store URL ("" for
// SQLite in the child's data directory) with the given playbook and alert
// lease.
func startServeSet(t testing.TB, playbook, lease string, urls ...string) []*child {
	t.Helper()
	dir := t.TempDir()
	pbs := filepath.Join(dir, "playbooks.yaml")
	if err := os.WriteFile(pbs, []byte(playbook), 0o600); err != nil {
		t.Fatal(err)
	}
	var cs []*child
	for i, url := range urls {
		env := []string{"RIPOSTE_TEST_LEASE=" + lease}
		if url != "" {
			env = append(env, StoreEnv+"="+url)
		}
		c := startChild(t, filepath.Join(dir, fmt.Sprintf("replica-%d", i)), pbs, env...)
		t.Cleanup(func() {
			if c.cmd.ProcessState == nil {
				c.cmd.Process.Kill()
				c.cmd.Wait()
			}
		})
		cs = append(cs, c)
	}
	return cs
}

func postAlert(client *http.Client, addr, id, container string) (int, error) {
	body := fmt.Sprintf(`{"uuid":%q,"time":"2026-11-24T10:00:00Z","rule":"Cluster test","priority":"Warning","output":"x","output_fields":{"container.id":%q}}`, id, container)
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/alerts", bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+crashToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// openReadOnly opens the cluster's PostgreSQL store read-only, closed when
// the test ends.
func openReadOnly(t *testing.T, url string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), url, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// waitDrained waits until no alert is pending or claimed.
func waitDrained(t *testing.T, st store.Backend, timeout time.Duration, cs []*child) {
	t.Helper()
	var last store.Stats
	testutil.Eventually(t, timeout, func() bool {
		var err error
		last, err = st.Stats(context.Background())
		return err == nil && last.InboxPending+last.InboxProcessing == 0
	}, "inbox not drained: %+v\n%s", &last, logsOf(cs))
}

func logsOf(cs []*child) string {
	var b bytes.Buffer
	for i, c := range cs {
		fmt.Fprintf(&b, "--- replica %d\n%s\n", i, c.logs.String())
	}
	return b.String()
}

// processedOnce checks the crash playbook's work after a fault: every
// acknowledged alert was received once and ran its two notes once, no
// alert ran them twice, and the journal verifies.
func processedOnce(t *testing.T, st store.Backend, acked []string) {
	t.Helper()
	n := journalCounts(t, st)
	for _, id := range acked {
		if n[store.AlertReceived][id] != 1 || n[store.Note][id] != 2 {
			t.Errorf("alert %s acknowledged: received %d, notes %d; want 1 and 2", id, n[store.AlertReceived][id], n[store.Note][id])
		}
	}
	for id, k := range n[store.Note] {
		if k != 2 {
			t.Errorf("alert %s: %d notes, want 2 (no action twice)", id, k)
		}
	}
	if rep, err := st.Verify(context.Background()); err != nil || !rep.OK() {
		t.Fatalf("journal verify: %+v %v", rep, err)
	}
}

// journalCounts counts entries per type and alert.
func journalCounts(t *testing.T, st store.Backend) map[store.EntryType]map[string]int {
	t.Helper()
	out := map[store.EntryType]map[string]int{}
	for e, err := range st.Scan(context.Background(), store.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		if out[e.Type] == nil {
			out[e.Type] = map[string]int{}
		}
		out[e.Type][e.AlertID]++
	}
	return out
}

// stopReplicas stops the live ones gracefully.
func stopReplicas(t *testing.T, cs []*child) {
	t.Helper()
	for _, c := range cs {
		if c.cmd.ProcessState != nil {
			continue
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("graceful stop: %v\n%s", err, c.logs.String())
		}
	}
}

// TestClusterDuplicatesFormOneIncident: two replicas on one PostgreSQL;
// every alert is sent to both (Falco's http_output retried, two
// Sidekicks). Each is stored and processed once, alerts of one container
// form one incident, and the journal is one chain that verifies.
func TestClusterDuplicatesFormOneIncident(t *testing.T) {
	url := pg.Database(t)
	cs := startReplicas(t, url, 2)
	const alerts, containers = 40, 4
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for i := range alerts {
		id, container := fmt.Sprintf("dup-%d", i), fmt.Sprintf("c-%d", i%containers)
		for _, c := range cs {
			wg.Go(func() {
				code, err := postAlert(client, c.addr, id, container)
				if err != nil || code != http.StatusAccepted {
					t.Errorf("post %s to %s: %d %v", id, c.addr, code, err)
				}
			})
		}
	}
	wg.Wait()
	st := openReadOnly(t, url)
	waitDrained(t, st, 60*time.Second, cs)
	stopReplicas(t, cs)

	n := journalCounts(t, st)
	for i := range alerts {
		id := fmt.Sprintf("dup-%d", i)
		if n[store.AlertReceived][id] != 1 || n[store.AlertDuplicate][id] != 1 || n[store.Note][id] != 2 {
			t.Errorf("alert %s: received %d, duplicate %d, notes %d; want 1, 1, 2",
				id, n[store.AlertReceived][id], n[store.AlertDuplicate][id], n[store.Note][id])
		}
	}
	incs, err := st.ListIncidents(context.Background(), store.IncidentFilter{})
	if err != nil || len(incs) != containers {
		t.Fatalf("%d incidents (%v), want %d: one per container", len(incs), err, containers)
	}
	total := 0
	for _, in := range incs {
		total += in.Alerts
	}
	if total != alerts {
		t.Errorf("incidents count %d alerts, want %d", total, alerts)
	}
	if rep, err := st.Verify(context.Background()); err != nil || !rep.OK() {
		t.Fatalf("journal verify: %+v %v", rep, err)
	}
}

// TestClusterReplicaKilled kills each replica in turn under load: alerts
// stream into replica A while B runs beside it and A is killed with
// SIGKILL mid-stream; B takes over what A had claimed once A's lease ran
// out. Then a fresh replica C joins, alerts stream into B, and B is
// killed: C takes over. Every alert either victim acknowledged is
// processed, none twice, and the journal verifies.
func TestClusterReplicaKilled(t *testing.T) {
	url := pg.Database(t)
	cs := startReplicas(t, url, 2)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	st := openReadOnly(t, url)

	var acked []string
	for round, victim := range []int{0, 1} {
		if round > 0 {
			cs = append(cs, startReplicasAt(t, url)...)
		}
		a := cs[victim]
		ackedAtKill := streamUntilKilled(t, a, fmt.Sprintf("kill%d", round), cs)
		killed := time.Now()
		var orphaned int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM inbox WHERE state = 'processing'`).Scan(&orphaned); err != nil {
			t.Fatal(err)
		}
		waitDrained(t, st, 60*time.Second, cs)
		var takenOver int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM inbox WHERE attempts > 1`).Scan(&takenOver); err != nil {
			t.Fatal(err)
		}
		t.Logf("replica %d: %d alerts acknowledged before SIGKILL; %d claimed at the kill, %d taken over so far; drained %s after the kill (lease %s)",
			victim, len(ackedAtKill), orphaned, takenOver, time.Since(killed).Round(time.Millisecond), clusterLease)
		acked = append(acked, ackedAtKill...)
	}
	stopReplicas(t, cs)

	processedOnce(t, st, acked)
}

// streamUntilKilled posts alerts (ids prefix-worker-n) into replica a from
// eight senders until 300 are acknowledged, then kills a with SIGKILL and
// returns the ids it acknowledged.
func streamUntilKilled(t *testing.T, a *child, prefix string, cs []*child) []string {
	t.Helper()
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-%d-%d", prefix, w, i)
				code, err := postAlert(client, a.addr, id, fmt.Sprintf("c-%d", w))
				if err != nil {
					return // a died
				}
				if code == http.StatusAccepted {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		})
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 300
	}, "300 alerts were not acknowledged:\n%s", logsOf(cs))
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), acked...)
}

// TestClusterPostgresRestarted: PostgreSQL crashes (immediate shutdown)
// and comes back while two replicas take alerts. During the outage the
// intake answers 503; every alert answered 202, before or after, is
// processed once, and the journal verifies.
func TestClusterPostgresRestarted(t *testing.T) {
	pg.Get(t) // the gate: PostgreSQL's programs are installed
	srv, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	url, err := srv.Database(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cs := startReplicas(t, url, 2)
	var mu sync.Mutex
	var acked []string
	unavailable := 0
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 8 {
		c := cs[w%len(cs)]
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("restart-%d-%d", w, i)
				code, err := postAlert(client, c.addr, id, fmt.Sprintf("c-%d", w))
				mu.Lock()
				switch {
				case err == nil && code == http.StatusAccepted:
					acked = append(acked, id)
				case err == nil && code == http.StatusServiceUnavailable:
					unavailable++
				case err != nil:
					t.Errorf("post %s: %v", id, err)
				default:
					t.Errorf("post %s: %d", id, code)
				}
				mu.Unlock()
				if t.Failed() {
					return
				}
			}
		})
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return ackedCount() >= 150 }, "150 alerts were not acknowledged:\n%s", logsOf(cs))
	if err := srv.Restart(true); err != nil {
		t.Fatal(err)
	}
	after := ackedCount()
	testutil.Eventually(t, 60*time.Second, func() bool { return ackedCount() >= after+150 },
		"intake did not recover after PostgreSQL restarted:\n%s", logsOf(cs))
	close(stop)
	wg.Wait()
	mu.Lock()
	all := append([]string(nil), acked...)
	t.Logf("%d alerts acknowledged, %d answered 503 while PostgreSQL was down", len(all), unavailable)
	mu.Unlock()

	st := openReadOnly(t, url)
	waitDrained(t, st, 60*time.Second, cs)
	stopReplicas(t, cs)
	processedOnce(t, st, all)
}
