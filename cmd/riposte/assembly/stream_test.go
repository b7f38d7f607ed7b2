package assembly

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/notifiers/syslog/syslogtest"
)

// TestStreamOutputs: one alert, with shell metacharacters in its text,
// and the journal entries it causes reach a syslog peer, a JSON-lines file
// and a program's stdin, through the engine and the outbox.
func TestStreamOutputs(t *testing.T) {
	dir := t.TempDir()
	peer, err := syslogtest.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	jsonl := filepath.Join(dir, "out", "riposte.jsonl")
	progOut := filepath.Join(dir, "program.out")
	pbs := filepath.Join(dir, "pb.yaml")
	if err := os.WriteFile(pbs, []byte("- playbook: note\n  actions:\n    - do: journal.note\n      with: {text: 'noted {{ .Rule }}'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`
playbooks: [%q]
engine: {poll: 20ms}
stream:
  outputs:
    - name: siem
      syslog: {network: tcp, address: %q}
    - name: archive
      file: {path: %q}
    - name: tee
      kinds: [alert]
      program: {argv: [tee, -a, %q], timeout: 10s}
`, pbs, peer.Addr(), jsonl, progOut)
	cfg, err := config.Parse(filepath.Join(dir, "riposte.yaml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = filepath.Join(dir, "data")
	a, err := Build(cfg, NewLogger(cfg, os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Engine.Run(ctx) }()
	defer func() { cancel(); <-done }()

	evil := "$(touch " + filepath.Join(dir, "pwned") + "); rm -rf / | & ` \" '"
	al := alert.Alert{ID: "stream-1", Rule: "Terminal shell in container", Priority: alert.PriorityWarning, Time: time.Now().UTC(),
		Output: "shell ran " + evil, OutputFields: map[string]any{"container.id": "3f9a1c2b7d4e", "container.name": "web"}}
	if _, err := a.Engine.Submit(context.Background(), []alert.Alert{al}, "test"); err != nil {
		t.Fatal(err)
	}

	// The JSON-lines file: the alert and the journal entries, one per line.
	want := map[string]bool{"alert": false, "alert.received": false, "playbook.matched": false, "note": false}
	deadline := time.Now().Add(15 * time.Second)
	for {
		data, _ := os.ReadFile(jsonl)
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			if rec["rule"] == al.Rule && rec["uuid"] == al.ID {
				want["alert"] = true
			}
			if typ, ok := rec["type"].(string); ok && rec["alert_id"] == al.ID {
				if _, ok := want[typ]; ok {
					want[typ] = true
				}
			}
		}
		all := true
		for _, ok := range want {
			all = all && ok
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file output missing records %v:\n%s", want, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The program got the alert on stdin, byte for byte, and ran nothing.
	for {
		data, _ := os.ReadFile(progOut)
		if strings.Contains(string(data), `"uuid":"stream-1"`) {
			var rec alert.Alert
			if err := json.Unmarshal([]byte(strings.TrimSpace(string(data))), &rec); err != nil || rec.Output != al.Output {
				t.Errorf("program stdin: %v, output %q, want %q", err, rec.Output, al.Output)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("program never got the alert: %q", data)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Error("alert text was executed")
	}
	// Syslog: RFC 5424 messages for the alert and its entries.
	seen := map[string]bool{}
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	for !(seen["alert"] && seen["note"]) {
		m, err := peer.Next(rctx)
		if err != nil {
			t.Fatalf("syslog: %v (seen %v)", err, seen)
		}
		if m.AppName != "riposte" {
			t.Errorf("app name %q", m.AppName)
		}
		seen[m.MsgID] = true
	}
}
