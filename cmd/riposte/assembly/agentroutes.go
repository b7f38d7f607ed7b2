package assembly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/agent"
	"github.com/riposte-sec/riposte/internal/server"
	"github.com/riposte-sec/riposte/internal/store"
)

// Cluster mode's routing of container actions to node agents.
//
// Once only: the engine claims the action run (its idempotency key) as
// for any action; the routed runner then queues a node request under that
// key (store.NodeActions: created once per key) and waits for its outcome.
// A replica that takes the action over after a crash finds the request of
// the first and waits for the same outcome. The agent claims the request
// with a lease that its heartbeats extend; a request claimed again after
// its agent died is answered from the agent's ledger or reported in doubt,
// never run twice. An action no agent took within cluster.agent_timeout is
// closed as failed before any agent can take it, so it never runs after
// the journal says it failed.

// Defaults of the routing.
const (
	defaultAgentTimeout = 30 * time.Second
	// agentAlive: an agent seen within it is listed alive.
	agentAlive = 15 * time.Second
)

// nodeRouter sends node actions to agents and serves the agents.
type nodeRouter struct {
	st            store.NodeActions
	local         map[string]actions.Runner // this replica's own runners: actions without a node
	timeout       time.Duration
	lease         time.Duration // an agent's claim without a heartbeat: half the timeout
	actionTimeout time.Duration
	log           *slog.Logger
	// captureEnded journals the end of an agent's background capture.
	captureEnded func(context.Context, agent.CaptureEnd) error

	mu   sync.Mutex
	bell chan struct{} // closed when a request is queued or answered here
}

func newNodeRouter(st store.NodeActions, local map[string]actions.Runner, timeout, actionTimeout time.Duration, log *slog.Logger) *nodeRouter {
	if timeout <= 0 {
		timeout = defaultAgentTimeout
	}
	return &nodeRouter{st: st, local: local, timeout: timeout, lease: timeout / 2, actionTimeout: actionTimeout, log: log, bell: make(chan struct{})}
}

// route replaces the runners of the container actions of catalog with
// routed ones.
func (r *nodeRouter) route(runners map[string]actions.Runner, specs []actions.Spec) {
	for _, s := range specs {
		if !s.Container || s.Notification {
			continue
		}
		runners[s.Name] = actions.RunnerFunc(r.run)
	}
}

func (r *nodeRouter) ring() {
	r.mu.Lock()
	close(r.bell)
	r.bell = make(chan struct{})
	r.mu.Unlock()
}

func (r *nodeRouter) waitBell() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bell
}

// run sends req to the agent of its alert's node and waits for the
// outcome.
func (r *nodeRouter) run(ctx context.Context, req actions.Request) (actions.Result, error) {
	node := req.Alert.Hostname
	if node == "" {
		if l, ok := r.local[req.Action]; ok {
			return l.Run(ctx, req) // by hand, without an alert: here
		}
		return actions.Result{}, fmt.Errorf("run %s: the request names no node (the alert has no hostname) and this replica cannot run it", req.Action)
	}
	key := req.Key
	if key == "" {
		return actions.Result{}, fmt.Errorf("run %s on node %s: the request has no idempotency key", req.Action, node)
	}
	payload, err := json.Marshal(agent.FromAction(req, r.actionTimeout))
	if err != nil {
		return actions.Result{}, fmt.Errorf("run %s on node %s: encode: %w", req.Action, node, err)
	}
	na, created, err := r.st.RequestNodeAction(ctx, store.NodeRequest{Key: key, Node: node, Action: req.Action, Payload: payload})
	if err != nil {
		return actions.Result{}, actions.Retryable(fmt.Errorf("run %s on node %s: %w", req.Action, node, err))
	}
	if created {
		r.ring()
	} else {
		r.log.Info("node action requested before: waiting for its outcome", "key", key, "node", node, "state", na.State)
	}
	start := time.Now()
	for {
		if !na.State.Open() {
			return outcomeOf(na)
		}
		// Unclaimed since: created, or the lease of an agent that stopped.
		since := na.CreatedAt
		if na.State == store.NodeActionClaimed {
			since = na.LeaseUntil
		}
		if now := time.Now(); (na.State == store.NodeActionPending || now.After(na.LeaseUntil)) && now.Sub(since) > r.timeout {
			msg := fmt.Sprintf("no agent of node %s took the action within %s", node, r.timeout)
			if na.State == store.NodeActionClaimed {
				msg = fmt.Sprintf("the agent of node %s took the action and stopped answering (no heartbeat for %s)", node, r.timeout)
			}
			fin, applied, err := r.st.FinishNodeAction(context.WithoutCancel(ctx), key, store.NodeOutcome{State: store.NodeActionFailed, Error: msg, IfUnclaimed: true})
			if err == nil && applied {
				return actions.Result{}, errors.New(msg)
			}
			if err == nil {
				na = fin
				continue
			}
			r.log.Error("close a node action no agent took", "key", key, "err", err)
		}
		// An answer through this replica rings at once; through another,
		// the poll sees it.
		wait := 200 * time.Millisecond
		if time.Since(start) < 2*time.Second {
			wait = 20 * time.Millisecond
		}
		bell := r.waitBell()
		select {
		case <-bell:
		case <-ctx.Done():
			// The action's time is up. Close it unless an agent runs it,
			// so that none starts it after the journal says it failed.
			fin, applied, err := r.st.FinishNodeAction(context.WithoutCancel(ctx), key, store.NodeOutcome{State: store.NodeActionFailed,
				Error: "no agent of node " + node + " took the action before its timeout", IfUnclaimed: true})
			if err == nil && !applied && !fin.State.Open() {
				return outcomeOf(fin)
			}
			if err == nil && applied {
				return actions.Result{}, fmt.Errorf("no agent of node %s took the action before its timeout", node)
			}
			return actions.Result{}, fmt.Errorf("run %s on node %s: no outcome before the action's timeout (the agent may still finish it): %w", req.Action, node, ctx.Err())
		case <-time.After(wait):
		}
		fresh, err := r.st.GetNodeAction(ctx, key)
		switch {
		case err == nil:
			na = fresh
		case ctx.Err() != nil:
			// the next round ends on ctx.Done
		default:
			return actions.Result{}, actions.Retryable(fmt.Errorf("run %s on node %s: %w", req.Action, node, err))
		}
	}
}

// outcomeOf is a closed request as the runner's answer. A result names
// the node and the agent that ran it, so the journal says where.
func outcomeOf(na store.NodeAction) (actions.Result, error) {
	var o agent.Outcome
	if len(na.Result) > 0 && json.Unmarshal(na.Result, &o) == nil && o.Status != "" {
		res := o.Result
		if o.Node != "" {
			res.Detail = maps.Clone(res.Detail)
			if res.Detail == nil {
				res.Detail = map[string]any{}
			}
			if _, ok := res.Detail["node"]; !ok {
				res.Detail["node"] = o.Node
			}
			res.Detail["agent"] = o.Agent
		}
		return res, o.Err()
	}
	if na.State == store.NodeActionSucceeded {
		return actions.Result{}, nil
	}
	return actions.Result{}, errors.New(na.Error)
}

// agentRoutes are the endpoints of the agents (scope agent) and their list
// (read-only).
func (r *nodeRouter) agentRoutes() []server.Route {
	return []server.Route{
		{Pattern: "POST " + agent.PathClaim, Scope: server.ScopeAgent, Handler: http.HandlerFunc(r.serveClaim)},
		{Pattern: "POST " + agent.PathResult, Scope: server.ScopeAgent, Handler: http.HandlerFunc(r.serveResult)},
		{Pattern: "POST " + agent.PathHeartbeat, Scope: server.ScopeAgent, Handler: http.HandlerFunc(r.serveHeartbeat)},
		{Pattern: "POST " + agent.PathCapture, Scope: server.ScopeAgent, Handler: http.HandlerFunc(r.serveCapture)},
		{Pattern: "GET " + agent.PathAgents, Scope: server.ScopeReadOnly, Handler: http.HandlerFunc(r.serveAgents)},
	}
}

// maxClaimWait bounds a claim's long poll.
const maxClaimWait = 30 * time.Second

func (r *nodeRouter) serveClaim(w http.ResponseWriter, req *http.Request) {
	cr, err := agent.Decode[agent.ClaimRequest](req.Body)
	if err == nil {
		err = checkAgent(cr.Node, cr.Agent)
	}
	if err != nil {
		server.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if r.refuseOtherNode(w, req, "claim", cr.Node) {
		return
	}
	n := min(max(cr.Max, 1), 64)
	wait := min(time.Duration(max0(cr.WaitMS))*time.Millisecond, maxClaimWait)
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 30*time.Second))
	ctx := req.Context()
	if err := r.st.AgentSeen(ctx, cr.Node, cr.Agent, nil, 0); err != nil {
		r.log.Warn("record agent heartbeat", "node", cr.Node, "err", err)
	}
	deadline := time.Now().Add(wait)
	for {
		bell := r.waitBell()
		got, err := r.st.ClaimNodeActions(ctx, cr.Node, cr.Agent, n, r.lease)
		if err != nil {
			r.log.Error("claim node actions", "node", cr.Node, "err", err)
			w.Header().Set("Retry-After", "1")
			server.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store unavailable, retry"})
			return
		}
		if len(got) > 0 || time.Now().After(deadline) {
			resp := agent.ClaimResponse{Work: []agent.Work{}, LeaseMS: r.lease.Milliseconds()}
			for _, na := range got {
				var rq agent.Request
				if err := json.Unmarshal(na.Payload, &rq); err != nil {
					// No agent can run it: closed as failed now, or it
					// would be claimed again at every lease.
					r.log.Error("decode a node action; failing it", "key", na.Key, "err", err)
					if _, _, ferr := r.st.FinishNodeAction(ctx, na.Key, store.NodeOutcome{State: store.NodeActionFailed,
						Error: "the replica cannot read the request: " + err.Error(), Agent: cr.Agent}); ferr != nil {
						r.log.Error("fail an unreadable node action", "key", na.Key, "err", ferr)
					}
					continue
				}
				resp.Work = append(resp.Work, agent.Work{Key: na.Key, Attempts: na.Attempts, Request: rq})
			}
			server.WriteJSON(w, http.StatusOK, resp)
			return
		}
		// Another replica's requests are seen at the next poll.
		t := time.NewTimer(min(250*time.Millisecond, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-bell:
		case <-t.C:
		}
		t.Stop()
	}
}

func max0(n int) int { return max(n, 0) }

func (r *nodeRouter) serveResult(w http.ResponseWriter, req *http.Request) {
	o, err := agent.Decode[agent.Outcome](req.Body)
	if err == nil {
		err = checkAgent(o.Node, o.Agent)
	}
	if err == nil && o.Key == "" {
		err = errors.New("key is required")
	}
	state := store.NodeActionFailed
	switch o.Status {
	case agent.StatusSucceeded:
		state = store.NodeActionSucceeded
	case agent.StatusFailed, agent.StatusProtected:
	default:
		if err == nil {
			err = fmt.Errorf("status: want succeeded, failed or protected, got %q", o.Status)
		}
	}
	if err != nil {
		server.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if r.refuseOtherNode(w, req, "result", o.Node) {
		return
	}
	// The action's own node, not the one the agent names, decides.
	na, err := r.st.GetNodeAction(req.Context(), o.Key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		server.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no such node action"})
		return
	case err != nil:
		r.log.Error("read a node action", "key", o.Key, "err", err)
		w.Header().Set("Retry-After", "1")
		server.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store unavailable, retry"})
		return
	}
	if r.refuseOtherNode(w, req, "result", na.Node) {
		return
	}
	result, _ := json.Marshal(o)
	na, applied, err := r.st.FinishNodeAction(req.Context(), o.Key, store.NodeOutcome{State: state, Result: result, Error: o.Error, Agent: o.Agent})
	switch {
	case errors.Is(err, store.ErrNotFound):
		server.WriteJSON(w, http.StatusNotFound, map[string]string{"error": "no such node action"})
		return
	case err != nil:
		r.log.Error("record a node action's outcome", "key", o.Key, "err", err)
		w.Header().Set("Retry-After", "1")
		server.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store unavailable, retry"})
		return
	}
	if applied {
		r.ring()
	}
	server.WriteJSON(w, http.StatusOK, agent.ResultAnswer{Applied: applied, State: string(na.State)})
}

func (r *nodeRouter) serveHeartbeat(w http.ResponseWriter, req *http.Request) {
	hb, err := agent.Decode[agent.Heartbeat](req.Body)
	if err == nil {
		err = checkAgent(hb.Node, hb.Agent)
	}
	if err != nil {
		server.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if r.refuseOtherNode(w, req, "heartbeat", hb.Node) {
		return
	}
	if err := r.st.AgentSeen(req.Context(), hb.Node, hb.Agent, hb.Running, r.lease); err != nil {
		r.log.Error("record agent heartbeat", "node", hb.Node, "err", err)
		server.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store unavailable, retry"})
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (r *nodeRouter) serveCapture(w http.ResponseWriter, req *http.Request) {
	ev, err := agent.Decode[agent.CaptureEnd](req.Body)
	if err == nil {
		err = checkAgent(ev.Node, ev.Agent)
	}
	if err == nil {
		err = errors.Join(checkJournalText("capture_id", ev.CaptureID, 128), checkJournalText("error", ev.Error, 4096))
		if ev.CaptureID == "" {
			err = errors.Join(err, errors.New("capture_id is required"))
		}
	}
	if err != nil {
		server.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if r.refuseOtherNode(w, req, "capture report", ev.Node) {
		return
	}
	if err := r.captureEnded(req.Context(), ev); err != nil {
		r.log.Error("journal a capture's end", "capture", ev.CaptureID, "node", ev.Node, "err", err)
		w.Header().Set("Retry-After", "1")
		server.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "store unavailable, retry"})
		return
	}
	server.WriteJSON(w, http.StatusOK, map[string]string{"status": "journaled"})
}

// AgentStatus is one entry of GET /v1/agents.
type AgentStatus struct {
	store.AgentInfo
	Alive bool `json:"alive"`
	// AgoSeconds is how long since its last heartbeat.
	AgoSeconds float64 `json:"ago_seconds"`
}

func (r *nodeRouter) serveAgents(w http.ResponseWriter, req *http.Request) {
	list, err := r.st.Agents(req.Context())
	if err != nil {
		server.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "list agents"})
		return
	}
	out := []AgentStatus{}
	for _, a := range list {
		ago := time.Since(a.SeenAt)
		out = append(out, AgentStatus{AgentInfo: a, Alive: ago < agentAlive, AgoSeconds: ago.Round(time.Millisecond).Seconds()})
	}
	server.WriteJSON(w, http.StatusOK, map[string]any{"agents": out})
}

// refuseOtherNode answers 403, and reports true, when the request's
// credential may not speak for node: an agent credential is bound to one
// node (auth.tokens' node), so a token taken from one node cannot claim,
// answer or report another node's actions.
func (r *nodeRouter) refuseOtherNode(w http.ResponseWriter, req *http.Request, what, node string) bool {
	id, ok := server.IdentityFrom(req.Context())
	err := errors.New("no credential established for the request")
	if ok {
		err = id.SpeaksFor(node)
	}
	if err == nil {
		return false
	}
	r.log.Warn("refused an agent's "+what+" for another node", "credential", id.Name, "bound_node", id.Node, "node", node)
	server.WriteJSON(w, http.StatusForbidden, map[string]string{"error": what + ": " + err.Error()})
	return true
}

// checkAgent checks the node and agent an agent names: an agent id is
// <node>/<suffix>.
func checkAgent(node, id string) error {
	if node == "" || id == "" {
		return errors.New("node and agent are required")
	}
	if len(node) > 253 || len(id) > 300 {
		return errors.New("node or agent longer than a host name")
	}
	if err := checkJournalText("node", node, 253); err != nil {
		return err
	}
	if len(id) <= len(node)+1 || id[:len(node)+1] != node+"/" {
		return fmt.Errorf("agent %q: want %s/<id>", id, node)
	}
	return checkJournalText("agent", id, 300)
}

// routeNodeActions builds the router when the store holds node actions
// (both backends do), and with cluster.route_container_actions sends the
// container actions through it.
func (a *App) routeNodeActions() error {
	st, ok := a.Store.(store.NodeActions)
	if !ok {
		if a.Config.Cluster.RouteContainerActions {
			return fmt.Errorf("cluster.route_container_actions: the store %T holds no node actions", a.Store)
		}
		return nil
	}
	local := map[string]actions.Runner{}
	for name, r := range a.Integrations.Runners {
		local[name] = r
	}
	a.router = newNodeRouter(st, local, a.Config.Cluster.AgentTimeout, a.Config.Engine.ActionTimeout, a.Log.With("component", "agents"))
	a.router.captureEnded = a.agentCaptureEnded
	if a.Config.Cluster.RouteContainerActions {
		a.router.route(a.Integrations.Runners, integrations.Specs())
	}
	return nil
}

// agentCaptureEnded journals capture.finished for an agent's background
// capture, once per capture id (an agent sends again what it could not
// see answered).
func (a *App) agentCaptureEnded(ctx context.Context, ev agent.CaptureEnd) error {
	const ns = "agent-capture-end"
	if _, done, err := a.Store.Get(ctx, ns, ev.Node+"/"+ev.CaptureID); err != nil || done {
		return err
	}
	e := store.Entry{Type: store.CaptureFinished, Action: ev.Action, Actor: ev.Actor, AlertID: ev.AlertID, SHA256: ev.Result.SHA256,
		Detail: map[string]any{"capture": ev.CaptureID, "incident": ev.Incident, "container": ev.Container, "note": ev.Result.Note,
			"evidence": ev.Result.Evidence, "key": ev.Key, "node": ev.Node}}
	if p, ok := strings.CutPrefix(ev.Actor, "playbook:"); ok {
		e.Playbook = p
	}
	if ev.Error != "" {
		e.Detail["error"] = ev.Error
	}
	if _, err := a.Store.Append(ctx, e); err != nil {
		return err
	}
	return a.Store.Put(ctx, ns, ev.Node+"/"+ev.CaptureID, []byte(`{}`))
}
