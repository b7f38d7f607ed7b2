package config

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/internal/engine"
)

// Config is riposte.yaml.
type Config struct {
	// Listen is the HTTP address. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// Data holds the SQLite file and the evidence. Default ./riposte-data.
	Data string `yaml:"data"`
	// Playbooks are files or directories, relative to the config file.
	Playbooks []string `yaml:"playbooks"`
	// DryRun plans and journals everything and executes nothing.
	DryRun bool `yaml:"dry_run"`
	// Log level (debug, info, warn, error) and format (text, json).
	Log Log `yaml:"log"`
	// Auth of the alert intake.
	Auth Auth `yaml:"auth"`
	// TLS, when cert_file is set, makes the HTTP listener answer TLS only.
	TLS TLS `yaml:"tls"`
	// Metrics protects /metrics.
	Metrics Metrics `yaml:"metrics"`
	// Store tuning.
	Store Store `yaml:"store"`
	// Journal anchoring: signed checkpoints of the chain's head.
	Journal Journal `yaml:"journal"`
	// Engine tuning and guardrails (blast radius, approvers).
	Engine engine.Config `yaml:"engine"`
	// Cluster: container actions routed to node agents.
	Cluster Cluster `yaml:"cluster"`

	// The detector's section, decoded by the detector.
	Detector  yaml.Node `yaml:"detector"`
	Notifiers Notifiers `yaml:"notifiers"`
	// Sections are the integrations' sections ("docker", "kubernetes",
	// "capture", "stream"), by key; each integration decodes its own, and the
	// integration table refuses a key no integration owns (Unknown).
	Sections map[string]yaml.Node `yaml:",inline"`

	// File is where the config was read from ("" for defaults).
	File string `yaml:"-"`
}

// FallbackLog is notifiers.fallback's value that delivers the
// notifications of unconfigured notifiers to the log.
const FallbackLog = "log"

// Notifiers are the notifier sections.
type Notifiers struct {
	// Fallback: "" (default) refuses to start when a playbook uses a
	// notifier that is not configured; "log" writes its notifications to
	// riposte's log instead (demos, make run).
	Fallback string `yaml:"fallback"`
	// Sections are the notifiers' sections ("slack", "pagerduty"), by key.
	Sections map[string]yaml.Node `yaml:",inline"`
}

// Section returns an integration's section by its path ("docker",
// "notifiers.slack"); nil when the config does not have it (or it is null).
func (c *Config) Section(path string) *yaml.Node {
	m := c.Sections
	if name, ok := strings.CutPrefix(path, "notifiers."); ok {
		m, path = c.Notifiers.Sections, name
	}
	n, ok := m[path]
	if !ok || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return nil
	}
	return &n
}

// SetSection replaces an integration's section (tests, generated configs).
func (c *Config) SetSection(path string, v any) error {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return fmt.Errorf("encode %s section: %w", path, err)
	}
	m := &c.Sections
	if name, ok := strings.CutPrefix(path, "notifiers."); ok {
		m, path = &c.Notifiers.Sections, name
	}
	if *m == nil {
		*m = map[string]yaml.Node{}
	}
	(*m)[path] = n
	return nil
}

// Unknown reports the sections no integration owns, with file:line:
// known lists the owned paths ("docker", "notifiers.slack").
func (c *Config) Unknown(known []string) error {
	own := map[string]bool{}
	for _, k := range known {
		own[k] = true
	}
	var errs []error
	check := func(prefix string, m map[string]yaml.Node, core reflect.Type) {
		want := fieldNames(core)
		for _, k := range known {
			if rest, ok := strings.CutPrefix(k, prefix); ok && !strings.Contains(rest, ".") {
				want = append(want, rest)
			}
		}
		for _, k := range sortedKeys(m) {
			if !own[prefix+k] {
				n := m[k]
				errs = append(errs, fmt.Errorf("%s:%d: %s%s: unknown section (want one of %s)", c.File, n.Line, prefix, k, strings.Join(want, ", ")))
			}
		}
	}
	check("", c.Sections, reflect.TypeOf(Config{}))
	check("notifiers.", c.Notifiers.Sections, reflect.TypeOf(Notifiers{}))
	return errors.Join(errs...)
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // default info
	Format string `yaml:"format"` // text (default) or json
}

// Auth configures how intake requests authenticate.
type Auth struct {
	// TokenEnv / TokenFile name where the bearer token is. When neither is
	// set and RIPOSTE_TOKEN is empty, serve generates one into
	// <data>/token (mode 0600).
	TokenEnv  string `yaml:"token_env"`
	TokenFile string `yaml:"token_file"`
	// HMACSecretEnv / HMACSecretFile enable signed requests.
	HMACSecretEnv  string `yaml:"hmac_secret_env"`
	HMACSecretFile string `yaml:"hmac_secret_file"`
	// MaxBody caps a request body in bytes. Default 1 MiB.
	MaxBody int64 `yaml:"max_body"`
	// MaxInFlight bounds the intake bytes held at once; beyond it
	// requests are answered 503 with Retry-After. Default 16 × max_body.
	MaxInFlight int64 `yaml:"max_in_flight"`
	// Tokens are named credentials with a scope (intake, operator,
	// read-only, agent), read from a file or the environment; SIGHUP reads the
	// list and the values again.
	Tokens []NamedToken `yaml:"tokens"`
	// Socket is the local unix socket `riposte act` uses; its peer's OS
	// user is the identity. Default <data>/riposte.sock; "off" disables.
	Socket string `yaml:"socket"`
	// SocketUsers may act through the socket besides root and the
	// server's own user (they need access to the socket file too).
	SocketUsers []string `yaml:"socket_users"`
	// SocketGroup, when set, owns the socket file (mode 0660), so that
	// its members can open it; the peer check still applies.
	SocketGroup string `yaml:"socket_group"`
}

// SocketOff disables the local socket.
const SocketOff = "off"

// SocketPath is where the local socket lives ("" when disabled).
func (c *Config) SocketPath() string {
	switch c.Auth.Socket {
	case SocketOff:
		return ""
	case "":
		return filepath.Join(c.Data, "riposte.sock")
	}
	return c.Auth.Socket
}

// NamedToken is one credential of auth.tokens.
type NamedToken struct {
	Name  string `yaml:"name"`
	Scope string `yaml:"scope"`
	// File or Env holds the token (one of them).
	File string `yaml:"file"`
	Env  string `yaml:"env"`
	// Node binds a token of scope agent to the node whose agent holds it
	// (its --node): the replicas take that node's alerts and actions only
	// from it. Required for scope agent; one token per node.
	Node string `yaml:"node"`
	// Token is the value, read by ReadTokens.
	Token string `yaml:"-"`
}

// ReadTokens reads the value of every auth.tokens entry; an error names
// the entry and where it looked, never a value.
func (c *Config) ReadTokens() ([]NamedToken, error) {
	out := make([]NamedToken, 0, len(c.Auth.Tokens))
	var errs []error
	for i, t := range c.Auth.Tokens {
		var v string
		switch {
		case t.File != "":
			b, err := os.ReadFile(t.File)
			if err != nil {
				errs = append(errs, fmt.Errorf("auth.tokens[%d] %s: %w", i, t.Name, err))
				continue
			}
			v = strings.TrimSpace(string(b))
		case t.Env != "":
			v = strings.TrimSpace(os.Getenv(t.Env))
		}
		if v == "" {
			errs = append(errs, fmt.Errorf("auth.tokens[%d] %s: %s is empty or not set", i, t.Name, t.where()))
			continue
		}
		t.Token = v
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// HasIntakeTokens reports whether auth.tokens names an intake token.
func (c *Config) HasIntakeTokens() bool {
	for _, t := range c.Auth.Tokens {
		if t.Scope == "intake" {
			return true
		}
	}
	return false
}

func (t NamedToken) where() string {
	if t.File != "" {
		return "file " + t.File
	}
	return "environment variable " + t.Env
}

// TLS configures the HTTP listener's TLS (PEM files, reloaded on SIGHUP
// and when they change).
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile verifies client certificates (mTLS).
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth: none (default), verify_if_given or require.
	ClientAuth string `yaml:"client_auth"`
}

// Enabled reports whether the listener answers TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Metrics configures the /metrics endpoint.
type Metrics struct {
	// TokenFile holds the bearer token /metrics requires; "": open.
	TokenFile string `yaml:"token_file"`
}

// MetricsToken reads metrics.token_file ("" when not set).
func (c *Config) MetricsToken() (string, error) {
	if c.Metrics.TokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.Metrics.TokenFile)
	if err != nil {
		return "", fmt.Errorf("metrics.token_file: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if len(v) < 16 {
		return "", fmt.Errorf("metrics.token_file: %s holds a token shorter than 16 characters", c.Metrics.TokenFile)
	}
	return v, nil
}

// Store selects and tunes the store: SQLite in Data by default, or the
// PostgreSQL database at URL (cluster mode: replicas share it).
type Store struct {
	// URL, when set, is a postgres:// (or postgresql://) connection URL.
	// RIPOSTE_STORE and --store override it.
	URL string `yaml:"url"`
	// IncidentWindow groups alerts of one container and rule. Default 10m.
	IncidentWindow time.Duration `yaml:"incident_window"`
	// ClockSkew: an alert whose time is further than this from when it was
	// received is grouped by its receive time. Default 5m.
	ClockSkew time.Duration `yaml:"clock_skew"`
}

// Cluster configures cluster mode's node agents (riposte agent).
type Cluster struct {
	// RouteContainerActions sends every container action (pause, kill,
	// quarantine, snapshot, capture, containerd's) of an alert to the
	// agent of the alert's node (its hostname) instead of running it in
	// this replica. An action without an alert (riposte act) runs here.
	RouteContainerActions bool `yaml:"route_container_actions"`
	// AgentTimeout: an action no agent of its node took within it fails,
	// journaled. Default 30s.
	AgentTimeout time.Duration `yaml:"agent_timeout"`
}

// Journal configures the journal's anchoring.
type Journal struct {
	Anchor Anchor `yaml:"anchor"`
}

// Anchor configures signed checkpoints of the journal's head, written to
// the journal and to an anchor file every Every entries and on shutdown.
type Anchor struct {
	// Off disables checkpoints.
	Off bool `yaml:"off"`
	// KeyFile is the ed25519 private key (PEM, PKCS #8). Default
	// <data>/anchor.key, created on first start; keep it outside the data
	// directory to stop whoever can write the database from re-signing.
	KeyFile string `yaml:"key_file"`
	// File receives one checkpoint per line. Default <data>/anchors.jsonl;
	// put it on other storage (or let the stream outputs carry the
	// journal.checkpoint entries off the host).
	File string `yaml:"file"`
	// Every is the number of entries between checkpoints. Default 1000.
	Every int64 `yaml:"every"`
	// Interval is how often the writer looks. Default 10s.
	Interval time.Duration `yaml:"interval"`
}

// AnchorKeyFile is journal.anchor.key_file or its default.
func (c *Config) AnchorKeyFile() string {
	if c.Journal.Anchor.KeyFile != "" {
		return c.Journal.Anchor.KeyFile
	}
	return filepath.Join(c.Data, "anchor.key")
}

// AnchorFile is journal.anchor.file or its default.
func (c *Config) AnchorFile() string {
	if c.Journal.Anchor.File != "" {
		return c.Journal.Anchor.File
	}
	return filepath.Join(c.Data, "anchors.jsonl")
}

// Defaults returns the configuration used without a file.
func Defaults() Config {
	return Config{Listen: "127.0.0.1:8080", Data: "riposte-data", Log: Log{Level: "info", Format: "text"}}
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

// Load reads a config file strictly. Relative playbook paths are taken
// relative to the file.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(path, data)
	if err != nil {
		return Config{}, err
	}
	for i, p := range c.Playbooks {
		c.Playbooks[i] = c.Resolve(p)
	}
	if c.Data != Defaults().Data {
		c.Data = c.Resolve(c.Data)
	}
	for _, p := range []*string{&c.TLS.CertFile, &c.TLS.KeyFile, &c.TLS.ClientCAFile, &c.Metrics.TokenFile, &c.Journal.Anchor.KeyFile, &c.Journal.Anchor.File} {
		*p = c.Resolve(*p)
	}
	for i := range c.Auth.Tokens {
		c.Auth.Tokens[i].File = c.Resolve(c.Auth.Tokens[i].File)
	}
	if c.Auth.Socket != SocketOff {
		c.Auth.Socket = c.Resolve(c.Auth.Socket)
	}
	return c, nil
}

// Resolve makes a path from the config file relative to the file's folder
// (absolute paths, and paths when there is no file, are kept).
func (c *Config) Resolve(p string) string {
	if c.File == "" || filepath.IsAbs(p) || p == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.File), p)
}

// Parse decodes config text; name is used in errors.
func Parse(name string, data []byte) (Config, error) {
	c := Defaults()
	c.File = name
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && err != io.EOF {
		return Config{}, positioned(name, err)
	}
	if err := c.notSections(); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// notSections refuses a key that is neither riposte's own nor a section
// (a mapping): a typo such as "lisen: x". A mistyped section is refused
// later by Unknown, which knows the integrations.
func (c *Config) notSections() error {
	var errs []error
	for _, m := range []struct {
		prefix string
		m      map[string]yaml.Node
		t      reflect.Type
	}{{"", c.Sections, reflect.TypeOf(Config{})}, {"notifiers.", c.Notifiers.Sections, reflect.TypeOf(Notifiers{})}} {
		for _, k := range sortedKeys(m.m) {
			if n := m.m[k]; n.Kind != yaml.MappingNode && !(n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				errs = append(errs, fmt.Errorf("%s:%d: %s%s: unknown field (want one of %s)", c.File, n.Line, m.prefix, k, strings.Join(fieldNames(m.t), ", ")))
			}
		}
	}
	return errors.Join(errs...)
}

// fieldNames lists a struct's yaml keys, inline maps left out.
func fieldNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" && f.IsExported() {
			names = append(names, name)
		}
	}
	return names
}

func sortedKeys(m map[string]yaml.Node) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// positioned turns yaml.v3's "yaml: line 3: ..." messages into
// "file:3: ...", one per line.
func positioned(name string, err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var errs []error
	for _, m := range msgs {
		if loc := yamlLine.FindStringSubmatchIndex(m); loc != nil {
			line, _ := strconv.Atoi(m[loc[2]:loc[3]])
			m = m[:loc[0]] + m[loc[1]:]
			errs = append(errs, fmt.Errorf("%s:%d: %s", name, line, strings.TrimPrefix(m, "yaml: ")))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %s", name, m))
	}
	return errors.Join(errs...)
}

// Validate checks values that YAML types cannot.
func (c *Config) Validate() error {
	var errs []error
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: want debug, info, warn or error, got %q", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: want text or json, got %q", c.Log.Format))
	}
	if c.Auth.TokenEnv != "" && c.Auth.TokenFile != "" {
		errs = append(errs, errors.New("auth: set token_env or token_file, not both"))
	}
	if c.Auth.HMACSecretEnv != "" && c.Auth.HMACSecretFile != "" {
		errs = append(errs, errors.New("auth: set hmac_secret_env or hmac_secret_file, not both"))
	}
	if f := c.Notifiers.Fallback; f != "" && f != FallbackLog {
		errs = append(errs, fmt.Errorf("notifiers.fallback: want log or nothing, got %q", f))
	}
	if c.Auth.MaxBody < 0 {
		errs = append(errs, errors.New("auth.max_body: must not be negative"))
	}
	body := c.Auth.MaxBody
	if body == 0 {
		body = 1 << 20
	}
	if c.Auth.MaxInFlight < 0 || (c.Auth.MaxInFlight > 0 && c.Auth.MaxInFlight < body) {
		errs = append(errs, errors.New("auth.max_in_flight: must hold at least one body (auth.max_body, default 1 MiB)"))
	}
	errs = append(errs, c.TLS.validate())
	if u := c.Store.URL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		errs = append(errs, errors.New("store.url: want a postgres:// or postgresql:// URL (leave it empty for SQLite in data)"))
	}
	for i, t := range c.Auth.Tokens {
		switch t.Scope {
		case "intake", "operator", "read-only", "agent":
		default:
			errs = append(errs, fmt.Errorf("auth.tokens[%d] %s: scope: want intake, operator, read-only or agent, got %q", i, t.Name, t.Scope))
		}
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("auth.tokens[%d]: name is empty", i))
		}
		if (t.File == "") == (t.Env == "") {
			errs = append(errs, fmt.Errorf("auth.tokens[%d] %s: set file or env, exactly one", i, t.Name))
		}
		switch {
		case t.Scope == "agent" && t.Node == "":
			errs = append(errs, fmt.Errorf("auth.tokens[%d] %s: scope agent needs node: the node whose agent holds the token (its --node), one token per node", i, t.Name))
		case t.Scope != "agent" && t.Node != "":
			errs = append(errs, fmt.Errorf("auth.tokens[%d] %s: node is for scope agent only", i, t.Name))
		case len(t.Node) > 253 || strings.ContainsAny(t.Node, " \t\r\n/"):
			errs = append(errs, fmt.Errorf("auth.tokens[%d] %s: node %.64q: want a host name (up to 253 characters, no spaces or '/')", i, t.Name, t.Node))
		}
	}
	if c.Store.ClockSkew < 0 {
		errs = append(errs, errors.New("store.clock_skew: must not be negative"))
	}
	if c.Cluster.AgentTimeout < 0 {
		errs = append(errs, errors.New("cluster.agent_timeout: must not be negative"))
	}
	if c.Journal.Anchor.Every < 0 || c.Journal.Anchor.Interval < 0 {
		errs = append(errs, errors.New("journal.anchor: every and interval must not be negative"))
	}
	if c.Engine.BlastRadius.Max < 0 {
		errs = append(errs, errors.New("engine.blast_radius.max: must not be negative"))
	}
	return errors.Join(errs...)
}

func (t TLS) validate() error {
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("tls: set both cert_file and key_file, or neither"))
	}
	switch t.ClientAuth {
	case "", "none":
	case "verify_if_given", "require":
		if t.ClientCAFile == "" {
			errs = append(errs, fmt.Errorf("tls.client_auth: %s needs tls.client_ca_file", t.ClientAuth))
		}
	default:
		errs = append(errs, fmt.Errorf("tls.client_auth: want none, verify_if_given or require, got %q", t.ClientAuth))
	}
	if !t.Enabled() && (t.ClientCAFile != "" || (t.ClientAuth != "" && t.ClientAuth != "none")) {
		errs = append(errs, errors.New("tls: client_ca_file and client_auth need cert_file and key_file"))
	}
	return errors.Join(errs...)
}

// Decode decodes an integration section strictly into out (a pointer to
// a struct with yaml tags): an unknown key or a wrong type is an error with
// file:line. An absent section leaves out as it is (its defaults).
func Decode(file, section string, n *yaml.Node, out any) error {
	if n == nil || n.Kind == 0 {
		return nil
	}
	errs := checkKeys(file, section, n, reflect.TypeOf(out))
	if err := n.Decode(out); err != nil {
		errs = append(errs, positioned(file, err))
	}
	return errors.Join(errs...)
}

// checkKeys reports mapping keys that t has no yaml field for.
func checkKeys(file, path string, n *yaml.Node, t reflect.Type) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case t == reflect.TypeOf(yaml.Node{}):
		return nil
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		var errs []error
		for i, e := range n.Content {
			errs = append(errs, checkKeys(file, fmt.Sprintf("%s[%d]", path, i), e, t.Elem())...)
		}
		return errs
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			errs = append(errs, checkKeys(file, path+"."+n.Content[i].Value, n.Content[i+1], t.Elem())...)
		}
		return errs
	case t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode:
		return nil
	}
	fields := map[string]reflect.Type{}
	var names []string
	open := false
	var collect func(reflect.Type)
	collect = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if strings.Contains(opts, "inline") {
				if f.Type.Kind() == reflect.Map {
					open = true // the map takes every other key
					continue
				}
				collect(f.Type)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			fields[name] = f.Type
			names = append(names, name)
		}
	}
	collect(t)
	var errs []error
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok && open {
			continue
		}
		if !ok {
			errs = append(errs, fmt.Errorf("%s:%d: %s.%s: unknown field (want one of %s)", file, k.Line, path, k.Value, strings.Join(names, ", ")))
			continue
		}
		errs = append(errs, checkKeys(file, path+"."+k.Value, v, ft)...)
	}
	return errs
}

// Token returns the intake bearer token: from auth.token_env / token_file,
// else RIPOSTE_TOKEN, else <data>/token, generated on first use (0600).
// generated reports a new token; the value is never logged.
func (c *Config) Token() (token string, where string, generated bool, err error) {
	switch {
	case c.Auth.TokenEnv != "":
		v := strings.TrimSpace(os.Getenv(c.Auth.TokenEnv))
		if v == "" {
			return "", "", false, fmt.Errorf("auth.token_env: environment variable %s is not set or empty", c.Auth.TokenEnv)
		}
		return v, "env " + c.Auth.TokenEnv, false, nil
	case c.Auth.TokenFile != "":
		b, err := os.ReadFile(c.Auth.TokenFile)
		if err != nil {
			return "", "", false, fmt.Errorf("auth.token_file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", "", false, fmt.Errorf("auth.token_file: %s is empty", c.Auth.TokenFile)
		}
		return v, "file " + c.Auth.TokenFile, false, nil
	}
	if v := strings.TrimSpace(os.Getenv("RIPOSTE_TOKEN")); v != "" {
		return v, "env RIPOSTE_TOKEN", false, nil
	}
	path := filepath.Join(c.Data, "token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), "file " + path, false, nil
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", false, fmt.Errorf("generate token: %w", err)
	}
	v := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return "", "", false, fmt.Errorf("generate token: %w", err)
	}
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", "", false, fmt.Errorf("generate token: %w", err)
	}
	return v, "file " + path, true, nil
}

// HMACSecret returns the signing secret for signed intake requests, or nil
// when none is configured.
func (c *Config) HMACSecret() ([]byte, error) {
	switch {
	case c.Auth.HMACSecretEnv != "":
		v := strings.TrimSpace(os.Getenv(c.Auth.HMACSecretEnv))
		if v == "" {
			return nil, fmt.Errorf("auth.hmac_secret_env: environment variable %s is not set or empty", c.Auth.HMACSecretEnv)
		}
		return []byte(v), nil
	case c.Auth.HMACSecretFile != "":
		b, err := os.ReadFile(c.Auth.HMACSecretFile)
		if err != nil {
			return nil, fmt.Errorf("auth.hmac_secret_file: %w", err)
		}
		return bytes.TrimSpace(b), nil
	}
	return nil, nil
}
