package assembly

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
)

// ActRequest is the body of POST /v1/act: one action by hand.
type ActRequest struct {
	Action    string         `json:"action"`
	Container string         `json:"container"`
	Incident  string         `json:"incident,omitempty"`
	With      map[string]any `json:"with,omitempty"`
	DryRun    bool           `json:"dry_run,omitempty"`
	// RequestedBy is the operator's OS user, journaled as actor
	// "cli:<user> via api"; the bearer token is what authenticates.
	RequestedBy string `json:"requested_by"`
}

// ActResponse is the answer to an act.
type ActResponse struct {
	Result actions.Result `json:"result"`
	Error  string         `json:"error,omitempty"`
	// Protected is set when a guardrail refused.
	Protected bool `json:"protected,omitempty"`
}

func (a *App) routes(token string) map[string]http.Handler {
	r := map[string]http.Handler{
		"POST /v1/act":         server.BearerAuth([]string{token}, http.HandlerFunc(a.serveAct)),
		"POST /v1/decide":      server.BearerAuth([]string{token}, http.HandlerFunc(a.serveDecide)),
		"GET " + TopStreamPath: server.BearerAuth([]string{token}, http.HandlerFunc(a.serveTopStream)),
	}
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
	actor := "api"
	if req.RequestedBy != "" {
		actor = "cli:" + req.RequestedBy + " via api"
	}
	res, err := a.Engine.Act(r.Context(), engine.Manual{Action: req.Action, Container: req.Container, Incident: req.Incident,
		Params: req.With, Actor: actor, DryRun: req.DryRun, Report: true})
	resp := ActResponse{Result: res}
	status := http.StatusOK
	if err != nil {
		resp.Error = err.Error()
		resp.Protected = errors.Is(err, actions.ErrProtected)
		status = http.StatusUnprocessableEntity
	}
	server.WriteJSON(w, status, resp)
}

// decodeActRequest reads the body of POST /v1/act strictly: one JSON
// object, no unknown field, a requested_by fit for the journal.
func decodeActRequest(r io.Reader) (ActRequest, error) {
	var req ActRequest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return ActRequest{}, fmt.Errorf("decode act request: %w", err)
	}
	if err := checkRequestedBy(req.RequestedBy); err != nil {
		return ActRequest{}, fmt.Errorf("decode act request: %w", err)
	}
	return req, nil
}

// maxRequestedBy bounds requested_by: an OS user name, not a document.
const maxRequestedBy = 64

// checkRequestedBy refuses a requested_by that could forge or garble the
// journal's actor: control and format characters (a newline would start a
// fake line in `journal show`, a bidi override reverse it), invalid UTF-8,
// or more than maxRequestedBy bytes.
func checkRequestedBy(s string) error {
	if len(s) > maxRequestedBy {
		return fmt.Errorf("field requested_by: longer than %d bytes", maxRequestedBy)
	}
	if !utf8.ValidString(s) {
		return errors.New("field requested_by: not valid UTF-8")
	}
	for i, r := range s {
		// Cc: newlines, escapes; Cf: bidi overrides, zero-width; Zl, Zp:
		// line and paragraph separators.
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			return fmt.Errorf("field requested_by: control or format character %U at byte %d", r, i)
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
// the data directory, else directly on the store. The actor is the OS user.
func Act(ctx context.Context, cfg config.Config, req ActRequest) (actions.Result, string, error) {
	if req.RequestedBy == "" {
		req.RequestedBy = OSUser()
	}
	if info, err := readServeInfo(cfg.Data); err == nil {
		res, err := actViaServer(ctx, cfg, info, req)
		return res, "via the running server at " + info.Listen, err
	}
	app, err := buildForAct(cfg)
	if err != nil {
		return actions.Result{}, "", err
	}
	defer app.Close()
	res, err := app.Engine.Act(ctx, engine.Manual{Action: req.Action, Container: req.Container, Incident: req.Incident,
		Params: req.With, Actor: "cli:" + req.RequestedBy, DryRun: req.DryRun, Report: true})
	return res, "directly (no server running on " + cfg.Data + ")", err
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

func actViaServer(ctx context.Context, cfg config.Config, info ServeInfo, req ActRequest) (actions.Result, error) {
	token, _, _, err := cfg.Token()
	if err != nil {
		return actions.Result{}, err
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, 16*time.Minute)
	defer cancel()
	host := info.Listen
	if strings.HasPrefix(host, "0.0.0.0:") || strings.HasPrefix(host, "[::]:") {
		host = "127.0.0.1:" + host[strings.LastIndex(host, ":")+1:]
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+host+"/v1/act", bytes.NewReader(body))
	if err != nil {
		return actions.Result{}, err
	}
	hreq.Header.Set("Authorization", "Bearer "+token)
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return actions.Result{}, fmt.Errorf("act via server %s: %w", info.Listen, err)
	}
	defer resp.Body.Close()
	var ar ActResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ar); err != nil {
		return actions.Result{}, fmt.Errorf("act via server %s: status %s: %w", info.Listen, resp.Status, err)
	}
	if ar.Error != "" {
		if ar.Protected {
			return ar.Result, fmt.Errorf("%s: %w", ar.Error, actions.ErrProtected)
		}
		return ar.Result, errors.New(ar.Error)
	}
	if resp.StatusCode != http.StatusOK {
		return ar.Result, fmt.Errorf("act via server %s: status %s", info.Listen, resp.Status)
	}
	return ar.Result, nil
}
