package assembly

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/responders/containerd/containerdtest"
	"github.com/riposte-sec/riposte/responders/docker"
)

const (
	containerdRouteRule     = "Agent containerd test"
	containerdRoutePlaybook = `
- playbook: contain
  match: {rules: ["Agent containerd test"]}
  actions:
    - do: containerd.snapshot
      on_error: continue
    - do: containerd.pause
`
)

// containerdRouteActions are the playbook's actions, in order.
var containerdRouteActions = []string{"containerd.snapshot", "containerd.pause"}

// TestAgentContainerdOnlyClusterKill9: two replicas on one PostgreSQL and
// two agents (node-1, node-2) on this machine; a container made directly
// through containerd (Docker does not know it) runs on node-2, whose agent
// alone has the containerd section. An alert for it posted to replica A
// is snapshotted then paused by node-2's agent: the task is paused in
// containerd, the bundle verifies, the journal names the node and agent,
// and node-1's agent runs nothing. Then, under a stream of alerts for the
// container sent to both replicas, replica A is killed with SIGKILL and
// restarted, and node-2's agent is killed with SIGKILL mid-run and
// restarted: every acknowledged alert is received once and each of its
// actions finished once, no action ran twice (the agents' runs, the
// bundles on disk), and the journal verifies.
func TestAgentContainerdOnlyClusterKill9(t *testing.T) {
	cli := containerdtest.Client(t)
	ns, ctx := containerdtest.Namespace(t, cli)
	img := containerdtest.Image(t, cli, ctx)
	target := cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, cli, ctx, img, target, nil)

	n1, n2 := testutil.UniqueName("node-1"), testutil.UniqueName("node-2")
	rc := startRouteCluster(t, containerdRoutePlaybook, "6s", []string{n1, n2}, "RIPOSTE_TEST_LEASE="+clusterLease)
	dir := t.TempDir()
	cfg2 := filepath.Join(dir, "agent-2.yaml")
	yml := fmt.Sprintf("containerd:\n  address: %q\n  namespaces: [%q]\n  pause: containerd\n", containerdtest.Address(t), ns)
	if err := os.WriteFile(cfg2, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	env1 := []string{AgentTokenEnv + "=" + routeAgentToken(n1), "RIPOSTE_TEST_AGENT_INPUT="}
	env2 := []string{AgentTokenEnv + "=" + routeAgentToken(n2), "RIPOSTE_TEST_AGENT_INPUT=", "RIPOSTE_TEST_CONFIG=" + cfg2}
	data2 := filepath.Join(dir, "agent-2")
	ag1 := startAgentChild(t, filepath.Join(dir, "agent-1"), n1, rc.urls, env1...)
	ag2 := startAgentChild(t, data2, n2, rc.urls, env2...)
	ag2Logs := []*testutil.SyncBuffer{ag2.logs}
	logs := func() string {
		var b strings.Builder
		b.WriteString(logsOf(rc.replicas))
		for i, l := range ag2Logs {
			fmt.Fprintf(&b, "--- node-2 agent, run %d\n%s\n", i+1, l)
		}
		fmt.Fprintf(&b, "--- node-1 agent\n%s\n", ag1.logs)
		return b.String()
	}
	finished := func(alertID string) []store.Entry {
		es, err := rc.st.Entries(context.Background(), store.Filter{AlertID: alertID, Types: []store.EntryType{store.ActionSucceeded, store.ActionFailed}})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	key := func(alertID string, i int) string {
		return store.ActionKey{AlertID: alertID, Playbook: "contain", Index: i}.String()
	}

	// One alert, to replica A: node-2's agent snapshots and pauses.
	rc.post(t, 0, "ctrd-route-0", n2, target, containerdRouteRule)
	var done []store.Entry
	testutil.Eventually(t, 20*time.Second, func() bool {
		done = finished("ctrd-route-0")
		return len(done) == 2
	}, "snapshot and pause not journaled:\n%s", logs())
	for i, e := range done {
		agentID, _ := e.Detail["agent"].(string)
		if e.Type != store.ActionSucceeded || e.Action != containerdRouteActions[i] || e.Detail["node"] != n2 || !strings.HasPrefix(agentID, n2+"/") {
			t.Fatalf("journal entry %d: %s %s %v; want %s succeeded on %s by its agent", i, e.Type, e.Action, e.Detail, containerdRouteActions[i], n2)
		}
		na, err := rc.st.GetNodeAction(context.Background(), key("ctrd-route-0", i))
		if err != nil || na.Node != n2 || na.Agent != agentID || na.State != store.NodeActionSucceeded || na.Attempts != 1 {
			t.Errorf("node action %d: %+v %v; want run once by %s", i, na, err, agentID)
		}
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Paused {
		t.Fatalf("task: %+v %v; want paused", st, err)
	}
	bundle, _ := done[0].Detail["dir"].(string)
	if !strings.HasPrefix(bundle, data2+string(filepath.Separator)) {
		t.Errorf("bundle %q not in node-2's agent's data %s", bundle, data2)
	}
	if sum, err := docker.VerifyBundle(bundle); err != nil || sum != done[0].SHA256 {
		t.Fatalf("verify bundle %s: %s %v; journal says %s", bundle, sum, err, done[0].SHA256)
	}

	// A stream of alerts to both replicas, paced (each costs a snapshot).
	var mu sync.Mutex
	acked := []string{"ctrd-route-0"}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			id := fmt.Sprintf("ctrd-stream-%03d", i)
			if code, err := rc.send(client, i%2, id, n2, target, containerdRouteRule); err == nil && code == http.StatusAccepted {
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}
	})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	// open reports whether an acknowledged alert's node action is in
	// state (claimed: an agent runs it; "": open at all).
	open := func(state store.NodeActionState) bool {
		mu.Lock()
		ids := append([]string(nil), acked...)
		mu.Unlock()
		for _, id := range ids[max(0, len(ids)-6):] {
			for i := range containerdRouteActions {
				na, err := rc.st.GetNodeAction(context.Background(), key(id, i))
				if err == nil && na.State.Open() && (state == "" || na.State == state) {
					return true
				}
			}
		}
		return false
	}
	waitAcked := func(n int, what string) {
		t.Helper()
		testutil.Eventually(t, 20*time.Second, func() bool { return count() >= n }, "%d alerts not acknowledged %s:\n%s", n, what, logs())
	}

	// Replica A dies with actions open, and comes back on its address.
	waitAcked(8, "before replica A is killed")
	testutil.Eventually(t, 10*time.Second, func() bool { return open("") }, "no node action open under the stream:\n%s", logs())
	rc.replicas[0].cmd.Process.Signal(syscall.SIGKILL)
	rc.replicas[0].cmd.Wait()
	waitAcked(count()+4, "by replica B while A is dead")
	rc.restart(t, 0)
	waitAcked(count()+4, "after replica A restarted")

	// Node-2's agent dies while it runs an action, and comes back.
	testutil.Eventually(t, 10*time.Second, func() bool { return open(store.NodeActionClaimed) }, "node-2's agent runs no action:\n%s", logs())
	ag2.cmd.Process.Signal(syscall.SIGKILL)
	ag2.cmd.Wait()
	ag2 = startAgentChild(t, data2, n2, rc.urls, env2...)
	ag2Logs = append(ag2Logs, ag2.logs)
	waitAcked(count()+4, "after node-2's agent restarted")
	close(stop)
	wg.Wait()
	ids := append([]string(nil), acked...)

	// Every acknowledged alert: received once, each action finished once.
	testutil.Eventually(t, 30*time.Second, func() bool {
		for _, id := range ids {
			if len(finished(id)) < 2 {
				return false
			}
		}
		return true
	}, "acknowledged alerts not finished:\n%s", logs())
	ag1.stop(t)
	ag2.stop(t)
	stopReplicas(t, rc.replicas)

	n := journalCounts(t, rc.st)
	ran := map[string]int{}
	for _, l := range ag2Logs {
		for line := range strings.Lines(l.String()) {
			if strings.Contains(line, "node action ran") {
				for _, id := range ids {
					for i := range containerdRouteActions {
						if strings.Contains(line, key(id, i)+" ") || strings.Contains(line, key(id, i)+`"`) {
							ran[key(id, i)]++
						}
					}
				}
			}
		}
	}
	var succeeded, inDoubt, reclaimed int
	bundles := map[string]bool{}
	for _, id := range ids {
		if n[store.AlertReceived][id] != 1 {
			t.Errorf("alert %s: received %d times, want 1", id, n[store.AlertReceived][id])
		}
		es := finished(id)
		if len(es) != 2 {
			t.Errorf("alert %s: %d actions finished, want 2 (one each)", id, len(es))
			continue
		}
		for i, e := range es {
			k := key(id, i)
			if e.Action != containerdRouteActions[i] {
				t.Errorf("alert %s: action %d is %s, want %s", id, i, e.Action, containerdRouteActions[i])
			}
			na, err := rc.st.GetNodeAction(context.Background(), k)
			if err != nil || na.Node != n2 || na.State.Open() {
				t.Errorf("node action %s: %+v %v", k, na, err)
			}
			if na.Attempts > 1 {
				reclaimed++
			}
			if ran[k] > 1 {
				t.Errorf("%s ran %d times", k, ran[k])
			}
			switch msg, _ := e.Detail["error"].(string); {
			case e.Type == store.ActionSucceeded:
				succeeded++
				if ran[k] != 1 || e.Detail["node"] != n2 {
					t.Errorf("%s succeeded on node %v, run %d times by node-2's agent", k, e.Detail["node"], ran[k])
				}
				if i == 0 {
					dir, _ := e.Detail["dir"].(string)
					if bundles[dir] {
						t.Errorf("%s: bundle %s journaled twice", k, dir)
					}
					bundles[dir] = true
				}
			case strings.Contains(msg, "in doubt") || strings.Contains(msg, "stopped answering"):
				inDoubt++ // claimed by the killed agent: not run again
				if na.Attempts < 2 && !strings.Contains(msg, "stopped answering") {
					t.Errorf("%s in doubt but claimed %d times", k, na.Attempts)
				}
			default:
				t.Errorf("%s failed: %s", k, msg)
			}
		}
	}
	if strings.Contains(ag1.logs.String(), "node action ran") {
		t.Errorf("node-1's agent ran an action:\n%s", ag1.logs)
	}
	// The bundles on node-2's disk are those the journal names, each once:
	// no snapshot ran unjournaled (an in-doubt one may have finished).
	onDisk, err := filepath.Glob(filepath.Join(data2, "evidence", "*", "*", "*", docker.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	for dir := range bundles {
		if _, err := docker.VerifyBundle(dir); err != nil {
			t.Errorf("bundle %s: %v", dir, err)
		}
	}
	if len(onDisk) < len(bundles) || len(onDisk) > len(bundles)+inDoubt {
		t.Errorf("%d bundles on disk, %d journaled, %d snapshots in doubt", len(onDisk), len(bundles), inDoubt)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Paused {
		t.Errorf("task: %+v %v; want paused", st, err)
	}
	conn, err := pgx.Connect(context.Background(), rc.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var takenOver int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM inbox WHERE attempts > 1`).Scan(&takenOver); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d alerts acknowledged (%d taken over after replica A's SIGKILL), %d actions succeeded, %d in doubt after the agent's SIGKILL, %d claimed again, %d bundles",
		len(ids), takenOver, succeeded, inDoubt, reclaimed, len(onDisk))
	rep, err := rc.st.Verify(context.Background())
	if err != nil || !rep.OK() {
		t.Fatalf("journal verify: %+v %v", rep, err)
	}
}
