package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sample is a real capture: docker exec -t sh -c 'cat /etc/hostname; ls
// /tmp; id', then echo ping | nc to a listener on the bridge gateway.
const sample = "../../responders/capture/capfile/testdata/docker-exec.jsonl.gz"

func TestCaptureRead(t *testing.T) {
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.jsonl.gz")
	if err := os.WriteFile(cut, data[:len(data)-40], 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		not      []string
		errorHas string
	}{
		{name: "events", args: []string{"capture", "read", sample},
			stdout: []string{"# riposte capture 3c57201d9846-", `# process 22083:1 ppid=`, `cmdline="sh -c cat /etc/hostname; ls /tmp; id"`,
				"nc (22153:24) connect fd=3 tuple=172.17.0.2:39562->172.17.0.1:38735 proto=tcp res=0", "# ended "}},
		{name: "filter", args: []string{"capture", "read", sample, "--filter", `evt.type == "open" && fd.name startsWith "/etc/h"`},
			stdout: []string{"cat (22132:14) open(openat) fd=3 name=/etc/hostname flags=O_RDONLY"}, not: []string{"# process", "/etc/passwd"}},
		{name: "json", args: []string{"capture", "read", sample, "--output", "json", "--filter", `evt.type == "connect"`},
			stdout: []string{`{"type":"connect","syscall":"connect"`, `"remote_addr":"172.17.0.1","remote_port":38735`}, not: []string{"#"}},
		{name: "procs", args: []string{"capture", "read", sample, "--view", "procs"},
			stdout: []string{"sleep 3600", "  22132:14", "cat /etc/hostname", "ls [no exec]", "nc 172.17.0.1 38735"}},
		{name: "connections", args: []string{"capture", "read", sample, "--view", "connections"},
			stdout: []string{"out tcp   172.17.0.2:39562 -> 172.17.0.1:38735", `"nc 172.17.0.1 38735"`}},
		{name: "spy-users", args: []string{"capture", "read", sample, "--view", "spy-users"},
			stdout: []string{"pts/0    sh(22126)        22132    cat /etc/hostname", "ls [no exec]", "id [no exec]"}, not: []string{"nc "}},
		{name: "files", args: []string{"capture", "read", sample, "--view", "files", "--output", "json"},
			stdout: []string{`"path":"/etc/hostname","flags":"O_RDONLY"`}},
		{name: "incomplete", args: []string{"capture", "read", cut},
			stdout: []string{"# riposte capture", "riposte: warning: " + cut + ": capture file is incomplete"}},
		{name: "bad filter", args: []string{"capture", "read", sample, "--filter", "evt.typo == 1"}, code: exitBadInput,
			errorHas: "--filter: compile filter: unknown field evt.typo"},
		{name: "filter not bool", args: []string{"capture", "read", sample, "--filter", "proc.name"}, code: exitBadInput, errorHas: "--filter:"},
		{name: "bad view", args: []string{"capture", "read", sample, "--view", "users"}, code: exitBadInput,
			errorHas: `--view: unknown view "users" (want procs, connections, spy-users or files)`},
		{name: "bad output", args: []string{"capture", "read", sample, "--output", "yaml"}, code: exitBadInput, errorHas: `--output: unknown output "yaml"`},
		{name: "not a capture", args: []string{"capture", "read", "capture.go"}, code: exitBadInput,
			errorHas: "read capture.go: not a riposte capture file (gzip: invalid header)"},
		{name: "missing file", args: []string{"capture", "read", "nope.gz"}, code: exitBadInput, errorHas: "open capture file: open nope.gz: no such file"},
		{name: "no file", args: []string{"capture", "read"}, code: exitBadInput, errorHas: "accepts 1 arg(s), received 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errText, code := run(t, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (error %q)\n%s", code, tt.code, errText, out)
			}
			if tt.errorHas != "" && !strings.Contains(errText, tt.errorHas) {
				t.Errorf("error %q, want it to contain %q", errText, tt.errorHas)
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
}
