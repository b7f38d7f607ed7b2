package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStrict(t *testing.T) {
	tests := []struct {
		name, yml, want string
	}{
		{"unknown top-level key", "listen: :80\nlisen: x\n", "riposte.yaml:2: lisen: unknown field (want one of listen, data, playbooks, dry_run, log, auth, tls, metrics, store, journal, engine, cluster, detector, notifiers)"},
		{"wrong type", "engine:\n  workers: many\n", "riposte.yaml:2: cannot unmarshal !!str `many` into int"},
		{"bad duration", "engine:\n  action_timeout: soon\n", "riposte.yaml:2: cannot unmarshal !!str `soon` into time.Duration"},
		{"bad log level", "log: {level: loud}\n", `riposte.yaml: log.level: want debug, info, warn or error, got "loud"`},
		{"both token sources", "auth: {token_env: A, token_file: /x}\n", "riposte.yaml: auth: set token_env or token_file, not both"},
		{"tls cert without key", "tls: {cert_file: c.pem}\n", "riposte.yaml: tls: set both cert_file and key_file, or neither"},
		{"tls bad client_auth", "tls: {cert_file: c.pem, key_file: k.pem, client_auth: always}\n", `riposte.yaml: tls.client_auth: want none, verify_if_given or require, got "always"`},
		{"tls require without ca", "tls: {cert_file: c.pem, key_file: k.pem, client_auth: require}\n", "riposte.yaml: tls.client_auth: require needs tls.client_ca_file"},
		{"tls client ca without cert", "tls: {client_ca_file: ca.pem}\n", "riposte.yaml: tls: client_ca_file and client_auth need cert_file and key_file"},
		{"tls unknown key", "tls: {cert: c.pem}\n", "riposte.yaml:1: field cert not found in type config.TLS"},
		{"store url not postgres", "store: {url: mysql://db/riposte}\n", "riposte.yaml: store.url: want a postgres:// or postgresql:// URL (leave it empty for SQLite in data)"},
		{"token bad scope", "auth: {tokens: [{name: a, scope: admin, env: A}]}\n", `riposte.yaml: auth.tokens[0] a: scope: want intake, operator, read-only or agent, got "admin"`},
		{"token no source", "auth: {tokens: [{name: a, scope: intake}]}\n", "riposte.yaml: auth.tokens[0] a: set file or env, exactly one"},
		{"token two sources", "auth: {tokens: [{name: a, scope: intake, env: A, file: f}]}\n", "riposte.yaml: auth.tokens[0] a: set file or env, exactly one"},
		{"agent token without node", "auth: {tokens: [{name: a, scope: agent, env: A}]}\n", "riposte.yaml: auth.tokens[0] a: scope agent needs node: the node whose agent holds the token (its --node), one token per node"},
		{"node on an intake token", "auth: {tokens: [{name: a, scope: intake, env: A, node: n1}]}\n", "riposte.yaml: auth.tokens[0] a: node is for scope agent only"},
		{"agent token bad node", "auth: {tokens: [{name: a, scope: agent, env: A, node: a/b}]}\n", `riposte.yaml: auth.tokens[0] a: node "a/b": want a host name (up to 253 characters, no spaces or '/')`},
		{"token no name", "auth: {tokens: [{scope: intake, env: A}]}\n", "riposte.yaml: auth.tokens[0]: name is empty"},
		{"in-flight below a body", "auth: {max_body: 4096, max_in_flight: 1024}\n", "riposte.yaml: auth.max_in_flight: must hold at least one body (auth.max_body, default 1 MiB)"},
		{"token inline value", "auth: {tokens: [{name: a, scope: intake, token: secret}]}\n", "riposte.yaml:1: field token not found in type config.NamedToken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("riposte.yaml", []byte(tt.yml))
			if err == nil || err.Error() != tt.want {
				t.Errorf("error %v\nwant  %s", err, tt.want)
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	c, err := Parse("x.yaml", []byte(`
listen: 0.0.0.0:9000
dry_run: true
store: {url: "postgres://riposte@db.internal/riposte"}
engine:
  workers: 8
  blast_radius: {max: 3, window: 5m}
  approvers: ["@oncall"]
docker:
  anything: here
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:9000" || !c.DryRun || c.Engine.Workers != 8 || c.Engine.BlastRadius.Max != 3 ||
		c.Engine.BlastRadius.Window != 5*time.Minute || c.Data != "riposte-data" || c.Section("docker") == nil ||
		c.Store.URL != "postgres://riposte@db.internal/riposte" {
		t.Errorf("parsed %+v", c)
	}
}

func TestDecodeSection(t *testing.T) {
	type inner struct {
		Name string `yaml:"name"`
	}
	type section struct {
		Enabled *bool         `yaml:"enabled"`
		Grace   time.Duration `yaml:"grace"`
		Items   []inner       `yaml:"items"`
	}
	c, err := Parse("r.yaml", []byte("docker:\n  enabled: true\n  items:\n    - name: a\n    - nmae: b\n  gracе: 1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	var s section
	err = Decode(c.File, "docker", c.Section("docker"), &s)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"r.yaml:5: docker.items[1].nmae: unknown field (want one of name)", "r.yaml:6: docker.gracе: unknown field"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	c, err = Parse("r.yaml", []byte("docker:\n  enabled: false\n  grace: 3s\n"))
	if err != nil {
		t.Fatal(err)
	}
	s = section{}
	if err := Decode(c.File, "docker", c.Section("docker"), &s); err != nil || s.Enabled == nil || *s.Enabled || s.Grace != 3*time.Second {
		t.Errorf("decode: %v %+v", err, s)
	}
	var untouched section
	untouched.Grace = time.Minute
	if err := Decode(c.File, "capture", c.Section("capture"), &untouched); err != nil || untouched.Grace != time.Minute {
		t.Errorf("absent section changed defaults: %v %+v", err, untouched)
	}
}

func TestSections(t *testing.T) {
	c, err := Parse("r.yaml", []byte("docker:\n  host: unix:///x\nnotifiers:\n  fallback: log\n  slack:\n    token_env: T\n  pagerdutty:\n    routing_key_env: K\nkubernetess: {}\nwebhook: null\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Section("docker") == nil || c.Section("notifiers.slack") == nil || c.Notifiers.Fallback != "log" {
		t.Errorf("sections not found: %+v", c)
	}
	if c.Section("webhook") != nil || c.Section("notifiers.email") != nil {
		t.Error("a null or absent section is reported present")
	}
	err = c.Unknown([]string{"docker", "kubernetes", "webhook", "notifiers.slack", "notifiers.pagerduty"})
	for _, want := range []string{
		"r.yaml:8: notifiers.pagerdutty: unknown section (want one of fallback, slack, pagerduty)",
		"r.yaml:9: kubernetess: unknown section (want one of listen, data, playbooks, dry_run, log, auth, tls, metrics, store, journal, engine, cluster, detector, notifiers, docker, kubernetes, webhook)",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Unknown: want %q in\n%v", want, err)
		}
	}
	if err := c.SetSection("notifiers.email", map[string]any{"from": "a@b"}); err != nil || c.Section("notifiers.email") == nil {
		t.Errorf("SetSection: %v", err)
	}
}

func TestTokenGeneratedOnce(t *testing.T) {
	t.Setenv("RIPOSTE_TOKEN", "")
	c := Defaults()
	c.Data = t.TempDir()
	tok, where, gen, err := c.Token()
	if err != nil || !gen || len(tok) < 32 {
		t.Fatalf("first: %q %s %v %v", tok, where, gen, err)
	}
	st, err := os.Stat(filepath.Join(c.Data, "token"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	again, _, gen, err := c.Token()
	if err != nil || gen || again != tok {
		t.Errorf("second call: %q gen=%v err=%v", again, gen, err)
	}
	t.Setenv("RIPOSTE_TOKEN", "from-env-0123456789")
	if v, where, _, _ := c.Token(); v != "from-env-0123456789" || where != "env RIPOSTE_TOKEN" {
		t.Errorf("env token: %q %s", v, where)
	}
	c.Auth.TokenEnv = "RIPOSTE_TEST_UNSET_TOKEN"
	if _, _, _, err := c.Token(); err == nil || !strings.Contains(err.Error(), "RIPOSTE_TEST_UNSET_TOKEN is not set") {
		t.Errorf("unset token_env: %v", err)
	}
}

// TestReadTokens: auth.tokens values come from files (relative to the
// config) and the environment; an empty or missing one is an error naming
// the entry, never showing a value.
func TestReadTokens(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jane.token"), []byte("operator-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RIPOSTE_TEST_FALCO", "intake-token-0123456789")
	path := filepath.Join(dir, "riposte.yaml")
	yml := "auth:\n  socket_users: [jane]\n  tokens:\n  - {name: jane, scope: operator, file: jane.token}\n  - {name: falco, scope: intake, env: RIPOSTE_TEST_FALCO}\n"
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadTokens()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Token != "operator-token-0123456789" || got[1].Token != "intake-token-0123456789" || got[0].Scope != "operator" {
		t.Errorf("tokens %+v", got)
	}
	if p := c.SocketPath(); p != filepath.Join("riposte-data", "riposte.sock") {
		t.Errorf("default socket %q", p)
	}
	c.Auth.Tokens[1].Env = "RIPOSTE_TEST_UNSET"
	c.Auth.Tokens[0].File = filepath.Join(dir, "missing")
	_, err = c.ReadTokens()
	if err == nil || !strings.Contains(err.Error(), "auth.tokens[1] falco: environment variable RIPOSTE_TEST_UNSET is empty or not set") ||
		!strings.Contains(err.Error(), "auth.tokens[0] jane: open "+filepath.Join(dir, "missing")) {
		t.Errorf("err %v", err)
	}
	c.Auth.Socket = SocketOff
	if p := c.SocketPath(); p != "" {
		t.Errorf("socket off: %q", p)
	}
}
