package assembly

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/postgres"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// routeAgentToken is the token of node's agent: an agent credential is
// bound to one node.
func routeAgentToken(node string) string { return "route-agent-token-" + node }

// routeCluster is two replicas on one PostgreSQL that route container
// actions to node agents, with an agent credential for each of nodes
// (routeAgentToken).
type routeCluster struct {
	url      string
	replicas []*child
	urls     []string
	st       *postgres.Store
	dir, pbs string
	env      []string // every replica's environment
}

// startRouteCluster starts the replicas, with an agent credential for each
// of nodes (routeAgentToken); env is added to their environment
// (RIPOSTE_TEST_LEASE=...).
func startRouteCluster(t *testing.T, playbooks string, agentTimeout string, nodes []string, env ...string) *routeCluster {
	t.Helper()
	url := pg.Database(t)
	dir := t.TempDir()
	pbs := filepath.Join(dir, "playbooks.yaml")
	cfg := filepath.Join(dir, "riposte.yaml")
	yml := fmt.Sprintf(`engine: {poll: 20ms}
cluster: {route_container_actions: true, agent_timeout: %s}
auth:
  tokens:
`, agentTimeout)
	env = append([]string{StoreEnv + "=" + url, "RIPOSTE_TEST_CONFIG=" + cfg}, env...)
	for i, n := range nodes {
		yml += fmt.Sprintf("    - {name: agent-%d, scope: agent, env: RIPOSTE_TEST_AGENT_TOKEN_%d, node: %s}\n", i, i, n)
		env = append(env, fmt.Sprintf("RIPOSTE_TEST_AGENT_TOKEN_%d=%s", i, routeAgentToken(n)))
	}
	if len(nodes) == 0 {
		yml += "    []\n"
	}
	if err := errorsJoin(os.WriteFile(pbs, []byte(playbooks), 0o600), os.WriteFile(cfg, []byte(yml), 0o600)); err != nil {
		t.Fatal(err)
	}
	rc := &routeCluster{url: url, dir: dir, pbs: pbs, env: env}
	for i := range 2 {
		c := rc.startReplica(t, i)
		rc.replicas = append(rc.replicas, c)
		rc.urls = append(rc.urls, "http://"+c.addr)
	}
	st := openReadOnly(t, url)
	rc.st = st
	return rc
}

// startReplica starts replica i on its data directory, and on its
// address when it ran before (the agents know the replicas by address).
func (rc *routeCluster) startReplica(t *testing.T, i int, env ...string) *child {
	t.Helper()
	c := startChild(t, filepath.Join(rc.dir, fmt.Sprintf("replica-%d", i)), rc.pbs, append(append([]string(nil), rc.env...), env...)...)
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

// restart starts replica i again (after it was killed) on its address.
func (rc *routeCluster) restart(t *testing.T, i int) {
	t.Helper()
	rc.replicas[i] = rc.startReplica(t, i, "RIPOSTE_TEST_LISTEN="+rc.replicas[i].addr)
}

func errorsJoin(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// post sends one alert of node about container to replica i.
func (rc *routeCluster) post(t *testing.T, i int, id, node, container, rule string) {
	t.Helper()
	code, err := rc.send(http.DefaultClient, i, id, node, container, rule)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusAccepted {
		t.Fatalf("post alert %s: %d", id, code)
	}
}

// send is post returning the status code (safe from any goroutine).
func (rc *routeCluster) send(client *http.Client, i int, id, node, container, rule string) (int, error) {
	body := fmt.Sprintf(`{"uuid":%q,"time":%q,"rule":%q,"priority":"Warning","output":"x","hostname":%q,"output_fields":{"container.id":%q}}`,
		id, time.Now().UTC().Format(time.RFC3339Nano), rule, node, container)
	req, _ := http.NewRequest("POST", rc.urls[i]+"/v1/alerts", bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+crashToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// entries returns the journal entries of an alert of type typ.
func (rc *routeCluster) entries(t *testing.T, alertID string, typ store.EntryType) []store.Entry {
	t.Helper()
	es, err := rc.st.Entries(context.Background(), store.Filter{AlertID: alertID, Types: []store.EntryType{typ}})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

const routePlaybook = `
- playbook: freeze
  match: {rules: ["Agent route test"]}
  actions:
    - do: container.pause
`

func startRouteAgent(t *testing.T, rc *routeCluster, node string, env ...string) *agentProc {
	t.Helper()
	return startAgentChild(t, filepath.Join(t.TempDir(), "agent-"+node), node, rc.urls,
		append([]string{AgentTokenEnv + "=" + routeAgentToken(node)}, env...)...)
}

func isPaused(t *testing.T, id string) bool {
	t.Helper()
	cli := testutil.DockerClient(t)
	info, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Paused
}

// TestAgentRoutesActionToItsNode: two replicas route container actions;
// two agents of different nodes run on this machine, each beside a
// container of its own. The pause for an alert of node A is run by A's
// agent (the request's claimant), not by B's, and the other way round;
// each is journaled once, by the replica that processed the alert. An
// alert of a node whose agent is gone fails after cluster.agent_timeout,
// journaled action.failed with the reason. GET /v1/agents lists both.
func TestAgentRoutesActionToItsNode(t *testing.T) {
	testutil.Integration(t, testutil.Docker)
	cli := testutil.DockerClient(t)
	testutil.EnsureTestImage(t, cli)
	ca := testutil.RunContainer(t, cli, testutil.UniqueName("agent-route-a"), nil)
	cb := testutil.RunContainer(t, cli, testutil.UniqueName("agent-route-b"), nil)

	na, nb := testutil.UniqueName("node-a"), testutil.UniqueName("node-b")
	rc := startRouteCluster(t, routePlaybook, "5s", []string{na, nb})
	agA := startRouteAgent(t, rc, na, "RIPOSTE_TEST_AGENT_INPUT=")
	agB := startRouteAgent(t, rc, nb, "RIPOSTE_TEST_AGENT_INPUT=")

	rc.post(t, 0, "route-a-1", na, ca, "Agent route test")
	rc.post(t, 1, "route-b-1", nb, cb, "Agent route test")
	for _, tc := range []struct{ alert, node, container string }{{"route-a-1", na, ca}, {"route-b-1", nb, cb}} {
		testutil.Eventually(t, 20*time.Second, func() bool { return len(rc.entries(t, tc.alert, store.ActionSucceeded)) == 1 },
			"pause of %s not journaled succeeded:\n%s\n--- agent a\n%s\n--- agent b\n%s", tc.alert, logsOf(rc.replicas), agA.logs, agB.logs)
		if !isPaused(t, tc.container) {
			t.Errorf("container of %s not paused", tc.node)
		}
		key := store.ActionKey{AlertID: tc.alert, Playbook: "freeze", Index: 0}.String()
		req, err := rc.st.GetNodeAction(context.Background(), key)
		if err != nil || req.State != store.NodeActionSucceeded || !strings.HasPrefix(req.Agent, tc.node+"/") || req.Attempts != 1 {
			t.Errorf("node action %s: %+v %v (want run once by an agent of %s)", key, req, err, tc.node)
		}
		if n := len(rc.entries(t, tc.alert, store.ActionStarted)); n != 1 {
			t.Errorf("%s: %d action.started, want 1", tc.alert, n)
		}
	}
	if strings.Contains(agB.logs.String(), "route-a-1") || strings.Contains(agA.logs.String(), "route-b-1") {
		t.Errorf("an agent ran another node's action:\n--- a\n%s\n--- b\n%s", agA.logs, agB.logs)
	}

	// A node without an agent: the action fails after the timeout.
	gone := testutil.UniqueName("node-gone")
	start := time.Now()
	rc.post(t, 0, "route-gone-1", gone, ca, "Agent route test")
	var failed []store.Entry
	testutil.Eventually(t, 20*time.Second, func() bool {
		failed = rc.entries(t, "route-gone-1", store.ActionFailed)
		return len(failed) == 1
	}, "action of a node without agent not failed:\n%s", logsOf(rc.replicas))
	if took := time.Since(start); took < 5*time.Second {
		t.Errorf("failed after %s, before the 5s agent timeout", took)
	}
	want := "no agent of node " + gone + " took the action within 5s"
	if got, _ := failed[0].Detail["error"].(string); got != want {
		t.Errorf("failure: %q, want %q", got, want)
	}

	// The agents are listed alive.
	req, _ := http.NewRequest("GET", rc.urls[1]+"/v1/agents", nil)
	req.Header.Set("Authorization", "Bearer "+routeAgentToken(na))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("agents listed to an agent token: %s", resp.Status)
	}
	// A's token takes no work of B's node.
	req, _ = http.NewRequest("POST", rc.urls[0]+"/v1/agent/claim", strings.NewReader(fmt.Sprintf(`{"node":%q,"agent":"%s/x","max":1}`, nb, nb)))
	req.Header.Set("Authorization", "Bearer "+routeAgentToken(na))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("claim for node B with node A's token: %s, want 403", resp.Status)
	}
	list, err := rc.st.Agents(context.Background())
	if err != nil || len(list) != 2 {
		t.Fatalf("agents: %+v %v", list, err)
	}
	agA.stop(t)
	agB.stop(t)
	stopReplicas(t, rc.replicas)
	rep, err := rc.st.Verify(context.Background())
	if err != nil || !rep.OK() {
		t.Fatalf("journal verify: %+v %v", rep, err)
	}
}
