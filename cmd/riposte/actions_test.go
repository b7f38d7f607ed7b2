package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
)

func TestActionsTable(t *testing.T) {
	out, errText, code := run(t, "", "actions")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errText)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "ACTION") || !strings.Contains(lines[0], "DESTRUCTIVE") || !strings.Contains(lines[0], "PRIVILEGES") {
		t.Fatalf("header %q", lines[0])
	}
	// Every action of the catalog starts a row, in catalog order.
	var rows []string
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(l, " ") {
			rows = append(rows, f[0])
		}
	}
	if want := integrations.Catalog().Names(); strings.Join(rows, " ") != strings.Join(want, " ") {
		t.Errorf("rows %q, want %q", rows, want)
	}
	// Column widths depend on the whole catalog: match rows loosely.
	for _, want := range []string{
		`(?m)^container\.kill\s+yes\s+signal\s+signal\s+KILL\s+access to the Docker API socket`,
		`(?m)^container\.stop\s+yes\s+grace\s+duration\s+10s\s`,
		`(?m)^container\.pause\s+yes\s+-\s+access to the Docker API socket`,
		`(?m)^container\.snapshot\s+no\s+logs\s+int\s.*\n\s+export\s+bool\s+true\s`,
		`(?m)^journal\.note\s+no\s+text\s+string\s+\(required\)\s+-$`,
		`(?m)^pagerduty\.trigger\s+no\s+severity\s+critical\|error\|warning\|info\s+from priority\s`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("table lacks a row matching %s:\n%s", want, out)
		}
	}
}

func TestActionsJSON(t *testing.T) {
	out, errText, code := run(t, "", "actions", "--output", "json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errText)
	}
	var doc struct {
		Actions []struct {
			Name        string   `json:"name"`
			Help        string   `json:"help"`
			Destructive bool     `json:"destructive"`
			Idempotent  bool     `json:"idempotent"`
			Container   bool     `json:"container"`
			Privileges  []string `json:"privileges"`
			Params      []struct {
				Name, Type, Default, Help string
				Required                  bool
				Enum                      []string
			} `json:"params"`
		} `json:"actions"`
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not the documented shape: %v\n%s", err, out)
	}
	cat := integrations.Catalog()
	if len(doc.Actions) != len(cat.Names()) {
		t.Fatalf("%d actions, catalog has %d", len(doc.Actions), len(cat.Names()))
	}
	for _, a := range doc.Actions {
		spec, ok := cat.Lookup(a.Name)
		if !ok {
			t.Fatalf("unknown action %q", a.Name)
		}
		if a.Help != spec.Help || a.Destructive != spec.Destructive || a.Idempotent != spec.Idempotent || a.Container != spec.Container ||
			len(a.Params) != len(spec.Params) || len(a.Privileges) != len(spec.Privileges) || a.Params == nil || a.Privileges == nil {
			t.Errorf("%s: %+v does not match its spec", a.Name, a)
		}
		for i, p := range a.Params {
			sp := spec.Params[i]
			if p.Name != sp.Name || p.Type != sp.Type.String() || p.Default != sp.Default || p.Required != sp.Required || p.Help != sp.Help ||
				strings.Join(p.Enum, "|") != strings.Join(sp.Enum, "|") {
				t.Errorf("%s.%s: %+v, spec %+v", a.Name, p.Name, p, sp)
			}
		}
	}
}

func TestActionsSelect(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		has      []string
		hasNot   []string
		errorHas string
	}{
		{name: "one action described", args: []string{"actions", "container.stop"},
			has:    []string{"container.stop\n  Stop the container", "destructive: yes", "grace  duration  10s  time between SIGTERM and SIGKILL", "protected containers are refused"},
			hasNot: []string{"container.kill"}},
		{name: "glob", args: []string{"actions", "container.*"},
			has: []string{"container.pause\n", "container.snapshot\n", "max_bytes", "write access to the evidence directory"}, hasNot: []string{"slack.notify"}},
		{name: "json filtered", args: []string{"actions", "-o", "json", "journal.*"},
			has: []string{`"name": "journal.note"`, `"required": true`, `"privileges": []`}, hasNot: []string{"container."}},
		{name: "unknown", args: []string{"actions", "container.explode"}, code: exitBadInput,
			errorHas: `no action matches "container.explode"`},
		{name: "bad pattern", args: []string{"actions", "container.["}, code: exitBadInput, errorHas: `bad pattern "container.["`},
		{name: "bad output", args: []string{"actions", "-o", "yaml"}, code: exitBadInput, errorHas: `--output: want text or json, got "yaml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errText, code := run(t, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (%s)\n%s", code, tt.code, errText, out)
			}
			for _, s := range tt.has {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.hasNot {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
			if tt.errorHas != "" && !strings.Contains(errText, tt.errorHas) {
				t.Errorf("error %q lacks %q", errText, tt.errorHas)
			}
		})
	}
}
