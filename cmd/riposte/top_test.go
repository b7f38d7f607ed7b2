package main

import (
	"strings"
	"testing"
)

// TestTopBadInput: bad flags are refused with exit 2 and a message naming
// the flag, before anything starts (no detector, no terminal).
func TestTopBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown view", []string{"top", "--view", "users"},
			`--view: parse view "users": want one of containers, procs, connections, spy-users, files, incidents`},
		{"missing capture", []string{"top", "--capture", "/nonexistent/syscalls.jsonl.gz"}, "--capture: open capture file: "},
		{"filter with capture", []string{"top", "--capture", "x", "--filter", `evt.type == "open"`}, "--filter: not with --capture"},
		{"bad filter", []string{"top", "--filter", `evt.typ == "open"`}, "--filter: "},
		{"arguments", []string{"top", "web"}, `unknown command "web" for "riposte top"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errText, code := run(t, "", tt.args...)
			if code != exitBadInput || !strings.Contains(errText, tt.want) {
				t.Errorf("exit %d error %q, want 2 with %q", code, errText, tt.want)
			}
		})
	}
}
