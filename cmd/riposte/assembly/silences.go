package assembly

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/server"
	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
)

// silenceCheck is how often serve journals the natural end of silences.
const silenceCheck = 5 * time.Second

// SilenceOpKind is what a SilenceOp does.
type SilenceOpKind string

// Silence operations.
const (
	SilenceAdd     SilenceOpKind = "add"
	SilenceList    SilenceOpKind = "list"
	SilenceExpire  SilenceOpKind = "expire"
	SilenceDelete  SilenceOpKind = "delete"
	SilenceApprove SilenceOpKind = "approve"
)

// SilenceOp is one silence operation, as `riposte silence` asks for it.
type SilenceOp struct {
	Kind    SilenceOpKind
	ID      string           // expire, delete, approve
	Request *silence.Request // add
	All     bool             // list: ended and deleted ones too
}

// SilenceResponse is the answer of the /v1/silences routes.
type SilenceResponse struct {
	Silence  *store.Silence  `json:"silence,omitempty"`
	Silences []store.Silence `json:"silences,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// silenceRoutes: creating, ending and approving need an operator; listing
// a reader.
func (a *App) silenceRoutes() []server.Route {
	return []server.Route{
		{Pattern: "POST /v1/silences", Scope: server.ScopeOperator, Handler: a.serveSilence(SilenceAdd)},
		{Pattern: "GET /v1/silences", Scope: server.ScopeReadOnly, Handler: a.serveSilence(SilenceList)},
		{Pattern: "POST /v1/silences/{id}/expire", Scope: server.ScopeOperator, Handler: a.serveSilence(SilenceExpire)},
		{Pattern: "POST /v1/silences/{id}/delete", Scope: server.ScopeOperator, Handler: a.serveSilence(SilenceDelete)},
		{Pattern: "POST /v1/silences/{id}/approve", Scope: server.ScopeOperator, Handler: a.serveSilence(SilenceApprove)},
	}
}

func (a *App) serveSilence(kind SilenceOpKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := server.IdentityFrom(r.Context())
		if !ok { // the route is mounted behind Require: not reached
			server.WriteJSON(w, http.StatusUnauthorized, SilenceResponse{Error: "no authenticated identity"})
			return
		}
		op := SilenceOp{Kind: kind, ID: r.PathValue("id"), All: r.URL.Query().Get("all") != ""}
		if kind == SilenceAdd {
			req, err := silence.DecodeRequest(r.Body)
			if err != nil {
				server.WriteJSON(w, http.StatusBadRequest, SilenceResponse{Error: err.Error()})
				return
			}
			op.Request = &req
		}
		resp, status := doSilence(r.Context(), a.Store, op, id.Actor(), time.Now())
		if status < 300 && kind != SilenceList {
			a.Silences.Invalidate()
		}
		server.WriteJSON(w, status, resp)
	}
}

// doSilence runs op on the store as actor: the server's handlers and
// `riposte silence` without a server share it. status is the HTTP status
// of the answer.
func doSilence(ctx context.Context, st store.Silences, op SilenceOp, actor string, now time.Time) (SilenceResponse, int) {
	fail := func(err error) (SilenceResponse, int) {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, store.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, store.ErrState), errors.Is(err, silence.ErrEnded):
			status = http.StatusConflict
		}
		return SilenceResponse{Error: err.Error()}, status
	}
	switch op.Kind {
	case SilenceAdd:
		if op.Request == nil {
			return SilenceResponse{Error: "add silence: no request"}, http.StatusBadRequest
		}
		s, err := op.Request.Silence(now, actor)
		if err != nil {
			return SilenceResponse{Error: err.Error()}, http.StatusBadRequest
		}
		if s, err = silence.Add(ctx, st, s); err != nil {
			return fail(err)
		}
		return SilenceResponse{Silence: &s}, http.StatusCreated
	case SilenceList:
		f := store.SilenceFilter{EndsAfter: now}
		if op.All {
			f = store.SilenceFilter{Deleted: true}
		}
		list, err := st.ListSilences(ctx, f)
		if err != nil {
			return fail(err)
		}
		return SilenceResponse{Silences: list}, http.StatusOK
	case SilenceExpire, SilenceDelete:
		s, err := silence.End(ctx, st, op.ID, actor, op.Kind == SilenceDelete)
		if err != nil {
			return fail(err)
		}
		return SilenceResponse{Silence: &s}, http.StatusOK
	case SilenceApprove:
		s, err := silence.Approve(ctx, st, op.ID, actor)
		if err != nil {
			return fail(err)
		}
		return SilenceResponse{Silence: &s}, http.StatusOK
	}
	return SilenceResponse{Error: fmt.Sprintf("unknown silence operation %q", op.Kind)}, http.StatusBadRequest
}

// Silence runs a silence operation: through the running server when one
// holds the data directory (its local socket, or RIPOSTE_OPERATOR_TOKEN
// over HTTP(S), as `riposte act`), else directly on the store, with the OS
// user as the actor. how says which, for the operator's output.
func Silence(ctx context.Context, cfg config.Config, op SilenceOp) (resp SilenceResponse, how string, err error) {
	if info, err := readServeInfo(cfg.Data); err == nil {
		return silenceViaServer(ctx, cfg, info, op)
	}
	if p := configuredSocket(cfg); p != "" {
		return silenceViaServer(ctx, cfg, ServeInfo{Socket: p}, op)
	}
	st, err := OpenStore(ctx, cfg.Store.URL, cfg.Data, store.Options{})
	if err != nil {
		return SilenceResponse{}, "", fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	how = "directly (no server running on " + cfg.Data + ")"
	if cfg.Store.URL != "" {
		how = "directly on the store"
	}
	resp, status := doSilence(ctx, st, op, "cli:"+OSUser(), time.Now())
	if resp.Error != "" {
		return resp, how, silenceError(op, status, resp.Error)
	}
	return resp, how, nil
}

// ErrSilenceRefused: the request was refused as it is (bad input, a
// silence that does not exist or is in another state); not a failure to
// reach the store.
var ErrSilenceRefused = errors.New("refused")

func silenceError(op SilenceOp, status int, msg string) error {
	if status >= 400 && status < 500 {
		return fmt.Errorf("%s silence: %w: %s", op.Kind, ErrSilenceRefused, msg)
	}
	return fmt.Errorf("%s silence: %s", op.Kind, msg)
}

func silenceViaServer(ctx context.Context, cfg config.Config, info ServeInfo, op SilenceOp) (SilenceResponse, string, error) {
	client, actURL, token, how, err := actClient(cfg, info)
	if err != nil {
		return SilenceResponse{}, "", fmt.Errorf("%s silence: %w", op.Kind, err)
	}
	base := strings.TrimSuffix(actURL, "/v1/act") + "/v1/silences"
	method, target := http.MethodPost, base
	var body io.Reader
	switch op.Kind {
	case SilenceAdd:
		b, err := json.Marshal(op.Request)
		if err != nil {
			return SilenceResponse{}, how, err
		}
		body = bytes.NewReader(b)
	case SilenceList:
		method = http.MethodGet
		if op.All {
			target += "?all=1"
		}
	default:
		target += "/" + url.PathEscape(op.ID) + "/" + string(op.Kind)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return SilenceResponse{}, how, err
	}
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return SilenceResponse{}, how, fmt.Errorf("%s silence %s: %w", op.Kind, how, err)
	}
	defer resp.Body.Close()
	var sr SilenceResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&sr); err != nil {
		return SilenceResponse{}, how, fmt.Errorf("%s silence %s: status %s: %w", op.Kind, how, resp.Status, err)
	}
	if sr.Error != "" || resp.StatusCode >= 300 {
		return sr, how, silenceError(op, resp.StatusCode, cmp.Or(sr.Error, resp.Status))
	}
	return sr, how, nil
}

// MuteIncident silences the incident's rule in its container for d, scope
// notify, created by actor: the Slack Mute button (its handler lets only
// approvers press it). The rule is matched exactly: a rule name holding a
// glob character is matched by a condition instead of a pattern.
func (a *App) MuteIncident(ctx context.Context, incident, actor string, d time.Duration) (actions.Result, error) {
	inc, err := a.Store.GetIncident(ctx, incident)
	if err != nil {
		return actions.Result{}, fmt.Errorf("mute incident %s: %w", incident, err)
	}
	m := store.SilenceMatcher{Rules: []string{inc.Rule}}
	if strings.ContainsAny(inc.Rule, "*?") {
		m = store.SilenceMatcher{When: "rule == " + strconv.Quote(inc.Rule)}
	}
	if inc.ContainerID != "" {
		m.Containers = []string{inc.ContainerID}
	}
	now := time.Now()
	s, err := silence.Add(ctx, a.Store, store.Silence{Matcher: m, Scope: store.ScopeNotify, StartsAt: now, EndsAt: now.Add(d),
		CreatedBy: actor, Comment: "muted from Slack on incident " + incident})
	if err != nil {
		return actions.Result{}, fmt.Errorf("mute incident %s: %w", incident, err)
	}
	a.Silences.Invalidate()
	return actions.Result{Note: fmt.Sprintf("notifications muted for %s (silence %s)", d, s.ID),
		Detail: map[string]any{"silence": s.ID}}, nil
}
