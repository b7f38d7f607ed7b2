package assembly

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
)

const (
	childEnv   = "RIPOSTE_TEST_SERVE_CHILD"
	crashToken = "crash-test-token-0123456789"
)

// TestMain doubles as `riposte serve` for the crash test (the test binary
// re-executes itself with childEnv set) and as the CI job that posts alerts
// for the namespace-mode ci test (postAlertsEnv).
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(serveChild())
	}
	if os.Getenv(postAlertsEnv) != "" {
		os.Exit(postAlertsChild())
	}
	if os.Getenv(agentChildEnv) == "1" {
		os.Exit(agentChild())
	}
	code := m.Run()
	pg.Stop()
	pgBench.Stop()
	os.Exit(code)
}

func serveChild() int {
	cfg, err := LoadConfig(os.Getenv("RIPOSTE_TEST_CONFIG"), Overrides{Listen: cmp.Or(os.Getenv("RIPOSTE_TEST_LISTEN"), "127.0.0.1:0"), Data: os.Getenv("RIPOSTE_TEST_DATA"),
		Playbooks: []string{os.Getenv("RIPOSTE_TEST_PLAYBOOKS")}, Store: os.Getenv(StoreEnv)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if l := os.Getenv("RIPOSTE_TEST_LEASE"); l != "" {
		if cfg.Engine.Lease, err = time.ParseDuration(l); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	a, err := Build(cfg, NewLogger(cfg, os.Stderr))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer a.Close()
	ctx, stop := signalContext()
	defer stop()
	if err := a.Serve(ctx, crashToken, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signalNotify(ch)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

const crashPlaybook = `
- playbook: note-every-alert
  actions:
    - do: journal.note
      with: {text: 'seen {{ .ID }}'}
    - do: journal.note
      with: {text: 'second step for {{ .ID }}'}
`

type child struct {
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
}

func startChild(t testing.TB, data, pbs string, env ...string) *child {
	t.Helper()
	os.Remove(ServeInfoPath(data))
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"=1", "RIPOSTE_TEST_DATA="+data, "RIPOSTE_TEST_PLAYBOOKS="+pbs), env...)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if info, err := readServeInfo(data); err == nil && info.PID == cmd.Process.Pid {
			return &child{cmd: cmd, addr: info.Listen, logs: &logs}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child did not start serving:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func post(client *http.Client, addr, id string) (int, error) {
	body := fmt.Sprintf(`{"uuid":%q,"time":"2026-11-24T10:00:00Z","rule":"Crash test","priority":"Warning","output":"x","output_fields":{"container.id":"host"}}`, id)
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

// TestCrashKeepsEveryAcknowledgedAlert: alerts are posted concurrently to a
// serving child, which is killed with SIGKILL mid-stream and restarted.
// Every alert that got 202 is journaled alert.received exactly once and its
// actions ran exactly once; the journal verifies.
func TestCrashKeepsEveryAcknowledgedAlert(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pbs := filepath.Join(dir, "playbooks.yaml")
	if err := os.WriteFile(pbs, []byte(crashPlaybook), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, data, pbs)

	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("crash-%d-%d", w, i)
				code, err := post(client, c.addr, id)
				if err != nil {
					return // the child died
				}
				if code == http.StatusAccepted {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}(w)
	}
	// Let a few hundred alerts through, then kill mid-stream.
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
	close(stop)
	wg.Wait()
	mu.Lock()
	ackedAtKill := append([]string(nil), acked...)
	mu.Unlock()
	t.Logf("%d alerts acknowledged before SIGKILL", len(ackedAtKill))

	// Restart: the new process must finish what the dead one left.
	c2 := startChild(t, data, pbs)
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := store.Open(store.PathIn(data), store.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		stats, err := st.Stats(context.Background())
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		if stats.InboxPending+stats.InboxProcessing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inbox not drained after restart: %+v\n%s", stats, c2.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	c2.cmd.Process.Signal(syscall.SIGTERM)
	if err := c2.cmd.Wait(); err != nil {
		t.Errorf("graceful stop: %v\n%s", err, c2.logs.String())
	}

	st, err := store.Open(store.PathIn(data), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	received := map[string]int{}
	notes := map[string]int{}
	for e, err := range st.Scan(context.Background(), store.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		switch e.Type {
		case store.AlertReceived:
			received[e.AlertID]++
		case store.Note:
			notes[e.AlertID]++
		}
	}
	for _, id := range ackedAtKill {
		if received[id] != 1 {
			t.Errorf("alert %s acknowledged but journaled alert.received %d times", id, received[id])
		}
		if notes[id] != 2 {
			t.Errorf("alert %s: its 2 actions ran %d times in all", id, notes[id])
		}
	}
	for id, n := range notes {
		if n != 2 {
			t.Errorf("alert %s: notes %d, want 2 (no action twice)", id, n)
		}
	}
	rep, err := st.Verify(context.Background())
	if err != nil || !rep.OK() {
		t.Errorf("journal verify after crash: %+v %v", rep, err)
	}
}
