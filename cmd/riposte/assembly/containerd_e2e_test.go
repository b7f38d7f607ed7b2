package assembly

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/responders/containerd/containerdtest"
)

func containerAlertJSON(uuid, id string) string {
	b, _ := json.Marshal(map[string]any{
		"uuid": uuid, "time": time.Now().UTC().Format(time.RFC3339Nano),
		"rule": "Terminal shell in container", "priority": "Warning", "source": "syscall", "hostname": "node-1",
		"tags":          []string{"container", "shell"},
		"output":        "A shell was spawned in a container with an attached terminal (shell=sh)",
		"output_fields": map[string]any{"container.id": id[:12], "proc.cmdline": "sh -i", "user.name": "root"},
	})
	return string(b)
}

// TestE2EContainerdOnlyContainer: on a node where the container was made
// by containerd and Docker does not know it, an alert posted to
// /v1/alerts snapshots, quarantines (nftables in its network namespace)
// and pauses it through the containerd integration
// (one table row, one config section); a container carrying the protect
// label is journaled as blocked and left running.
func TestE2EContainerdOnlyContainer(t *testing.T) {
	cli := containerdtest.Client(t)
	ns, ctx := containerdtest.Namespace(t, cli)
	img := containerdtest.Image(t, cli, ctx)
	target, guarded := cgroupctltest.RandomID(t), cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, cli, ctx, img, target, map[string]string{"io.kubernetes.pod.name": "api-7d9f", "io.kubernetes.pod.namespace": "payments"})
	_, guardedTask := containerdtest.Run(t, cli, ctx, img, guarded, map[string]string{"riposte.protect": "true"})

	dir := t.TempDir()
	pbPath := filepath.Join(dir, "playbooks.yaml")
	pb := `
- playbook: containerd-shell
  match:
    rules: ["Terminal shell in container"]
  actions:
    - do: containerd.snapshot
      on_error: continue
    - do: containerd.quarantine
    - do: containerd.pause
`
	if err := os.WriteFile(pbPath, []byte(pb), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf("playbooks: [%q]\nengine: {poll: 20ms}\ncontainerd:\n  address: %q\n  namespaces: [%q]\n  pause: containerd\n",
		pbPath, containerdtest.Address(t), ns)
	cfg, err := config.Parse(filepath.Join(dir, "riposte.yaml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = filepath.Join(dir, "data")
	cfg.Listen = "127.0.0.1:0"
	s := serveApp(t, cfg)

	s.postAlert(t, containerAlertJSON("ctrd-e2e-1", target))
	s.postAlert(t, containerAlertJSON("ctrd-e2e-2", guarded))

	var done []store.Entry
	waitUntil(t, "containerd.pause to run", 20*time.Second, func() bool {
		done = journal(t, s.app, store.Filter{AlertID: "ctrd-e2e-1", Types: []store.EntryType{store.ActionSucceeded, store.ActionFailed, store.ActionBlockedProtected}})
		return len(done) == 3
	})
	for i, want := range []string{"containerd.snapshot", "containerd.quarantine", "containerd.pause"} {
		if done[i].Type != store.ActionSucceeded || done[i].Action != want {
			t.Fatalf("journal entry %d: %+v, want %s succeeded", i, done[i], want)
		}
	}
	if done[0].SHA256 == "" || done[1].Detail["table"] != "inet riposte_quarantine" || done[2].Detail["pod_name"] != "api-7d9f" {
		t.Fatalf("journal: snapshot sha256 %q, quarantine detail %v, pause detail %v", done[0].SHA256, done[1].Detail, done[2].Detail)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Paused {
		t.Fatalf("target task: %+v, %v; want paused", st, err)
	}

	var blocked []store.Entry
	waitUntil(t, "the protected container's actions to be refused", 20*time.Second, func() bool {
		blocked = journal(t, s.app, store.Filter{AlertID: "ctrd-e2e-2", Types: []store.EntryType{store.ActionSucceeded, store.ActionFailed, store.ActionBlockedProtected}})
		return len(blocked) > 0 && blocked[len(blocked)-1].Action == "containerd.pause"
	})
	for _, e := range blocked {
		if e.Type != store.ActionBlockedProtected {
			t.Fatalf("protected container: journal %+v", e)
		}
	}
	if st, err := guardedTask.Status(ctx); err != nil || st.Status != containerd.Running {
		t.Fatalf("protected task: %+v, %v; want running", st, err)
	}
}

// TestContainerdConfigErrors: a bad containerd section stops the build
// with the file, line and field.
func TestContainerdConfigErrors(t *testing.T) {
	dir := t.TempDir()
	pbPath := filepath.Join(dir, "playbooks.yaml")
	if err := os.WriteFile(pbPath, []byte("- playbook: p\n  match: {rules: [x]}\n  actions: [{do: containerd.pause}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, section, want string }{
		{"enum", "  pause: thaw\n", `riposte.yaml: pause: want containerd or freezer, got "thaw"`},
		{"unknown key", "  namespace: k8s.io\n", `riposte.yaml:5: containerd.namespace: unknown field (want one of address, namespaces,`},
		{"validate", "  namespaces: [\"bad ns\"]\n", `containerd responder config: namespaces[0]: invalid containerd namespace "bad ns"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yml := fmt.Sprintf("playbooks: [%q]\nlog: {level: error}\ncontainerd:\n  address: /nonexistent/containerd.sock\n%s", pbPath, tt.section)
			cfg, err := config.Parse(filepath.Join(dir, "riposte.yaml"), []byte(yml))
			if err == nil {
				cfg.Data = filepath.Join(dir, "data")
				_, err = Build(cfg, NewLogger(cfg, io.Discard))
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
