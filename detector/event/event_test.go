package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestContainerIDs(t *testing.T) {
	full := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		c       Container
		short   string
		host    bool
		matches map[string]bool
	}{
		{"container", Container{ID: full}, full[:12], false, map[string]bool{full: true, full[:12]: true, full[:11]: false, "host": false, "": false, strings.Repeat("cd", 6): false}},
		{"host", Container{ID: HostID}, HostID, true, map[string]bool{"host": true, "": true, full[:12]: false}},
		{"unset is host", Container{}, HostID, true, map[string]bool{"host": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.ShortID(); got != tt.short {
				t.Errorf("ShortID = %q, want %q", got, tt.short)
			}
			if got := tt.c.IsHost(); got != tt.host {
				t.Errorf("IsHost = %v", got)
			}
			for id, want := range tt.matches {
				if got := tt.c.MatchesID(id); got != want {
					t.Errorf("MatchesID(%q) = %v, want %v", id, got, want)
				}
			}
		})
	}
}

func TestCmdlineAndJSON(t *testing.T) {
	ev := Event{Type: Exec, Comm: "sh", Args: []string{"/bin/sh", "-c", "cat /etc/shadow"}, Time: time.Unix(1, 2).UTC(), Container: Container{ID: HostID}}
	if got := ev.Cmdline(); got != "sh -c cat /etc/shadow" {
		t.Fatalf("Cmdline = %q", got)
	}
	if got := (&Event{Comm: "kworker"}).Cmdline(); got != "kworker" {
		t.Fatalf("Cmdline without args = %q", got)
	}
	if got := (&Event{Comm: "top", Args: []string{"/usr/bin/top"}}).Cmdline(); got != "top" {
		t.Fatalf("Cmdline with argv[0] only = %q, want no trailing space", got)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Type != Exec || back.Cmdline() != ev.Cmdline() || !back.Time.Equal(ev.Time) || back.Container.ID != HostID {
		t.Fatalf("round trip: %s -> %+v", b, back)
	}
	if strings.Contains(string(b), "remote_addr") {
		t.Fatalf("empty network fields are not omitted: %s", b)
	}
}
