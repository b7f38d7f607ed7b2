package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
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
		{name: "pod", args: []string{"playbook", "test", "--playbooks", pbs, "../../examples/alerts/falco-shell-in-pod.json"},
			stdout: []string{"  pod       payments/api-7d9f8c6b5-x2x9q\n"}},
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

// TestLintWithConfig: names that depend on the configuration (a webhook
// endpoint, the Slack channel) fail `playbook lint --config` with the
// playbook's file and line, without reading a secret; the same playbooks
// pass against a config that has them.
func TestLintWithConfig(t *testing.T) {
	dir := t.TempDir()
	book := filepath.Join(dir, "book.yaml")
	if err := os.WriteFile(book, []byte(`- playbook: tell
  actions:
    - do: webhook.post
      with: {endpoint: soc}
    - do: slack.notify
`), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.yaml", `playbooks: [book.yaml]
notifiers:
  webhook:
    endpoints: [{name: siem, url_env: RIPOSTE_TEST_UNSET_URL}]
  slack:
    token_env: RIPOSTE_TEST_UNSET_TOKEN
`)
	_, errText, code := run(t, "", "playbook", "lint", "--config", bad)
	for _, want := range []string{
		book + ":3: ",
		`no webhook endpoint "soc" in the config (configured: siem)`,
		book + ":5: ",
		"no channel: set with.channel or notifiers.slack.channel",
	} {
		if code == 0 || !strings.Contains(errText, want) {
			t.Errorf("lint bad config: exit %d, want %q in\n%s", code, want, errText)
		}
	}
	good := write("good.yaml", `playbooks: [book.yaml]
notifiers:
  webhook:
    endpoints: [{name: soc, url_env: RIPOSTE_TEST_UNSET_URL}]
  slack:
    token_env: RIPOSTE_TEST_UNSET_TOKEN
    channel: "#ir"
`)
	if out, errText, code := run(t, "", "playbook", "lint", "--config", good); code != 0 || !strings.Contains(out, "ok: 1 playbooks, 2 actions") {
		t.Errorf("lint good config: exit %d %q %s", code, out, errText)
	}
	typo := write("typo.yaml", "playbooks: [book.yaml]\nnotifiers:\n  slak: {channel: x}\n")
	if _, errText, code := run(t, "", "playbook", "lint", "--config", typo); code == 0 || !strings.Contains(errText, typo+":3: notifiers.slak: unknown section") {
		t.Errorf("lint typo config: exit %d %s", code, errText)
	}
}
