package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly"
	"github.com/riposte-sec/riposte/internal/store/postgres/pgtest"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// pg is this test binary's PostgreSQL server, started on first use.
var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

const e2eToken = "e2e-intake-token-0123456789"

const notePlaybook = `
- playbook: note-every-alert
  actions:
    - do: journal.note
      with: {text: 'seen {{ .ID }}'}
`

// TestServeOnPostgres: `riposte serve --store postgres://...` takes an
// alert, runs its playbook, and `riposte journal show|verify --store` read
// the journal it wrote to PostgreSQL.
func TestServeOnPostgres(t *testing.T) {
	url := pg.Database(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	pbs := filepath.Join(dir, "playbooks.yaml")
	if err := os.WriteFile(pbs, []byte(notePlaybook), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	var logs testutil.SyncBuffer
	go func() {
		root := newRootCmd()
		root.SetOut(&logs)
		root.SetErr(&logs)
		root.SetArgs([]string{"serve", "--store", url, "--data", data, "--playbooks", pbs,
			"--listen", "127.0.0.1:0", "--token", e2eToken})
		served <- root.ExecuteContext(ctx)
	}()
	var addr string
	testutil.Eventually(t, 20*time.Second, func() bool {
		b, err := os.ReadFile(assembly.ServeInfoPath(data))
		var info assembly.ServeInfo
		if err != nil || json.Unmarshal(b, &info) != nil || info.PID != os.Getpid() {
			return false
		}
		addr = info.Listen
		return true
	}, "serve did not start:\n%s", &logs)

	body := `{"uuid":"e2e-pg-1","time":"2026-11-24T10:00:00Z","rule":"Terminal shell in container","priority":"Warning","output":"x","output_fields":{"container.id":"abc123"}}`
	for range 2 { // the second is a duplicate: one alert, one incident
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/alerts", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("intake answered %d", resp.StatusCode)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		out, _, code := run(t, "", "journal", "show", "--store", url, "--type", "note", "-o", "json")
		return code == exitOK && strings.Contains(out, "seen e2e-pg-1")
	}, "the playbook's note never reached the journal:\n%s", &logs)
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v\n%s", err, &logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context ended")
	}

	out, errText, code := run(t, "", "journal", "show", "--store", url, "-o", "json")
	if code != exitOK {
		t.Fatalf("journal show: %d %s", code, errText)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("journal line %q: %v", line, err)
		}
		counts[e.Type]++
	}
	want := map[string]int{"alert.received": 1, "alert.duplicate": 1, "incident.opened": 1, "note": 1}
	for typ, n := range want {
		if counts[typ] != n {
			t.Errorf("%d %s entries, want %d (journal: %v)", counts[typ], typ, n, counts)
		}
	}
	out, errText, code = run(t, "", "journal", "verify", "--store", url)
	if code != exitOK || !strings.HasPrefix(out, "journal ok: ") {
		t.Fatalf("journal verify --store: code %d, %q %s", code, out, errText)
	}
	// The environment selects the store as the flag does.
	t.Setenv(assembly.StoreEnv, url)
	out, _, code = run(t, "", "journal", "verify", "-o", "json")
	var rep struct {
		Entries int `json:"entries"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || rep.Entries < 4 {
		t.Fatalf("journal verify with %s: code %d, %s", assembly.StoreEnv, code, out)
	}
	if _, errText, code := run(t, "", "journal", "verify", "--store", "mysql://db"); code != exitBadInput || !strings.Contains(errText, "postgres://") {
		t.Fatalf("journal verify with a bad URL: %d %s", code, errText)
	}
}
