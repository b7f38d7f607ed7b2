package assembly

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/anchor"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/server"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// TestActRefusesClientText: the client cannot name the actor (requested_by
// is not a field any more: the identity comes from the credential), and
// an override reason that would forge a journal line or hide its text is
// refused with 400 naming the field, before anything runs (the app here
// has no engine: reaching it would panic).
func TestActRefusesClientText(t *testing.T) {
	a := &App{}
	tests := []struct {
		name string
		body map[string]any
		want string
	}{
		{"requested_by", map[string]any{"requested_by": "root"}, `unknown field "requested_by"`},
		{"newline", map[string]any{"override_blast_radius": "x\ny"}, "field override_blast_radius: control or format character U+000A at byte 1"},
		{"carriage return", map[string]any{"override_blast_radius": "ok\r2026-12-03 action.succeeded"}, "U+000D"},
		{"escape sequence", map[string]any{"override_blast_radius": "\x1b[2Kfine"}, "U+001B"},
		{"line separator", map[string]any{"override_blast_radius": "a\u2028b"}, "U+2028"},
		{"bidi override", map[string]any{"override_blast_radius": "a\u202eb"}, "U+202E"},
		{"too long", map[string]any{"override_blast_radius": strings.Repeat("j", 257)}, "field override_blast_radius: longer than 256 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.body["action"], tt.body["container"] = "container.pause", "web"
			body, _ := json.Marshal(tt.body)
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/v1/act", strings.NewReader(string(body)))
			a.serveAct(w, r.WithContext(server.WithIdentity(r.Context(), server.Identity{Name: "jane", Scope: server.ScopeOperator, Via: server.ViaToken})))
			var resp ActResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
				t.Fatalf("response %d is not JSON: %s", w.Code, w.Body)
			}
			if w.Code != http.StatusBadRequest || !strings.Contains(resp.Error, tt.want) {
				t.Errorf("status %d error %q, want 400 with %q", w.Code, resp.Error, tt.want)
			}
		})
	}
}

func TestCheckJournalText(t *testing.T) {
	if err := checkJournalText("f", "jane\xff", 64); err == nil || err.Error() != "field f: not valid UTF-8" {
		t.Errorf("invalid UTF-8: %v", err)
	}
	for _, s := range []string{"", "root", "INC-7: spreading, budget spent by the same incident", "José"} {
		if err := checkJournalText("f", s, 64); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
}

func FuzzDecodeActRequest(f *testing.F) {
	for _, s := range []string{
		`{"action":"container.pause","container":"web"}`,
		`{"action":"container.kill","container":"3f9a1c2b7d4e","incident":"inc-1","with":{"signal":"KILL"},"dry_run":true,"override_blast_radius":"INC-7"}`,
		`{"action":"x","override_blast_radius":"x\ny"}`,
		`{"action":"x","requested_by":"root"}`,
		`{"unknown":1}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeActRequest(strings.NewReader(string(body)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "decode act request: ") {
				t.Fatalf("error %q does not say what failed", err)
			}
			return
		}
		if checkJournalText("override_blast_radius", req.OverrideBlastRadius, maxOverride) != nil {
			t.Fatalf("accepted override %q", req.OverrideBlastRadius)
		}
	})
}

const actPlaybook = `
- playbook: note
  actions: [{do: journal.note, with: {text: 'seen {{ .ID }}'}}]
`

// actServer runs an in-process serve on a data directory of its own,
// configured by yml (a riposte.yaml without playbooks and data).
func actServer(t *testing.T, yml string) (config.Config, string) {
	cfg, addr, _ := actServerStop(t, yml)
	return cfg, addr
}

// actServerStop is actServer with a stop function (also run at cleanup).
func actServerStop(t *testing.T, yml string) (config.Config, string, func()) {
	t.Helper()
	dir, err := os.MkdirTemp("", "act") // short: a socket path has at most 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg, _, addr, stop := startServe(t, dir, map[string]string{
		"pb.yaml":      actPlaybook,
		"riposte.yaml": "listen: 127.0.0.1:0\ndata: data\nplaybooks: [pb.yaml]\nnotifiers: {fallback: log}\n" + yml,
	})
	return cfg, addr, stop
}

// TestServeAnchorsJournal: serve signs the journal's head into the anchor
// file and the journal every journal.anchor.every entries and at
// shutdown, with a key it creates on first start; verify --anchor passes.
func TestServeAnchorsJournal(t *testing.T) {
	cfg, addr, stop := actServerStop(t, "journal: {anchor: {every: 2, interval: 20ms}}\n")
	post := func(id string) {
		body := fmt.Sprintf(`{"uuid":%q,"time":%q,"rule":"r","priority":"Notice","output":"x","output_fields":{"container.id":"3f9a1c2b7d4e"}}`, id, time.Now().UTC().Format(time.RFC3339))
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/alerts", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer intake-token-0123456789")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post alert: %s", resp.Status)
		}
	}
	post("anchored-1")
	testutil.Eventually(t, 5*time.Second, func() bool {
		b, _ := os.ReadFile(cfg.AnchorFile())
		return len(b) > 0
	}, "a periodic checkpoint in %s", cfg.AnchorFile())
	post("anchored-2")
	stop()
	f, err := os.Open(cfg.AnchorFile())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cps, err := anchor.Read(f)
	if err != nil || len(cps) < 2 {
		t.Fatalf("anchors: %d %v", len(cps), err)
	}
	st, err := store.Open(store.PathIn(cfg.Data), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	head, _ := st.Head(context.Background())
	last := cps[len(cps)-1]
	if last.Seq != head.Seq-1 {
		t.Errorf("last checkpoint anchors seq %d; the journal ends at %d with the checkpoint entry, want %d", last.Seq, head.Seq, head.Seq-1)
	}
	if p, err := anchor.Check(context.Background(), st, cps, nil); p != "" || err != nil {
		t.Errorf("check: %q %v", p, err)
	}
	key, created, err := anchor.LoadOrCreateKey(cfg.AnchorKeyFile())
	if err != nil || created || last.Verify(key.Public().(ed25519.PublicKey)) != nil {
		t.Errorf("checkpoint not signed by %s: created %v, %v", cfg.AnchorKeyFile(), created, err)
	}
}

// journaledActor is the actor of the last action.succeeded in cfg's journal.
func journaledActor(t *testing.T, cfg config.Config) string {
	t.Helper()
	st, err := store.Open(store.PathIn(cfg.Data), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.ActionSucceeded}})
	if err != nil || len(es) == 0 {
		t.Fatalf("no action.succeeded (%v)", err)
	}
	return es[len(es)-1].Actor
}

func act(t *testing.T, cfg config.Config) (string, error) {
	t.Helper()
	_, how, err := Act(context.Background(), cfg, ActRequest{Action: "slack.notify", With: map[string]any{"text": "by hand"}})
	return how, err
}

// TestActThroughSocket: `riposte act` reaches the running server over its
// local socket, with TLS on and client certificates required on TCP, and
// the journal names the OS user the kernel reported, not anything the
// client wrote.
func TestActThroughSocket(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	cfg, _ := actServer(t, fmt.Sprintf("tls: {cert_file: %s, key_file: %s, client_ca_file: %s, client_auth: require}\n", cert, key, cert))
	how, err := act(t, cfg)
	if err != nil {
		t.Fatalf("act: %v", err)
	}
	if !strings.Contains(how, "socket") {
		t.Errorf("went %s, want the socket", how)
	}
	if got, want := journaledActor(t, cfg), "cli:"+OSUser()+" via socket"; got != want {
		t.Errorf("actor %q, want %q", got, want)
	}
}

// TestActOverTLSWithOperatorToken: with the socket off, act goes over
// HTTPS (trusting the server's certificate file) with an operator token;
// the journal names the token. The intake token is refused.
func TestActOverTLSWithOperatorToken(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	tokFile := filepath.Join(dir, "jane.token")
	if err := os.WriteFile(tokFile, []byte("operator-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := actServer(t, fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\nauth:\n  socket: \"off\"\n  tokens: [{name: jane, scope: operator, file: %s}]\n", cert, key, tokFile))
	t.Setenv(OperatorTokenEnv, "")
	if _, err := act(t, cfg); err == nil || !strings.Contains(err.Error(), "set "+OperatorTokenEnv) {
		t.Fatalf("without a token: %v", err)
	}
	t.Setenv(OperatorTokenEnv, "intake-token-0123456789")
	if _, err := act(t, cfg); err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "scope intake") {
		t.Fatalf("with the intake token: %v, want 403", err)
	}
	t.Setenv(OperatorTokenEnv, "operator-token-0123456789")
	how, err := act(t, cfg)
	if err != nil {
		t.Fatalf("act: %v", err)
	}
	if !strings.Contains(how, "https://") {
		t.Errorf("went %s, want https", how)
	}
	if got := journaledActor(t, cfg); got != "token:jane" {
		t.Errorf("actor %q, want token:jane", got)
	}
}

// TestCredentialsReloadOnSIGHUP: a token added to the config and a token
// file rewritten take effect on SIGHUP, without a restart; the old value
// is refused from then on.
func TestCredentialsReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "grafana.token")
	if err := os.WriteFile(tokFile, []byte("read-only-token-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, addr := actServer(t, fmt.Sprintf("auth:\n  tokens: [{name: grafana, scope: read-only, file: %s}]\n", tokFile))
	head := func(tok string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/journal/head", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := head("read-only-token-0123456789"); c != 200 {
		t.Fatalf("read-only token: %d", c)
	}
	if err := os.WriteFile(tokFile, []byte("rotated-read-token-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return head("rotated-read-token-0123456789") == 200 }, "rotated token accepted")
	if c := head("read-only-token-0123456789"); c != 401 {
		t.Errorf("old token after reload: %d, want 401", c)
	}
	_ = cfg
}

// selfSigned writes a self-signed certificate for 127.0.0.1 (usable as its
// own CA) and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "riposte"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestListenSocket: a socket left by a crashed server is replaced; a live
// one (another server on the same data directory) or another kind of file
// is not touched.
func TestListenSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	stale := filepath.Join(dir, "stale.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	grp, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := listenSocket(stale, grp.Name)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	defer ln.Close()
	if fi, err := os.Stat(stale); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v (%v), want 0660", fi.Mode(), err)
	}
	if _, err := listenSocket(stale, ""); err == nil || !strings.Contains(err.Error(), "another server answers on it") {
		t.Errorf("live socket: %v", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenSocket(filepath.Join(dir, "grp.sock"), "no-such-group-riposte"); err == nil || !strings.Contains(err.Error(), "auth.socket_group") {
		t.Errorf("unknown group: %v", err)
	}
	if _, err := listenSocket(file, ""); err == nil || !strings.Contains(err.Error(), "a file that is not a socket is in the way") {
		t.Errorf("regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Error("the regular file was touched")
	}
}

// TestActThroughConfiguredSocket: with auth.socket set, act reaches the
// server even when it cannot read serve.json (another user's data
// directory), here removed to stand for that.
func TestActThroughConfiguredSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "cfgsock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "act.sock")
	cfg, _ := actServer(t, fmt.Sprintf("auth: {socket: %s}\n", sock))
	if err := os.Remove(ServeInfoPath(cfg.Data)); err != nil {
		t.Fatal(err)
	}
	how, err := act(t, cfg)
	if err != nil {
		t.Fatalf("act: %v", err)
	}
	if !strings.Contains(how, sock) {
		t.Errorf("went %s, want the socket %s", how, sock)
	}
	if got, want := journaledActor(t, cfg), "cli:"+OSUser()+" via socket"; got != want {
		t.Errorf("actor %q, want %q", got, want)
	}
}
