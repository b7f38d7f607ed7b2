package assembly

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

const captureRoutePlaybook = `
- playbook: record
  match: {rules: ["Agent capture test"]}
  actions:
    - do: capture.start
      with: {duration: 60s, wait: true}
- playbook: record-in-background
  match: {rules: ["Agent background capture test"]}
  actions:
    - do: capture.start
      with: {duration: 60s}
`

// TestAgentKilledMidCapture: two captures routed to a node's agent are
// running (the agent's detector records them) when the agent is killed
// with SIGKILL and started again. The capture whose action waits for its
// end has its action run marked failed once, by the restarted agent (in
// doubt: it was claimed before) or by a replica (the agent stopped
// answering), and is not started a second time; the background capture,
// whose start had succeeded, is journaled capture.finished once, cut
// short. The journal verifies.
func TestAgentKilledMidCapture(t *testing.T) {
	testutil.Integration(t, testutil.BPF, testutil.Docker)
	cli := testutil.DockerClient(t)
	testutil.EnsureTestImage(t, cli)
	ca := testutil.RunContainer(t, cli, testutil.UniqueName("agent-capture"), nil)
	cb := testutil.RunContainer(t, cli, testutil.UniqueName("agent-capture-bg"), nil)

	node := testutil.UniqueName("node-cap")
	rc := startRouteCluster(t, captureRoutePlaybook, "6s", []string{node})
	data := filepath.Join(t.TempDir(), "agent")
	env := []string{AgentTokenEnv + "=" + routeAgentToken(node), "RIPOSTE_TEST_AGENT_INPUT=", "RIPOSTE_TEST_AGENT_DETECTOR=1"}
	first := startAgentChild(t, data, node, rc.urls, env...)

	rc.post(t, 1, "capture-bg-1", node, cb, "Agent background capture test")
	testutil.Eventually(t, 20*time.Second, func() bool { return len(rc.entries(t, "capture-bg-1", store.ActionSucceeded)) == 1 },
		"background capture not started:\n%s\n%s", logsOf(rc.replicas), first.logs)
	rc.post(t, 0, "capture-kill-1", node, ca, "Agent capture test")
	key := store.ActionKey{AlertID: "capture-kill-1", Playbook: "record", Index: 0}.String()
	testutil.Eventually(t, 20*time.Second, func() bool {
		na, err := rc.st.GetNodeAction(context.Background(), key)
		return err == nil && na.State == store.NodeActionClaimed && strings.Count(first.logs.String(), "capture started") == 2
	}, "capture not started by the agent:\n%s\n%s", logsOf(rc.replicas), first.logs)

	first.cmd.Process.Signal(syscall.SIGKILL)
	first.cmd.Wait()
	second := startAgentChild(t, data, node, rc.urls, env...)

	var failed []store.Entry
	testutil.Eventually(t, 30*time.Second, func() bool {
		failed = rc.entries(t, "capture-kill-1", store.ActionFailed)
		return len(failed) > 0
	}, "capture's run not marked failed:\n%s\n--- agent\n%s", logsOf(rc.replicas), second.logs)
	if len(failed) != 1 {
		t.Errorf("%d action.failed, want 1", len(failed))
	}
	msg, _ := failed[0].Detail["error"].(string)
	if !strings.Contains(msg, "in doubt") && !strings.Contains(msg, "stopped answering") {
		t.Errorf("failure %q names neither the doubt nor the gone agent", msg)
	}
	for typ, want := range map[store.EntryType]int{store.ActionStarted: 1, store.ActionSucceeded: 0} {
		if n := len(rc.entries(t, "capture-kill-1", typ)); n != want {
			t.Errorf("%d %s, want %d", n, typ, want)
		}
	}
	na, err := rc.st.GetNodeAction(context.Background(), key)
	if err != nil || na.State != store.NodeActionFailed {
		t.Errorf("node action: %+v %v", na, err)
	}
	// The background capture is reported cut short, once.
	var ends []store.Entry
	testutil.Eventually(t, 20*time.Second, func() bool {
		ends = rc.entries(t, "capture-bg-1", store.CaptureFinished)
		return len(ends) > 0
	}, "background capture's end not journaled:\n%s", second.logs)
	if e, _ := ends[0].Detail["error"].(string); len(ends) != 1 || !strings.Contains(e, "cut short") || ends[0].Detail["node"] != node {
		t.Errorf("capture.finished: %d entries, first %+v", len(ends), ends[0].Detail)
	}
	// The request stays closed: the restarted agent never starts it.
	testutil.Never(t, 3*time.Second, func() bool { return strings.Contains(second.logs.String(), "capture started") },
		"the capture started again after the restart:\n%s", second.logs)
	second.stop(t)
	stopReplicas(t, rc.replicas)
	rep, err := rc.st.Verify(context.Background())
	if err != nil || !rep.OK() {
		t.Fatalf("journal verify: %+v %v", rep, err)
	}
}
