package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/internal/store"
)

// TestSilenceCommands: without a server, riposte silence works on the
// store directly, with the OS user as the actor.
func TestSilenceCommands(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	out, errText, code := run(t, "", "silence", "add", "--data", data, "--rule", "Read sensitive file*", "--for", "1h", "--comment", "backup job", "--output", "json")
	var s store.Silence
	if code != exitOK || json.Unmarshal([]byte(out), &s) != nil || s.ID == "" || s.Comment != "backup job" || !strings.HasPrefix(s.CreatedBy, "cli:") {
		t.Fatalf("add: exit %d (%s)\n%s", code, errText, out)
	}
	out, _, code = run(t, "", "silence", "list", "--data", data)
	if code != exitOK || !strings.Contains(out, s.ID) || !strings.Contains(out, `rule="Read sensitive file*"`) || !strings.Contains(out, "backup job") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	out, _, code = run(t, "", "silence", "add", "--data", data, "--rule", "Terminal*", "--scope", "all", "--for", "30m")
	if code != exitOK || !strings.Contains(out, "pending") {
		t.Fatalf("add scope all: exit %d\n%s", code, out)
	}
	if out, _, code = run(t, "", "silence", "expire", "--data", data, s.ID); code != exitOK || !strings.Contains(out, "expired") {
		t.Fatalf("expire: exit %d\n%s", code, out)
	}
	out, _, code = run(t, "", "silence", "list", "--data", data, "--output", "json")
	var list []store.Silence
	if code != exitOK || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].ID == s.ID {
		t.Fatalf("list after expire: exit %d\n%s", code, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"silence", "expire", "--data", data, s.ID}, "silence already ended"},
		{[]string{"silence", "expire", "--data", data, "sil-nope"}, "not found"},
		{[]string{"silence", "add", "--data", data, "--for", "1h"}, "no criterion set"},
		{[]string{"silence", "add", "--data", data, "--rule", "x"}, "ends_at or duration: one is required"},
		{[]string{"silence", "add", "--data", data, "--rule", "x", "--for", "1h", "--when", "rulee == 1"}, "when: invalid expression"},
		{[]string{"silence", "add", "--data", data, "--rule", "x", "--until", "tomorrow"}, "--until: want an RFC 3339 time"},
		{[]string{"silence", "add", "--data", data, "--rule", "x", "--for", "1h", "--scope", "everything"}, `scope: must be notify or all, got "everything"`},
		{[]string{"silence", "list", "--data", data, "--output", "yaml"}, "--output: want text or json"},
	} {
		t.Run(strings.Join(tc.args[4:], " "), func(t *testing.T) {
			_, errText, code := run(t, "", tc.args...)
			if code != exitBadInput || !strings.Contains(errText, tc.want) {
				t.Errorf("exit %d %q, want %d with %q", code, errText, exitBadInput, tc.want)
			}
		})
	}
}
