package secret

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("token", "xoxb-from-file\n")
	empty := write("empty", " \n")
	env := func(k string) (string, bool) {
		switch k {
		case "SET":
			return "  xoxb-from-env  ", true
		case "EMPTY":
			return "", true
		}
		return "", false
	}
	src := func(e, f string) Source {
		return Source{What: "slack bot token", EnvKey: "token_env", FileKey: "token_file", Env: e, File: f}
	}
	tests := []struct {
		name string
		src  Source
		want string
		err  string
	}{
		{"env", src("SET", ""), "xoxb-from-env", ""},
		{"file", src("", good), "xoxb-from-file", ""},
		{"unset variable", src("UNSET", ""), "", "slack bot token: environment variable UNSET (token_env) is not set"},
		{"empty variable", src("EMPTY", ""), "", "slack bot token: environment variable EMPTY (token_env) is empty"},
		{"missing file", src("", filepath.Join(dir, "nope")), "", "slack bot token: read token_file " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"empty file", src("", empty), "", "slack bot token: file " + empty + " (token_file) is empty"},
		{"both", src("SET", good), "", "slack bot token: set token_env or token_file, not both"},
		{"neither", src("", ""), "", "slack bot token: not configured: set token_env or token_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.src.Load(env)
			if got != tt.want {
				t.Errorf("value %q, want %q", got, tt.want)
			}
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if msg != tt.err {
				t.Errorf("error %q, want %q", msg, tt.err)
			}
		})
	}
}

func TestRedactor(t *testing.T) {
	r := NewRedactor("xoxb-123456", "", "abc")
	base := errors.New("root")
	err := fmt.Errorf("post: token xoxb-123456 refused (abc): %w", base)
	red := r.Error(err)
	if red.Error() != "post: token [redacted] refused (abc): root" {
		t.Errorf("redacted %q", red)
	}
	if !errors.Is(red, base) {
		t.Error("redaction broke the error chain")
	}
	if clean := errors.New("nothing secret"); r.Error(clean) != clean {
		t.Error("clean error replaced")
	}
	if r.Error(nil) != nil || (Redactor{}).Error(err) != err || (Redactor{}).String("x") != "x" {
		t.Error("nil or empty redactor misbehaves")
	}
}
