package assembly

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/engine"
	"github.com/riposte-sec/riposte/internal/server"
	"github.com/riposte-sec/riposte/responders/capture"
)

// ActRequest is the body of POST /v1/act: one action by hand.
type ActRequest struct {
	Action    string         `json:"action"`
	Container string         `json:"container"`
	Incident  string         `json:"incident,omitempty"`
	With      map[string]any `json:"with,omitempty"`
	DryRun    bool           `json:"dry_run,omitempty"`
	// OverrideBlastRadius, when set, is the operator's reason to run a
	// destructive action beyond the blast-radius budget (journaled).
	// Who asked is not part of the request: the journal's actor is the
	// credential the server authenticated (token name, socket peer).
	OverrideBlastRadius string `json:"override_blast_radius,omitempty"`
}

// ActResponse is the answer to an act.
type ActResponse struct {
	Result actions.Result `json:"result"`
	Error  string         `json:"error,omitempty"`
	// Protected is set when a guardrail refused.
	Protected bool `json:"protected,omitempty"`
	// OverBudget is set when the blast-radius budget refused.
	OverBudget bool `json:"over_budget,omitempty"`
}

// scoped are the routes the server authenticates by scope.
func (a *App) scoped() []server.Route {
	var agents []server.Route
	if a.router != nil {
		agents = a.router.agentRoutes()
	}
	return append(append(agents, a.silenceRoutes()...), []server.Route{
		{Pattern: "POST /v1/act", Scope: server.ScopeOperator, Handler: http.HandlerFunc(a.serveAct)},
		{Pattern: "POST /v1/decide", Scope: server.ScopeOperator, Handler: http.HandlerFunc(a.serveDecide)},
		{Pattern: "GET " + TopStreamPath, Scope: server.ScopeReadOnly, Handler: http.HandlerFunc(a.serveTopStream)},
		{Pattern: "GET /v1/journal/head", Scope: server.ScopeReadOnly, Handler: http.HandlerFunc(a.serveHead)},
	}...)
}

// routes are the routes that authenticate their own requests.
func (a *App) routes() map[string]http.Handler {
	r := map[string]http.Handler{}
	for pattern, h := range a.Integrations.Routes {
		r[pattern] = h // they authenticate their requests themselves
	}
	return r
}

func (a *App) serveAct(w http.ResponseWriter, r *http.Request) {
	req, err := decodeActRequest(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		server.WriteJSON(w, http.StatusBadRequest, ActResponse{Error: err.Error()})
		return
	}
	id, ok := server.IdentityFrom(r.Context())
	if !ok { // the route is mounted behind Require: not reached
		server.WriteJSON(w, http.StatusUnauthorized, ActResponse{Error: "no authenticated identity"})
		return
	}
	// An action may run for the engine's action timeout: the answer's
	// deadline is that, not the intake's.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(a.Engine.ActionTimeout() + time.Minute))
	res, err := a.Engine.Act(r.Context(), engine.Manual{Action: req.Action, Container: req.Container, Incident: req.Incident,
		Params: req.With, Actor: id.Actor(), DryRun: req.DryRun, Override: req.OverrideBlastRadius, Report: true})
	resp := ActResponse{Result: res}
	status := http.StatusOK
	if err != nil {
		resp.Error = err.Error()
		resp.Protected = errors.Is(err, actions.ErrProtected)
		resp.OverBudget = errors.Is(err, engine.ErrOverBudget)
		status = http.StatusUnprocessableEntity
	}
	server.WriteJSON(w, status, resp)
}

// serveHead answers the journal's head (seq, hash, time): a monitor that
// keeps it elsewhere can later catch a rewritten or cut journal.
func (a *App) serveHead(w http.ResponseWriter, r *http.Request) {
	h, err := a.Store.Head(r.Context())
	if err != nil {
		server.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "read journal head"})
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"seq": h.Seq, "hash": h.Hash, "time": h.Time})
}

// decodeActRequest reads the body of POST /v1/act strictly: one JSON
// object, no unknown field, an override reason fit for the journal.
func decodeActRequest(r io.Reader) (ActRequest, error) {
	var req ActRequest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return ActRequest{}, fmt.Errorf("decode act request: %w", err)
	}
	if err := checkJournalText("override_blast_radius", req.OverrideBlastRadius, maxOverride); err != nil {
		return ActRequest{}, fmt.Errorf("decode act request: %w", err)
	}
	return req, nil
}

// maxOverride bounds an override reason: a sentence, not a document.
const maxOverride = 256

// checkJournalText refuses client text that could garble the journal:
// control and format characters (a newline would start a fake line in
// `journal show`, a bidi override reverse it), invalid UTF-8, or more than
// max bytes.
func checkJournalText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("field %s: longer than %d bytes", field, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("field %s: not valid UTF-8", field)
	}
	for i, r := range s {
		// Cc: newlines, escapes; Cf: bidi overrides, zero-width; Zl, Zp:
		// line and paragraph separators.
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			return fmt.Errorf("field %s: control or format character %U at byte %d", field, r, i)
		}
	}
	return nil
}

// OSUser names the operator for the journal: "root", "jane".
func OSUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// ErrProtected is returned by Act when a guardrail refused.
var ErrProtected = actions.ErrProtected

// Act runs one action by hand: through the running server when one holds
// the data directory (over its local socket, where the kernel tells the
// server who we are; or, with the socket off, over HTTP(S) with an
// operator token from RIPOSTE_OPERATOR_TOKEN), else directly on the
// store, with the OS user as the actor.
func Act(ctx context.Context, cfg config.Config, req ActRequest) (actions.Result, string, error) {
	if info, err := readServeInfo(cfg.Data); err == nil {
		res, how, err := actViaServer(ctx, cfg, info, req)
		return res, how, err
	}
	if p := configuredSocket(cfg); p != "" {
		// An operator who cannot read the data directory (serve.json)
		// finds the server at the socket the config names.
		res, how, err := actViaServer(ctx, cfg, ServeInfo{Socket: p}, req)
		return res, how, err
	}
	if err := checkJournalText("override", req.OverrideBlastRadius, maxOverride); err != nil {
		return actions.Result{}, "", err
	}
	if req.Action == capture.ActionStart && !req.DryRun {
		return actCapture(ctx, cfg, req)
	}
	app, err := buildForAct(cfg)
	if err != nil {
		return actions.Result{}, "", err
	}
	defer app.Close()
	res, err := app.Engine.Act(ctx, engine.Manual{Action: req.Action, Container: req.Container, Incident: req.Incident,
		Params: req.With, Actor: "cli:" + OSUser(), DryRun: req.DryRun, Override: req.OverrideBlastRadius, Report: true})
	return res, "directly (no server running on " + cfg.Data + ")", err
}

// configuredSocket is auth.socket when the config names one and a server
// answers on it; "" otherwise.
func configuredSocket(cfg config.Config) string {
	p := cfg.Auth.Socket
	if p == "" || p == config.SocketOff {
		return ""
	}
	c, err := net.DialTimeout("unix", p, time.Second)
	if err != nil {
		return ""
	}
	c.Close()
	return p
}

// buildForAct is Build without the playbook check: a hand-run action
// needs the store and the integrations only.
func buildForAct(cfg config.Config) (*App, error) {
	log := NewLogger(cfg, io.Discard)
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return buildCore(cfg, log, nil)
}

func readServeInfo(data string) (ServeInfo, error) {
	var info ServeInfo
	b, err := os.ReadFile(ServeInfoPath(data))
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, err
	}
	// A stale file from a crashed server: is the process alive?
	if info.PID <= 0 || syscall.Kill(info.PID, 0) != nil {
		return info, errors.New("stale serve info")
	}
	return info, nil
}

// OperatorTokenEnv holds an operator token for `riposte act` when the
// server's socket is off.
const OperatorTokenEnv = "RIPOSTE_OPERATOR_TOKEN"

// actClient returns the client and URL that reach the server's /v1/act,
// and how (for the operator's output).
func actClient(cfg config.Config, info ServeInfo) (*http.Client, string, string, string, error) {
	if info.Socket != "" {
		return socketClient(info.Socket), "http://riposte/v1/act", "", "via the running server's socket " + info.Socket, nil
	}
	token := strings.TrimSpace(os.Getenv(OperatorTokenEnv))
	if token == "" {
		return nil, "", "", "", fmt.Errorf("act via server %s: its socket is off: set %s to an operator token (auth.tokens, scope operator)", info.Listen, OperatorTokenEnv)
	}
	host := localHost(info.Listen)
	if !info.TLS {
		return http.DefaultClient, "http://" + host + "/v1/act", token, "via the running server at http://" + host, nil
	}
	if cfg.TLS.ClientAuth == server.ClientAuthRequire {
		return nil, "", "", "", fmt.Errorf("act via server %s: it requires client certificates and its socket is off: enable auth.socket", info.Listen)
	}
	// The server's own certificate file is trusted besides the system's
	// roots: a self-signed certificate works as well as a CA's.
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if pem, err := os.ReadFile(cfg.TLS.CertFile); err == nil {
		roots.AppendCertsFromPEM(pem)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}}
	return &http.Client{Transport: tr}, "https://" + host + "/v1/act", token, "via the running server at https://" + host, nil
}

// socketClient speaks HTTP over the unix socket at path.
func socketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
}

func actViaServer(ctx context.Context, cfg config.Config, info ServeInfo, req ActRequest) (actions.Result, string, error) {
	client, url, token, how, err := actClient(cfg, info)
	if err != nil {
		return actions.Result{}, "", err
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, 16*time.Minute)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return actions.Result{}, how, err
	}
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(hreq)
	if err != nil {
		return actions.Result{}, how, fmt.Errorf("act %s: %w", how, err)
	}
	defer resp.Body.Close()
	var ar ActResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ar); err != nil {
		return actions.Result{}, how, fmt.Errorf("act %s: status %s: %w", how, resp.Status, err)
	}
	if ar.Error != "" {
		switch {
		case ar.Protected:
			return ar.Result, how, remoteError{ar.Error, actions.ErrProtected}
		case ar.OverBudget:
			return ar.Result, how, remoteError{ar.Error, engine.ErrOverBudget}
		}
		return ar.Result, how, fmt.Errorf("act %s: status %s: %s", how, resp.Status, ar.Error)
	}
	if resp.StatusCode != http.StatusOK {
		return ar.Result, how, fmt.Errorf("act %s: status %s", how, resp.Status)
	}
	return ar.Result, how, nil
}

// remoteError is the server's message for a refusal, matching the
// refusal's sentinel with errors.Is.
type remoteError struct {
	msg string
	is  error
}

func (e remoteError) Error() string { return e.msg }
func (e remoteError) Unwrap() error { return e.is }
