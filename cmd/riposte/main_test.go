package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// run executes the command tree like main does and returns stdout, stderr
// text of the error, and the exit code.
func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return out.String(), "", exitOK
	}
	code := exitBadInput
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return out.String(), "", code
		}
	}
	return out.String(), err.Error(), code
}

func TestPlaybookTestCommand(t *testing.T) {
	const pbs = "../../examples/playbooks"
	tests := []struct {
		name     string
		args     []string
		stdin    string
		code     int
		stdout   []string // substrings
		errorHas string
	}{
		{name: "plan", args: []string{"playbook", "test", "--playbooks", pbs, "../../examples/alerts/falco-shell-in-container.json"},
			stdout: []string{"1. oncall-shell-in-container", "waits for approval", "staging-quarantine: priority Notice < Warning"}},
		{name: "expect met", args: []string{"playbook", "test", "--playbooks", pbs, "--expect", "staging-quarantine", "../../examples/alerts/falco-read-shadow.json"},
			stdout: []string{"container.quarantine"}},
		{name: "expect not met", code: exitFailed,
			args:     []string{"playbook", "test", "--playbooks", pbs, "--expect", "staging-quarantine", "../../examples/alerts/falco-shell-in-container.json"},
			errorHas: `expected playbook "staging-quarantine" to match, but priority Notice < Warning`},
		{name: "expect unknown playbook", code: exitBadInput,
			args:     []string{"playbook", "test", "--playbooks", pbs, "--expect", "nope", "../../examples/alerts/falco-read-shadow.json"},
			errorHas: `--expect "nope": no playbook has that name`},
		{name: "bad alert", code: exitBadInput,
			args:     []string{"playbook", "test", "--playbooks", pbs, "../../examples/alerts/bad-missing-rule.json"},
			errorHas: "bad-missing-rule.json: decode alert: field rule: missing"},
		{name: "missing alert file", code: exitBadInput,
			args: []string{"playbook", "test", "--playbooks", pbs, "nope.json"}, errorHas: "read alert: open nope.json"},
		{name: "no playbooks flag", code: exitBadInput,
			args: []string{"playbook", "test", "x.json"}, errorHas: "no playbooks given: use --playbooks PATH"},
		{name: "bad playbooks", code: exitBadInput,
			args: []string{"playbook", "test", "--playbooks", "../../playbooks/testdata/invalid/bad-when.yaml", "-"}, stdin: "{}",
			errorHas: "bad-when.yaml:4: playbook \"p\": match.when"},
		{name: "stdin", args: []string{"playbook", "test", "--playbooks", pbs, "-"},
			stdin:  `{"rule":"Write below binary dir","priority":"error","time":"2026-11-20T10:01:12Z","output_fields":{"container.id":"host"}}`,
			stdout: []string{"1. evidence-first-production", "journal-everything-else"}},
		{name: "bad output flag", code: exitBadInput,
			args: []string{"playbook", "test", "--playbooks", pbs, "-o", "yaml", "-"}, errorHas: `--output: want text or json, got "yaml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errText, code := run(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (error %q)\n%s", code, tt.code, errText, out)
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if tt.errorHas != "" && !strings.Contains(errText, tt.errorHas) {
				t.Errorf("error %q lacks %q", errText, tt.errorHas)
			}
		})
	}
}

func TestPlaybookTestJSONShape(t *testing.T) {
	out, errText, code := run(t, "", "playbook", "test", "--playbooks", "../../examples/playbooks", "--output", "json", "../../examples/alerts/falco-read-shadow.json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errText)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	if len(doc) != 3 || doc["alert"] == nil || doc["matched"] == nil || doc["skipped"] == nil {
		t.Fatalf("want exactly alert, matched, skipped; got %s", out)
	}
	var matched []struct {
		Playbook string `json:"playbook"`
		Actions  []struct {
			Do   string         `json:"do"`
			With map[string]any `json:"with"`
		} `json:"actions"`
	}
	if err := json.Unmarshal(doc["matched"], &matched); err != nil {
		t.Fatal(err)
	}
	if len(matched) != 1 || matched[0].Playbook != "staging-quarantine" || len(matched[0].Actions) != 3 ||
		matched[0].Actions[1].Do != "container.quarantine" || matched[0].Actions[0].With["logs"] != float64(500) {
		t.Errorf("matched = %+v", matched)
	}
	var skipped []struct{ Playbook, Reason string }
	if err := json.Unmarshal(doc["skipped"], &skipped); err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 3 || skipped[0].Reason != `playbook "staging-quarantine" matched first with continue: false` {
		t.Errorf("skipped = %+v", skipped)
	}
}

func TestPlaybookLint(t *testing.T) {
	out, errText, code := run(t, "", "playbook", "lint", "--playbooks", "../../examples/playbooks")
	if code != 0 || !strings.HasPrefix(out, "ok: 4 playbooks") {
		t.Errorf("lint examples: exit %d %q %s", code, out, errText)
	}
	_, errText, code = run(t, "", "playbook", "lint", "--playbooks", "../../playbooks/testdata/invalid/bad-param.yaml", "--playbooks", "../../playbooks/testdata/invalid/bad-if.yaml")
	if code != exitFailed || !strings.Contains(errText, "bad-param.yaml:6") || !strings.Contains(errText, "bad-if.yaml:5") {
		t.Errorf("lint invalid: exit %d, %s", code, errText)
	}
}
