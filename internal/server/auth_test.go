package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/riposte-sec/riposte/internal/metrics"
	"github.com/riposte-sec/riposte/internal/testutil"
)

const (
	intakeTok   = "intake-token-0123456789"
	operatorTok = "operator-token-0123456789"
	readTok     = "read-only-token-0123456789"
	agentTok    = "agent-token-0123456789"
)

// whoami answers with the identity the server established.
var whoami = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, ok := IdentityFrom(r.Context())
	if !ok {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "no identity"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"actor": id.Actor(), "scope": string(id.Scope)})
})

func newScopedServer(t *testing.T, cfg Config) (*Server, *metrics.Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	s, err := New(cfg, Deps{Inbox: &memInbox{}, Metrics: m, Gatherer: reg, Now: func() time.Time { return clock },
		Scoped: []Route{
			{Pattern: "POST /v1/act", Scope: ScopeOperator, Handler: whoami},
			{Pattern: "GET /v1/journal/head", Scope: ScopeReadOnly, Handler: whoami},
			{Pattern: "POST /v1/agent/claim", Scope: ScopeAgent, Handler: whoami},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return s, m
}

var threeScopes = []Credential{
	{Name: "falco", Scope: ScopeIntake, Token: intakeTok},
	{Name: "jane", Scope: ScopeOperator, Token: operatorTok},
	{Name: "grafana", Scope: ScopeReadOnly, Token: readTok},
	{Name: "node-a", Scope: ScopeAgent, Token: agentTok, Node: "node-a"},
}

// TestScopeRefusals: every endpoint checks the scope of the credential:
// the intake token posts alerts and nothing else, read-only reads,
// operator acts and reads, an agent posts alerts and takes its node's
// actions; a missing or unknown token is 401, a known
// token of the wrong scope 403.
const enforcedAlert = `{"uuid":"a-2","time":"2026-11-20T09:14:03Z","rule":"Run marker","priority":"Critical","output":"x","hostname":"node-a",` +
	`"output_fields":{"container.id":"3f9a1c2b7d4e","riposte.enforce.outcome":"signalled","riposte.enforce.signal":"SIGKILL"}}`

// nodeAlert is an alert of node (the hostname an agent stamps).
func nodeAlert(id, node string) string {
	return `{"uuid":"` + id + `","time":"2026-11-20T09:14:03Z","rule":"Terminal shell in container","priority":"Notice","output":"x",` +
		`"hostname":"` + node + `","output_fields":{"container.id":"3f9a1c2b7d4e"}}`
}

func TestScopeRefusals(t *testing.T) {
	s, m := newScopedServer(t, Config{Credentials: threeScopes})
	tests := []struct {
		method, path, token string
		body                string
		want                int
		actor               string
	}{
		{"POST", "/v1/alerts", intakeTok, oneAlert, 202, ""},
		{"POST", "/", intakeTok, oneAlert, 202, ""},
		{"POST", "/v1/alerts", operatorTok, oneAlert, 403, ""},
		{"POST", "/v1/alerts", readTok, oneAlert, 403, ""},
		{"POST", "/v1/alerts", "", oneAlert, 401, ""},
		{"POST", "/v1/alerts", "nobody-knows-this-token", oneAlert, 401, ""},
		{"POST", "/v1/act", operatorTok, "{}", 200, "token:jane"},
		{"POST", "/v1/act", intakeTok, "{}", 403, ""},
		{"POST", "/v1/act", readTok, "{}", 403, ""},
		{"POST", "/v1/act", "", "{}", 401, ""},
		{"POST", "/v1/act", "nobody-knows-this-token", "{}", 401, ""},
		{"GET", "/v1/journal/head", readTok, "", 200, "token:grafana"},
		{"GET", "/v1/journal/head", operatorTok, "", 200, "token:jane"},
		{"GET", "/v1/journal/head", intakeTok, "", 403, ""},
		{"GET", "/v1/journal/head", "", "", 401, ""},
		{"GET", "/metrics", readTok, "", 200, ""},
		{"GET", "/metrics", operatorTok, "", 200, ""},
		{"GET", "/metrics", intakeTok, "", 403, ""},
		{"GET", "/metrics", "", "", 401, ""},
		{"POST", "/v1/alerts", agentTok, nodeAlert("a-3", "node-a"), 202, ""},
		// An agent credential posts its own node's alerts only.
		{"POST", "/v1/alerts", agentTok, nodeAlert("a-4", "node-b"), 403, ""},
		{"POST", "/v1/alerts", agentTok, oneAlert, 403, ""},
		{"POST", "/v1/alerts", agentTok, "[" + nodeAlert("a-5", "node-a") + "," + nodeAlert("a-6", "node-b") + "]", 403, ""},
		{"POST", "/v1/alerts", intakeTok, nodeAlert("a-7", "node-b"), 202, ""},
		// Enforcement fields are journaled as what the kernel did: only an
		// agent's detector may send them.
		{"POST", "/v1/alerts", agentTok, enforcedAlert, 202, ""},
		{"POST", "/v1/alerts", intakeTok, enforcedAlert, 400, ""},
		{"POST", "/v1/act", agentTok, "{}", 403, ""},
		{"GET", "/v1/journal/head", agentTok, "", 403, ""},
		{"POST", "/v1/agent/claim", agentTok, "{}", 200, "token:node-a"},
		{"POST", "/v1/agent/claim", intakeTok, "{}", 403, ""},
		{"POST", "/v1/agent/claim", operatorTok, "{}", 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.token, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/json"}
			if tt.token != "" {
				hdr["Authorization"] = "Bearer " + tt.token
			}
			w := do(s, tt.method, tt.path, hdr, tt.body)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if strings.Contains(w.Body.String(), tt.token) && tt.token != "" {
				t.Errorf("answer echoes the token: %s", w.Body)
			}
			if tt.actor != "" {
				var got map[string]string
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got["actor"] != tt.actor {
					t.Errorf("actor %q (%v), want %q", got["actor"], err, tt.actor)
				}
			}
		})
	}
	if n := promtestutil.ToFloat64(m.AuthRefused.WithLabelValues(string(ScopeOperator), "403")); n != 3 {
		t.Errorf("riposte_auth_refused_total{scope=operator,status=403} = %v, want 3", n)
	}
}

// TestMetricsOpenWithoutReadOnly: with no read-only credential /metrics
// stays open (as before scopes), and one added by a reload closes it.
func TestMetricsOpenWithoutReadOnly(t *testing.T) {
	s, _ := newScopedServer(t, Config{Tokens: []string{token}})
	if w := do(s, "GET", "/metrics", nil, ""); w.Code != 200 {
		t.Fatalf("open /metrics: status %d", w.Code)
	}
	if err := s.Keys().Set(append(LegacyCredentials([]string{token}, nil, nil), Credential{Name: "grafana", Scope: ScopeReadOnly, Token: readTok})); err != nil {
		t.Fatal(err)
	}
	if w := do(s, "GET", "/metrics", nil, ""); w.Code != 401 {
		t.Fatalf("after a read-only credential was added: status %d, want 401", w.Code)
	}
}

// TestKeyringRotation: Set swaps the credentials while serving: a removed
// token is refused at once, a new one accepted; an invalid set is refused
// and the previous one stays.
func TestKeyringRotation(t *testing.T) {
	s, _ := newScopedServer(t, Config{Credentials: threeScopes})
	const newTok = "rotated-operator-token-0123"
	if err := s.Keys().Set([]Credential{threeScopes[0], {Name: "jane", Scope: ScopeOperator, Token: newTok}}); err != nil {
		t.Fatal(err)
	}
	act := func(tok string) int {
		return do(s, "POST", "/v1/act", map[string]string{"Authorization": "Bearer " + tok}, "{}").Code
	}
	if c := act(operatorTok); c != 401 {
		t.Errorf("old token after rotation: %d, want 401", c)
	}
	if c := act(newTok); c != 200 {
		t.Errorf("new token: %d, want 200", c)
	}
	err := s.Keys().Set([]Credential{{Name: "jane", Scope: ScopeOperator, Token: "short"}})
	if err == nil || strings.Contains(err.Error(), "short\"") {
		t.Fatalf("bad set: %v", err)
	}
	if c := act(newTok); c != 200 {
		t.Errorf("after a refused set: %d, want 200 (previous set kept)", c)
	}
}

func TestCheckCredentials(t *testing.T) {
	tok := func(n int) string { return strings.Repeat("t", 15) + strconv.Itoa(n) }
	tests := []struct {
		name  string
		creds []Credential
		want  string
	}{
		{"ok", threeScopes, ""},
		{"newline in name", []Credential{{Name: "x\ny", Scope: ScopeIntake, Token: tok(1)}}, `credential 1: name "x\ny"`},
		{"empty name", []Credential{{Name: "", Scope: ScopeIntake, Token: tok(1)}}, "credential 1: name"},
		{"name twice", []Credential{{Name: "a", Scope: ScopeIntake, Token: tok(1)}, {Name: "a", Scope: ScopeOperator, Token: tok(2)}}, "credential a: name used twice"},
		{"unknown scope", []Credential{{Name: "a", Scope: "admin", Token: tok(1)}}, `credential a: scope: want intake, operator, read-only or agent, got "admin"`},
		{"short token", []Credential{{Name: "a", Scope: ScopeIntake, Token: "abc"}}, "credential a: token shorter than 16 characters"},
		{"shared token", []Credential{{Name: "a", Scope: ScopeIntake, Token: tok(1)}, {Name: "b", Scope: ScopeOperator, Token: tok(1)}}, "credential b: same token as credential a"},
		{"agent without node", []Credential{{Name: "a", Scope: ScopeAgent, Token: tok(1)}}, "credential a: scope agent needs node"},
		{"node on intake", []Credential{{Name: "a", Scope: ScopeIntake, Token: tok(1), Node: "node-a"}}, "credential a: node is for scope agent only, not intake"},
		{"bad node", []Credential{{Name: "a", Scope: ScopeAgent, Token: tok(1), Node: "node a"}}, `credential a: node "node a": control character, space or '/'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckCredentials(tt.creds)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			for _, c := range tt.creds {
				if len(c.Token) >= 8 && strings.Contains(err.Error(), c.Token) {
					t.Errorf("error shows a token: %v", err)
				}
			}
		})
	}
}

// TestSocketPeerIdentity: on a unix listener the kernel's peer
// credentials are the identity: this process's user acts as an operator
// without a token, and the journal's actor names that OS user.
func TestSocketPeerIdentity(t *testing.T) {
	s, _ := newScopedServer(t, Config{Credentials: threeScopes})
	path := filepath.Join(t.TempDir(), "riposte.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	me := "uid " + strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/v1/act", "{}", 200},
		{"GET", "/v1/journal/head", "", 200},
		// The socket is for operators: alerts still need the intake token.
		{"POST", "/v1/alerts", oneAlert, 401},
	} {
		req, _ := http.NewRequest(tc.method, "http://riposte"+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("%s %s: status %d, want %d (%v)", tc.method, tc.path, resp.StatusCode, tc.want, got)
		}
		if tc.want == 200 && got["actor"] != "cli:"+me+" via socket" {
			t.Errorf("actor %q, want cli:%s via socket", got["actor"], me)
		}
	}
}

// TestSocketPeerPolicy: who may use the socket: root, the server's own
// user, and the users the config names; anyone else is refused with 403
// naming the user.
func TestSocketPeerPolicy(t *testing.T) {
	s, _ := newScopedServer(t, Config{Credentials: threeScopes, SocketUsers: []string{"jane"}})
	stranger := os.Getuid() + 4242
	tests := []struct {
		name string
		p    peer
		want int
	}{
		{"root", peer{uid: 0, name: "root"}, 200},
		{"server's user", peer{uid: os.Getuid(), name: "svc"}, 200},
		{"named in socket_users", peer{uid: stranger, name: "jane"}, 200},
		{"anyone else", peer{uid: stranger, name: "mallory"}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.allowed = s.peerAllowed(tt.p.uid, tt.p.name)
			req, _ := http.NewRequest("POST", "/v1/act", strings.NewReader("{}"))
			req = req.WithContext(context.WithValue(req.Context(), peerKey{}, tt.p))
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if tt.want == 403 && !strings.Contains(w.Body.String(), tt.p.name+" may not use this socket") {
				t.Errorf("refusal does not name the user: %s", w.Body)
			}
		})
	}
}

// peerChildEnv makes the test binary a socket client (see TestMain): it
// posts to /v1/act on the socket named by the variable and prints the
// status and body.
const peerChildEnv = "RIPOSTE_TEST_SOCKET_CLIENT"

func TestMain(m *testing.M) {
	if path := os.Getenv(peerChildEnv); path != "" {
		os.Exit(socketClient(path))
	}
	os.Exit(m.Run())
}

func socketClient(path string) int {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := c.Post("http://riposte/v1/act", "application/json", strings.NewReader("{}"))
	if err != nil {
		os.Stdout.WriteString("error " + err.Error())
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	os.Stdout.WriteString(strconv.Itoa(resp.StatusCode) + " " + string(b))
	return 0
}

// TestSocketRefusesOtherUser: a process of another OS user (nobody) that
// can open the socket file is refused by its kernel-reported uid, and is
// let in once the config names it.
func TestSocketRefusesOtherUser(t *testing.T) {
	testutil.Integration(t, testutil.Root)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		testutil.SkipOrFail(t, "needs the user nobody: "+err.Error())
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// A directory nobody may enter, holding a copy of this binary and a
	// socket anyone may open: only the peer check stands in the way.
	dir, err := os.MkdirTemp("", "peer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		users  []string
		reload []string // what a SIGHUP reads, when not nil
		want   string
	}{
		{"not named", nil, nil, "403 "},
		{"named in socket_users", []string{nobody.Username}, nil, "200 "},
		{"named on reload", nil, []string{nobody.Username}, "200 "},
		{"removed on reload", []string{nobody.Username}, []string{}, "403 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newScopedServer(t, Config{Credentials: threeScopes, SocketUsers: tc.users})
			if tc.reload != nil {
				s.Keys().SetSocketUsers(tc.reload)
			}
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".sock")
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o666); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx, ln) }()
			defer func() {
				cancel()
				<-done
			}()
			cmd := exec.Command(bin, "-test.run=^$")
			cmd.Env = append(os.Environ(), peerChildEnv+"="+path)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("client as %s: %v: %s", nobody.Username, err, out)
			}
			if !strings.HasPrefix(string(out), tc.want) {
				t.Fatalf("client as %s: %s, want %q", nobody.Username, out, tc.want)
			}
			if tc.want == "403 " && !strings.Contains(string(out), nobody.Username+" may not use this socket") {
				t.Errorf("refusal does not name the user: %s", out)
			}
			if tc.want == "200 " && !strings.Contains(string(out), "cli:"+nobody.Username+" via socket") {
				t.Errorf("actor is not the peer's user: %s", out)
			}
		})
	}
}

// TestSpeaksFor: an agent credential speaks for the node it is bound to
// only; the refusal names the credential and both nodes.
func TestSpeaksFor(t *testing.T) {
	agentID := Identity{Name: "node-a-agent", Scope: ScopeAgent, Via: ViaToken, Node: "node-a"}
	tests := []struct {
		id   Identity
		node string
		want string
	}{
		{agentID, "node-a", ""},
		{agentID, "node-b", `credential node-a-agent is bound to node node-a, not "node-b"`},
		{agentID, "", `credential node-a-agent is bound to node node-a, not ""`},
		{Identity{Name: "jane", Scope: ScopeOperator, Via: ViaToken}, "node-b", ""},
	}
	for _, tt := range tests {
		err := tt.id.SpeaksFor(tt.node)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s for %q: %v", tt.id.Name, tt.node, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrOtherNode)):
			t.Errorf("%s for %q: %v, want %q", tt.id.Name, tt.node, err, tt.want)
		}
	}
}
