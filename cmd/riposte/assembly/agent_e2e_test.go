package assembly

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// agentChildEnv makes the test binary `riposte agent` (see TestMain); the
// options come from RIPOSTE_TEST_AGENT_* variables.
const agentChildEnv = "RIPOSTE_TEST_AGENT"

func agentChild() int {
	o := AgentOptions{Data: os.Getenv("RIPOSTE_TEST_DATA"), Node: os.Getenv("RIPOSTE_TEST_AGENT_NODE"),
		Replicas: strings.Split(os.Getenv("RIPOSTE_TEST_AGENT_REPLICAS"), ","), Config: os.Getenv("RIPOSTE_TEST_CONFIG"),
		Input: os.Getenv("RIPOSTE_TEST_AGENT_INPUT"), Detector: os.Getenv("RIPOSTE_TEST_AGENT_DETECTOR") == "1"}
	ctx, stop := signalContext()
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	err := RunAgent(ctx, o, os.Stdin, log, func(node string) { fmt.Fprintf(os.Stderr, "AGENT READY %s\n", node) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// agentProc is a `riposte agent` child.
type agentProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	logs  *testutil.SyncBuffer
	data  string
}

// startAgentChild starts an agent of node on data, forwarding what the
// test writes to its stdin (and running its detector when detect).
func startAgentChild(t *testing.T, data, node string, replicas []string, env ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), agentChildEnv+"=1", "RIPOSTE_TEST_DATA="+data, "RIPOSTE_TEST_AGENT_NODE="+node,
		"RIPOSTE_TEST_AGENT_REPLICAS="+strings.Join(replicas, ","), "RIPOSTE_TEST_AGENT_INPUT=-", AgentTokenEnv+"="+crashToken), env...)
	logs := &testutil.SyncBuffer{}
	cmd.Stderr = logs
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: cmd, stdin: in, logs: logs, data: data}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	testutil.Eventually(t, 15*time.Second, func() bool { return strings.Contains(logs.String(), "AGENT READY "+node) },
		"agent did not start:\n%s", logs)
	return p
}

func (p *agentProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("agent stop: %v\n%s", err, p.logs)
	}
}

// spooled counts the alerts in the agent's spool directory.
func (p *agentProc) spooled() int {
	m, _ := filepath.Glob(filepath.Join(p.data, "spool", "*.json"))
	return len(m)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeAlerts(t *testing.T, p *agentProc, from, to int) []string {
	t.Helper()
	var ids []string
	var b bytes.Buffer
	for i := from; i < to; i++ {
		id := fmt.Sprintf("agent-fwd-%04d", i)
		ids = append(ids, id)
		fmt.Fprintf(&b, `{"uuid":%q,"time":"2026-12-03T10:00:00Z","rule":"Agent test","priority":"Warning","output":"x","output_fields":{"container.id":"host"}}`+"\n", id)
	}
	if _, err := p.stdin.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	return ids
}

// receivedOnce checks every id was journaled alert.received exactly once,
// with the agent's node as its hostname (another is counted missing).
func receivedOnce(st store.Backend, ids []string, node string) (missing, twice []string, err error) {
	count := map[string]int{}
	for e, err := range st.Scan(context.Background(), store.Filter{Types: []store.EntryType{store.AlertReceived}}) {
		if err != nil {
			return nil, nil, err
		}
		if e.Detail["hostname"] == node {
			count[e.AlertID]++
		}
	}
	for _, id := range ids {
		switch {
		case count[id] == 0:
			missing = append(missing, id)
		case count[id] > 1:
			twice = append(twice, id)
		}
	}
	return missing, twice, nil
}

// TestAgentForwardingSurvivesOutage: an agent forwards its node's alerts to
// a replica (PostgreSQL store). The replica is killed (SIGKILL): the agent
// spools what comes meanwhile; the agent itself is stopped and started
// again with alerts in its spool; the replica comes back on its address.
// Every alert arrives exactly once.
func TestAgentForwardingSurvivesOutage(t *testing.T) {
	url := pg.Database(t)
	dir := t.TempDir()
	pbs := filepath.Join(dir, "playbooks.yaml")
	if err := os.WriteFile(pbs, []byte(crashPlaybook), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	replicaEnv := []string{StoreEnv + "=" + url, "RIPOSTE_TEST_LISTEN=" + addr}
	replica := startChild(t, filepath.Join(dir, "replica"), pbs, replicaEnv...)
	t.Cleanup(func() {
		if replica.cmd.ProcessState == nil {
			replica.cmd.Process.Kill()
			replica.cmd.Wait()
		}
	})
	st := openReadOnly(t, url)
	agentData := filepath.Join(dir, "agent")
	ag := startAgentChild(t, agentData, "node-a", []string{"http://" + addr})

	ids := writeAlerts(t, ag, 0, 40)
	testutil.Eventually(t, 20*time.Second, func() bool {
		missing, _, err := receivedOnce(st, ids, "node-a")
		return err == nil && len(missing) == 0
	}, "first alerts not forwarded:\n%s", ag.logs)

	// The replica dies; alerts keep coming and are spooled.
	replica.cmd.Process.Kill()
	replica.cmd.Wait()
	ids = append(ids, writeAlerts(t, ag, 40, 100)...)
	testutil.Eventually(t, 20*time.Second, func() bool { return ag.spooled() == 60 },
		"alerts not spooled during the outage (%d):\n%s", ag.spooled(), ag.logs)

	// The agent restarts with a full spool, and takes more alerts.
	ag.stop(t)
	ag = startAgentChild(t, agentData, "node-a", []string{"http://" + addr})
	ids = append(ids, writeAlerts(t, ag, 100, 120)...)
	testutil.Eventually(t, 20*time.Second, func() bool { return ag.spooled() == 80 },
		"alerts not spooled after the restart (%d):\n%s", ag.spooled(), ag.logs)

	// The replica is back: everything arrives, once.
	replica = startChild(t, filepath.Join(dir, "replica"), pbs, replicaEnv...)
	var missing, twice []string
	var err error
	testutil.Eventually(t, 30*time.Second, func() bool {
		missing, twice, err = receivedOnce(st, ids, "node-a")
		return err == nil && len(missing) == 0 && ag.spooled() == 0
	}, "alerts lost after the outage: missing %v (spooled %d)\n%s", &missing, ag.spooled(), ag.logs)
	if len(twice) > 0 {
		t.Errorf("received twice: %v", twice)
	}
	ag.stop(t)
	stopReplicas(t, []*child{replica})
	rep, err := st.Verify(context.Background())
	if err != nil || !rep.OK() {
		t.Fatalf("journal verify: %+v %v", rep, err)
	}
}
