package assembly

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/topfeed"
	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/console"
	"github.com/riposte-sec/riposte/internal/engine"
	"github.com/riposte-sec/riposte/internal/guard"
	"github.com/riposte-sec/riposte/internal/server"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/responders/docker"
)

// TopStreamPath is the server's stream of console updates for `riposte
// top`: read-only scope (or the local socket).
const TopStreamPath = "/v1/top/stream"

// DecideRequest is the body of POST /v1/decide: approve or deny a held
// action by hand (operator scope). Who decides is the credential's
// identity, not part of the request.
type DecideRequest struct {
	Approval string `json:"approval"`
	Granted  bool   `json:"granted"`
}

// Top is what `riposte top` runs on: its Source and its Actor, through the
// running server when one holds the data directory, else in this process
// (an in-process detector, the store opened for a moment at a time).
type Top struct {
	Source console.Source
	Actor  console.Actor
	// How says where the data comes from, for the status line.
	How   string
	close func()
}

// Close releases what NewTop opened.
func (t *Top) Close() {
	if t.close != nil {
		t.close()
	}
}

// NewTop wires `riposte top`. filter (the detector's expression language,
// "" for none) keeps only the events that match.
func NewTop(cfg config.Config, filter string, log *slog.Logger) (*Top, error) {
	var f *rules.Filter
	if filter != "" {
		var err error
		if f, err = rules.CompileFilter(filter); err != nil {
			return nil, fmt.Errorf("--filter: %w", err)
		}
	}
	user := OSUser()
	if info, err := readServeInfo(cfg.Data); err == nil {
		if f != nil {
			return nil, errors.New("--filter works with the in-process detector only; the server streams every container's events")
		}
		client, actURL, token, how, err := actClient(cfg, info)
		if err != nil {
			return nil, err
		}
		base := strings.TrimSuffix(actURL, "/v1/act")
		return &Top{Source: &topfeed.Remote{URL: base + TopStreamPath, Token: token, Client: client},
			Actor: remoteActor{cfg: cfg, info: info, base: base, token: token, client: client},
			How:   "server" + strings.TrimPrefix(how, "via the running server")}, nil // "server's socket PATH", "server at URL"
	}
	var dcfg detector.Config
	if err := config.Decode(cfg.File, "detector", &cfg.Detector, &dcfg); err != nil {
		return nil, err
	}
	for i, r := range dcfg.Rules {
		dcfg.Rules[i] = cfg.Resolve(r)
	}
	dcfg.Enabled = true
	dcfg.Enforce.Enabled = false // top watches; enforcement belongs to serve
	var deps detector.Deps
	deps.Logger = log.With("component", "detector")
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	deps.Docker = cli
	d, err := detector.New(dcfg, deps)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("detector: %w", err)
	}
	local := &localTop{cfg: cfg, user: user, det: d}
	src := &topfeed.Local{Detector: d, Docker: cli, Incidents: local.incidents, QuarantineDir: quarantineDir(cfg.Data),
		Protect: guard.ParseLabel(docker.DefaultProtectLabel), Tracker: topfeed.NewTracker(f), Log: log}
	return &Top{Source: src, Actor: local, How: "in-process detector (starting)", close: func() { local.close(); cli.Close() }}, nil
}

func quarantineDir(data string) string { return filepath.Join(data, "docker", "quarantine") }

func localHost(listen string) string {
	if strings.HasPrefix(listen, "0.0.0.0:") || strings.HasPrefix(listen, "[::]:") {
		return "127.0.0.1:" + listen[strings.LastIndex(listen, ":")+1:]
	}
	return listen
}

// localTop acts and lists incidents on the store directly, one at a time.
type localTop struct {
	cfg  config.Config
	user string
	mu   sync.Mutex
	st   Store // opened read-only by the first incidents that finds a store
	// det is top's own detector; a capture records from it. The first
	// capture builds app on it and keeps it (and the store, writable) until
	// top exits, so that the capture's end is journaled; every later
	// action goes through app too.
	det *detector.Detector
	app *App
}

func (l *localTop) incidents(ctx context.Context) ([]console.Incident, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st == nil {
		if l.cfg.Store.URL == "" {
			if _, err := os.Stat(store.PathIn(l.cfg.Data)); errors.Is(err, os.ErrNotExist) {
				return nil, nil // no store yet: no incidents (and top creates none)
			}
		}
		// Read-only, kept open: no lock, so that neither a hand-run act
		// nor a server starting meanwhile finds the SQLite store taken.
		st, err := OpenStore(ctx, l.cfg.Store.URL, l.cfg.Data, store.Options{ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, err
		}
		l.st = st
	}
	return topIncidents(ctx, l.st)
}

// close closes the store handle incidents opened, and the app a capture
// built (its running captures are sealed and their ends journaled).
func (l *localTop) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != nil {
		l.st.Close()
		l.st = nil
	}
	if l.app != nil {
		l.app.Close()
		l.app = nil
	}
}

func (l *localTop) Act(ctx context.Context, r console.Request) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Action == "capture.start" && l.app == nil {
		if _, err := readServeInfo(l.cfg.Data); err != nil {
			if l.det == nil {
				return "", errors.New("capture needs a running riposte serve on " + l.cfg.Data + " or top's own detector")
			}
			// Record from top's detector; keep the app (and the store)
			// until top exits, so that the capture's end is journaled.
			if err := os.MkdirAll(l.cfg.Data, 0o700); err != nil {
				return "", fmt.Errorf("create data directory: %w", err)
			}
			app, err := buildCoreWith(l.cfg, NewLogger(l.cfg, io.Discard), nil, l.det)
			if err != nil {
				return "", err
			}
			l.app = app
		}
	}
	if l.app != nil {
		if r.Action == "approve" || r.Action == "deny" {
			res, err := l.app.Engine.Decide(ctx, r.Approval, r.Action == "approve", "cli:"+l.user, "from riposte top")
			return resultNote(res), err
		}
		req := actRequest(r)
		res, err := l.app.Engine.Act(ctx, engine.Manual{Action: req.Action, Container: req.Container, Incident: req.Incident,
			Params: req.With, Actor: "cli:" + l.user, Report: true})
		return resultNote(res), err
	}
	if r.Action == "approve" || r.Action == "deny" {
		app, err := buildForAct(l.cfg)
		if err != nil {
			return "", err
		}
		defer app.Close()
		res, err := app.Engine.Decide(ctx, r.Approval, r.Action == "approve", "cli:"+l.user, "from riposte top")
		return resultNote(res), err
	}
	res, _, err := Act(ctx, l.cfg, actRequest(r))
	return resultNote(res), err
}

func actRequest(r console.Request) ActRequest {
	req := ActRequest{Action: r.Action, Container: r.Container, Incident: r.Incident}
	if len(r.With) > 0 {
		req.With = map[string]any{}
		for k, v := range r.With {
			req.With[k] = v
		}
	}
	return req
}

func resultNote(res actions.Result) string {
	if res.Note == "" {
		return "done"
	}
	return res.Note
}

// remoteActor acts through the running server (its socket, or HTTP(S)
// with an operator token; see actClient).
type remoteActor struct {
	cfg         config.Config
	info        ServeInfo
	base, token string
	client      *http.Client
}

func (a remoteActor) Act(ctx context.Context, r console.Request) (string, error) {
	if r.Action == "approve" || r.Action == "deny" {
		body, _ := json.Marshal(DecideRequest{Approval: r.Approval, Granted: r.Action == "approve"})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/v1/decide", bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		if a.token != "" {
			req.Header.Set("Authorization", "Bearer "+a.token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := a.client.Do(req)
		if err != nil {
			return "", fmt.Errorf("decide via server %s: %w", a.info.Listen, err)
		}
		defer resp.Body.Close()
		var ar ActResponse
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ar); err != nil {
			return "", fmt.Errorf("decide via server %s: status %s: %w", a.info.Listen, resp.Status, err)
		}
		if ar.Error != "" {
			return "", errors.New(ar.Error)
		}
		return resultNote(ar.Result), nil
	}
	res, _, err := actViaServer(ctx, a.cfg, a.info, actRequest(r))
	return resultNote(res), err
}

// topStore is what the incidents view reads.
type topStore interface {
	ListIncidents(ctx context.Context, f store.IncidentFilter) ([]store.IncidentInfo, error)
	Entries(ctx context.Context, f store.Filter) ([]store.Entry, error)
	PendingApprovals(ctx context.Context) ([]store.Approval, error)
}

// actionStates names the journal entries that move an action on, as the
// incidents view shows them.
var actionStates = map[store.EntryType]string{
	store.ActionPlanned: "planned", store.ActionStarted: "started", store.ActionSucceeded: "succeeded",
	store.ActionFailed: "failed", store.ActionSkippedDryRun: "dry run", store.ActionBlockedProtected: "refused (protected)",
	store.ActionHeldForApproval: "held", store.ApprovalGranted: "approved", store.ApprovalDenied: "denied",
	store.ApprovalTimeout: "approval timed out", store.ActionInDoubt: "in doubt",
}

// maxTopEntries bounds the journal entries one refresh of the incidents
// view reads.
const maxTopEntries = 20000

// topIncidents lists the open incidents with their actions, from the
// journal (planned entries name the incident; later entries of the same
// alert, playbook and action move it on), and their pending approvals.
func topIncidents(ctx context.Context, st topStore) ([]console.Incident, error) {
	list, err := st.ListIncidents(ctx, store.IncidentFilter{State: store.IncidentStateOpen, Limit: 500})
	if err != nil {
		return nil, err
	}
	aps, err := st.PendingApprovals(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]int{}
	out := make([]console.Incident, 0, len(list))
	var since time.Time
	for _, in := range list {
		byID[in.ID] = len(out)
		out = append(out, console.Incident{ID: in.ID, ContainerID: in.ContainerID, Rule: in.Rule, State: string(in.State),
			OpenedAt: in.OpenedAt, Alerts: in.Alerts})
		if since.IsZero() || in.OpenedAt.Before(since) {
			since = in.OpenedAt
		}
	}
	if len(out) > 0 {
		types := make([]store.EntryType, 0, len(actionStates)+1)
		for t := range actionStates {
			types = append(types, t)
		}
		types = append(types, store.PlaybookMatched) // a dry-run playbook's plan
		es, err := st.Entries(ctx, store.Filter{Since: since.Add(-time.Minute), Types: types, Limit: maxTopEntries})
		if err != nil {
			return nil, err
		}
		type step struct{ alert, playbook, action string }
		incOf := map[step]int{}
		where := map[step]int{} // index in its incident's Actions
		for _, e := range es {
			k := step{e.AlertID, e.Playbook, e.Action}
			if e.Type == store.PlaybookMatched {
				// A dry-run playbook is this one entry, its plan decided.
				id, _ := e.Detail["incident"].(string)
				i, ok := byID[id]
				if !ok {
					continue
				}
				plan, err := store.PlannedActions([]store.Entry{e})
				if err != nil {
					return nil, err
				}
				for _, p := range plan {
					state := p.Decision
					if p.Decision == string(actions.StatusDryRun) {
						state = actionStates[store.ActionSkippedDryRun]
					}
					out[i].Actions = append(out[i].Actions, console.ActionState{Action: p.Action, State: state})
				}
				continue
			}
			if e.Type == store.ActionPlanned {
				id, _ := e.Detail["incident"].(string)
				i, ok := byID[id]
				if !ok {
					continue
				}
				incOf[k] = i
				where[k] = len(out[i].Actions)
				out[i].Actions = append(out[i].Actions, console.ActionState{Action: e.Action, State: "planned"})
				continue
			}
			if i, ok := incOf[k]; ok {
				out[i].Actions[where[k]].State = actionStates[e.Type]
			}
		}
	}
	sort.Slice(aps, func(i, j int) bool { return aps[i].CreatedAt.Before(aps[j].CreatedAt) })
	for _, ap := range aps {
		if i, ok := byID[ap.Incident]; ok {
			out[i].Pending = append(out[i].Pending, console.PendingAppr{ID: ap.ID, Action: ap.Action})
		}
	}
	return out, nil
}

// serveTopStream streams console updates: the server's detector events
// (when it runs one), its containers and incidents.
func (a *App) serveTopStream(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if a.serveCtx != nil {
		stop := context.AfterFunc(a.serveCtx, cancel) // a shutdown ends the stream instead of waiting out the drain
		defer stop()
	}
	var docker topfeed.Docker
	if a.Integrations != nil && a.Integrations.Docker.Client != nil {
		docker = a.Integrations.Docker.Client
	}
	var events topfeed.Events
	if a.Detector != nil {
		events = a.Detector
	}
	h := &topfeed.Handler{Events: events, Docker: docker, QuarantineDir: quarantineDir(a.Config.Data),
		Protect:   guard.ParseLabel(dockerProtectLabel),
		Incidents: func(ctx context.Context) ([]console.Incident, error) { return topIncidents(ctx, a.Store) },
		Log:       a.Log.With("component", "top")}
	h.ServeHTTP(w, r.WithContext(ctx))
}

const dockerProtectLabel = docker.DefaultProtectLabel

// decodeDecideRequest reads POST /v1/decide's body strictly: one JSON
// object with known fields and an approval id, nothing after it.
func decodeDecideRequest(r io.Reader) (DecideRequest, error) {
	var req DecideRequest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return DecideRequest{}, fmt.Errorf("decode decide request: %w", err)
	}
	if dec.More() {
		return DecideRequest{}, errors.New("decode decide request: data after the request object")
	}
	if req.Approval == "" {
		return DecideRequest{}, errors.New("decode decide request: field approval: missing")
	}
	return req, nil
}

func (a *App) serveDecide(w http.ResponseWriter, r *http.Request) {
	req, err := decodeDecideRequest(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		server.WriteJSON(w, http.StatusBadRequest, ActResponse{Error: err.Error()})
		return
	}
	id, ok := server.IdentityFrom(r.Context())
	if !ok { // the route is mounted behind Require: not reached
		server.WriteJSON(w, http.StatusUnauthorized, ActResponse{Error: "no authenticated identity"})
		return
	}
	by := id.Actor()
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Minute)
	defer cancel()
	res, err := a.Engine.Decide(ctx, req.Approval, req.Granted, by, "from riposte top")
	if err != nil {
		server.WriteJSON(w, http.StatusUnprocessableEntity, ActResponse{Result: res, Error: err.Error(), Protected: errors.Is(err, actions.ErrProtected)})
		return
	}
	server.WriteJSON(w, http.StatusOK, ActResponse{Result: res})
}
