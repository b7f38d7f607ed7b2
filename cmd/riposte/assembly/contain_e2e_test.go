package assembly

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// TestServeContainsShell: riposte serve with the detector and a
// pause-on-shell playbook pauses a container in which a shell is exec'd,
// by the Docker API (pause: docker) and by the cgroup freezer (pause:
// freezer, the daemon told after); the journal records the alert, the
// claim and the outcome with the times that exec -> frozen is measured by
// (the alert's kernel exec time, action.started, frozen_at_ns), in that
// order. The detector's alert and the pause's claim are the engine's
// urgent writes: nothing on this path waits for an fsync.
func TestServeContainsShell(t *testing.T) {
	cli := testutil.DockerClient(t)
	testutil.Integration(t, testutil.Root, testutil.BPF)
	for _, mode := range []string{"docker", "freezer"} {
		t.Run(mode, func(t *testing.T) {
			prefix := testutil.UniqueName("contain-e2e-" + mode)
			a := serveDetector(t, "docker: {pause: "+mode+"}\n", `
- playbook: pause-shell
  match:
    rules: ["Shell spawned in container", "Terminal shell in container"]
    # only this test's container: the daemon is shared
    when: 'container.name startsWith "`+prefix+`"'
  actions: [{do: container.pause}]
`)
			id := testutil.RunContainer(t, cli, prefix, nil)
			t.Cleanup(func() { thaw(cli, id) }) // before the removal
			ctx := context.Background()
			ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: []string{"sh", "-c", "sleep 30"}})
			if err != nil {
				t.Fatal(err)
			}
			// Detached: an attached exec in a frozen container never ends.
			if err := cli.ContainerExecStart(ctx, ex.ID, container.ExecStartOptions{Detach: true}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 20*time.Second, func() bool {
				info, err := cli.ContainerInspect(ctx, id)
				return err == nil && info.State != nil && info.State.Paused
			}, "container %s not paused after a shell ran in it", id[:12])

			var succeeded store.Entry
			testutil.Eventually(t, 10*time.Second, func() bool {
				es, err := a.Store.Entries(ctx, store.Filter{Types: []store.EntryType{store.ActionSucceeded}})
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range es {
					if e.Action == "container.pause" && e.Detail["container_id"] == id {
						succeeded = e
						return true
					}
				}
				return false
			}, "no action.succeeded container.pause for %s", id[:12])
			es, err := a.Store.Entries(ctx, store.Filter{AlertID: succeeded.AlertID})
			if err != nil {
				t.Fatal(err)
			}
			byType := map[store.EntryType]store.Entry{}
			for _, e := range es {
				if _, ok := byType[e.Type]; !ok {
					byType[e.Type] = e
				}
			}
			received, ok1 := byType[store.AlertReceived]
			started, ok2 := byType[store.ActionStarted]
			if !ok1 || !ok2 || started.Action != "container.pause" {
				t.Fatalf("journal of the alert lacks alert.received or action.started container.pause: %v", es)
			}
			var execNS int64 // the kernel's exec time, from the stored alert once it is finished
			testutil.Eventually(t, 10*time.Second, func() bool {
				items, err := a.Store.AlertsSince(ctx, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range items {
					if it.Alert.ID == succeeded.AlertID {
						execNS = number(it.Alert.OutputFields["evt.time"])
						return true
					}
				}
				return false
			}, "alert %s not finished", succeeded.AlertID)
			frozenNS := number(succeeded.Detail["frozen_at_ns"])
			if execNS == 0 || frozenNS == 0 {
				t.Fatalf("no kernel exec time (%d) or frozen_at_ns (%d) in the alert and its outcome %v", execNS, frozenNS, succeeded.Detail)
			}
			exec, frozen := time.Unix(0, execNS), time.Unix(0, frozenNS)
			// The kernel's clock is turned into wall time by an offset read
			// at start: allow it a millisecond.
			const slack = time.Millisecond
			if received.Time.Before(exec.Add(-slack)) || started.Time.Before(received.Time) || frozen.Before(started.Time) || succeeded.Time.Before(frozen) {
				t.Fatalf("times out of order: exec %s, alert.received %s, action.started %s, frozen %s, action.succeeded %s",
					exec.Format(time.RFC3339Nano), received.Time.Format(time.RFC3339Nano), started.Time.Format(time.RFC3339Nano),
					frozen.Format(time.RFC3339Nano), succeeded.Time.Format(time.RFC3339Nano))
			}
			if mode == "freezer" && !strings.Contains(succeeded.Detail["note"].(string), "frozen (cgroup freezer)") {
				t.Errorf("freezer path note %q", succeeded.Detail["note"])
			}
			t.Logf("%s path: exec -> alert stored %s, -> claimed %s, -> frozen %s (exec -> frozen %s)", mode,
				received.Time.Sub(exec), started.Time.Sub(received.Time), frozen.Sub(started.Time), frozen.Sub(exec))
		})
	}
}

// serveDetector runs riposte serve with the detector, the playbooks pb and
// the extra config lines, until the test ends.
func serveDetector(t *testing.T, extra, pb string) *App {
	t.Helper()
	return serveIn(t, t.TempDir(), map[string]string{
		"pb.yaml": pb,
		"riposte.yaml": "listen: 127.0.0.1:0\ndata: data\nplaybooks: [pb.yaml]\nnotifiers: {fallback: log}\n" +
			"detector: {enabled: true, disable_resources: true}\n" + extra,
	})
}

// serveIn writes files into dir and runs riposte serve with its
// riposte.yaml (which must enable the detector) until the test ends,
// returning once the detector is ready.
func serveIn(t *testing.T, dir string, files map[string]string) *App {
	t.Helper()
	_, a, _, _ := startServe(t, dir, files)
	select {
	case <-a.Detector.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("detector not ready after 20s")
	}
	return a
}

// startServe writes files into dir and runs riposte serve with its
// riposte.yaml until stop is called or the test ends, returning once it
// serves: the config, the app and the intake's address.
func startServe(t *testing.T, dir string, files map[string]string) (config.Config, *App, string, func()) {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := LoadConfig(filepath.Join(dir, "riposte.yaml"), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Build(cfg, NewLogger(cfg, &testutil.SyncBuffer{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	addrc := make(chan string, 1)
	go func() { done <- a.Serve(ctx, "intake-token-0123456789", func(addr string) { addrc <- addr }) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			a.Close()
		})
	}
	t.Cleanup(stop)
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	return cfg, a, addr, stop
}

// thaw unpauses a container and thaws its v1 freezer cgroup, so that it
// can be removed whichever way it was frozen.
func thaw(cli *client.Client, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = cli.ContainerUnpause(ctx, id)
	_ = os.WriteFile("/sys/fs/cgroup/freezer/docker/"+id+"/freezer.state", []byte("THAWED"), 0)
}

// number reads a JSON number decoded into an alert field or entry detail.
func number(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case json.Number:
		i, _ := n.Int64()
		return i
	}
	return 0
}
