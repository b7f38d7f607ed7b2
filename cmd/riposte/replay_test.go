package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/engine"
	"github.com/riposte-sec/riposte/internal/replay"
	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/playbooks"
)

const replayRecorded = `
- playbook: contain
  match: {rules: ["Terminal shell in container"]}
  actions:
    - do: email.send
    - do: container.pause
- playbook: audit
  match: {rules: ["Read sensitive file*"]}
  actions:
    - do: journal.note
      with: {text: "read {{ .Rule }}"}
`

// recordJournal runs the engine (dry run: nothing executed) over three
// alerts with replayRecorded: a shell alert, then, once a silence of
// scope notify on the shell rule is in force, another one, and a
// read-file alert. It returns the data directory.
func recordJournal(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	st, err := store.Open(store.PathIn(dir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	set, err := playbooks.Parse(integrations.Catalog(), playbooks.Source{Name: "recorded.yaml", Data: []byte(replayRecorded)})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(engine.Config{DryRun: true, Poll: 10 * time.Millisecond}, engine.Deps{Store: st, Playbooks: set,
		Catalog: integrations.Catalog(), Silences: silence.NewCache(st, time.Nanosecond, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	processed := func(id string) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, func() bool {
			es, err := st.Entries(context.Background(), store.Filter{AlertID: id, Types: []store.EntryType{store.PlaybookMatched}})
			return err == nil && len(es) > 0
		}, "alert %s not processed", id)
	}
	mk := func(id, rule string) alert.Alert {
		return alert.Alert{ID: id, Time: time.Now(), Rule: rule, Priority: alert.PriorityWarning, Source: "syscall",
			OutputFields: map[string]any{"container.id": "3f9a1c2b4d5e", "container.name": "web"}}
	}
	submit := func(a alert.Alert) {
		t.Helper()
		if _, err := eng.Submit(context.Background(), []alert.Alert{a}, "test"); err != nil {
			t.Fatal(err)
		}
		processed(a.ID)
	}
	submit(mk("shell-1", "Terminal shell in container"))
	now := time.Now()
	if _, err := silence.Add(context.Background(), st, store.Silence{Matcher: store.SilenceMatcher{Rules: []string{"Terminal shell*"}},
		Scope: store.ScopeNotify, StartsAt: now, EndsAt: now.Add(time.Hour), CreatedBy: "op:test"}); err != nil {
		t.Fatal(err)
	}
	submit(mk("shell-2", "Terminal shell in container"))
	submit(mk("read-1", "Read sensitive file untrusted"))
	return dir
}

func TestPlaybookReplay(t *testing.T) {
	data := recordJournal(t)
	before := headOf(t, data)
	write := func(yml string) string {
		p := filepath.Join(t.TempDir(), "playbooks.yaml")
		if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	changed := strings.Replace(replayRecorded, "    - do: container.pause\n", "    - do: container.snapshot\n", 1)
	changed = strings.Replace(changed, `["Read sensitive file*"]`, `["Read sensitive file*"], priority: ">=error"`, 1)
	tests := []struct {
		name   string
		yml    string
		code   int
		stdout []string
		not    []string
	}{
		// Unchanged: no diff; the silence in force at shell-2's reception
		// mutes its email again, the one at shell-1's does not exist.
		{"unchanged", replayRecorded, exitOK, []string{"3 alerts since", "0 would be handled otherwise"}, []string{"+ ", "- "}},
		{"changed", changed, exitFailed, []string{
			"shell-1  Terminal shell in container in 3f9a1c2b4d5e\n  + contain[1] container.snapshot\n  - contain[1] container.pause\n",
			"shell-2  Terminal shell in container in 3f9a1c2b4d5e  (silenced by sil-",
			"read-1  Read sensitive file untrusted in 3f9a1c2b4d5e\n  - audit[0] journal.note\n",
			"3 alerts since", "3 would be handled otherwise",
		}, []string{"email.send"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errText, code := run(t, "", "playbook", "replay", "--since", "1h", "--data", data, "--playbooks", write(tt.yml))
			if code != tt.code {
				t.Fatalf("exit %d (%s), want %d\n%s", code, errText, tt.code, out)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
		})
	}

	out, _, code := run(t, "", "playbook", "replay", "--since", "1h", "--data", data, "--playbooks", write(changed), "--output", "json")
	var rep replay.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitFailed {
		t.Fatalf("json: exit %d, %v\n%s", code, err, out)
	}
	if rep.Alerts != 3 || rep.Differ != 3 || len(rep.Results) != 3 || rep.Results[1].Silence == "" ||
		len(rep.Results[0].Added) != 1 || rep.Results[0].Added[0] != (replay.Action{Playbook: "contain", Index: 1, Do: "container.snapshot"}) {
		t.Fatalf("json report %+v", rep)
	}

	// Nothing was written: the journal's head is where recording left it.
	if h := headOf(t, data); h != before {
		t.Errorf("replay wrote to the store: head %+v, was %+v", h, before)
	}

	// Bad input.
	for _, args := range [][]string{
		{"playbook", "replay", "--since", "0s", "--data", data, "--playbooks", write(replayRecorded)},
		{"playbook", "replay", "--data", data},
		{"playbook", "replay", "--data", filepath.Join(t.TempDir(), "none"), "--playbooks", write(replayRecorded)},
		{"playbook", "replay", "--data", data, "--playbooks", write(replayRecorded), "--output", "yaml"},
	} {
		if _, errText, code := run(t, "", args...); code != exitBadInput {
			t.Errorf("%v: exit %d (%s), want %d", args, code, errText, exitBadInput)
		}
	}
}

func headOf(t *testing.T, data string) store.Head {
	t.Helper()
	st, err := store.Open(store.PathIn(data), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := st.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}
