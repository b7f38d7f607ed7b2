package assembly

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/agent"
	"github.com/riposte-sec/riposte/internal/server"
	"github.com/riposte-sec/riposte/internal/store"
)

func TestCheckAgent(t *testing.T) {
	tests := []struct {
		node, agent, wantErr string
	}{
		{"node-a", "node-a/3fa2c1", ""},
		{"", "node-a/1", "node and agent are required"},
		{"node-a", "", "node and agent are required"},
		{"node-a", "node-b/1", `want node-a/<id>`},
		{"node-a", "node-a/", `want node-a/<id>`},
		{"node\nfake", "node\nfake/1", "control or format character"},
		{strings.Repeat("n", 300), "x/1", "longer than a host name"},
	}
	for _, tc := range tests {
		t.Run(tc.node+" "+tc.agent, func(t *testing.T) {
			err := checkAgent(tc.node, tc.agent)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestAgentBoundToItsNode: an agent credential (bound to node-a) is
// refused, 403 naming the credential and both nodes, a claim, heartbeat,
// capture report or result for node-b, and a result for node-b's action
// even when it names node-a; node-b's action is left as it was. Its own
// node's are served.
func TestAgentBoundToItsNode(t *testing.T) {
	st, err := store.Open(store.PathIn(t.TempDir()), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	for _, rq := range []store.NodeRequest{{Key: "k-a", Node: "node-a", Action: "container.pause", Payload: []byte(`{}`)},
		{Key: "k-b", Node: "node-b", Action: "container.pause", Payload: []byte(`{}`)}} {
		if _, _, err := st.RequestNodeAction(ctx, rq); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.ClaimNodeActions(ctx, "node-b", "node-b/1", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	r := newNodeRouter(st, nil, time.Second, time.Second, slog.New(slog.DiscardHandler))
	var journaled []string
	r.captureEnded = func(_ context.Context, ev agent.CaptureEnd) error {
		journaled = append(journaled, ev.Node+"/"+ev.CaptureID)
		return nil
	}
	id := server.Identity{Name: "agent-a", Scope: server.ScopeAgent, Via: server.ViaToken, Node: "node-a"}
	const refusal = `credential agent-a is bound to node node-a, not \"node-b\"`
	tests := []struct {
		name    string
		handler http.HandlerFunc
		body    string
		want    int
		wantErr string
	}{
		{"claim for another node", r.serveClaim, `{"node":"node-b","agent":"node-b/1","max":1}`, 403, "claim: " + refusal},
		{"heartbeat for another node", r.serveHeartbeat, `{"node":"node-b","agent":"node-b/1","running":["k-b"]}`, 403, "heartbeat: " + refusal},
		{"capture report for another node", r.serveCapture, `{"capture_id":"c1","node":"node-b","agent":"node-b/1","action":"capture.start"}`, 403, "capture report: " + refusal},
		{"result for another node", r.serveResult, `{"key":"k-b","node":"node-b","agent":"node-b/1","status":"succeeded"}`, 403, "result: " + refusal},
		{"result for another node's action naming its own", r.serveResult, `{"key":"k-b","node":"node-a","agent":"node-a/1","status":"failed","error":"forged"}`, 403, "result: " + refusal},
		{"result for a missing action", r.serveResult, `{"key":"nope","node":"node-a","agent":"node-a/1","status":"failed"}`, 404, "no such node action"},
		{"claim for its node", r.serveClaim, `{"node":"node-a","agent":"node-a/1","max":1}`, 200, ""},
		{"heartbeat for its node", r.serveHeartbeat, `{"node":"node-a","agent":"node-a/1","running":["k-a"]}`, 200, ""},
		{"result for its node", r.serveResult, `{"key":"k-a","node":"node-a","agent":"node-a/1","status":"succeeded"}`, 200, ""},
		{"capture report for its node", r.serveCapture, `{"capture_id":"c2","node":"node-a","agent":"node-a/1","action":"capture.start"}`, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequestWithContext(server.WithIdentity(ctx, id), "POST", "/", strings.NewReader(tc.body))
			w := httptest.NewRecorder()
			tc.handler(w, req)
			if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.wantErr) {
				t.Fatalf("status %d %s, want %d %q", w.Code, w.Body, tc.want, tc.wantErr)
			}
		})
	}
	// Without an identity (a route not behind the scope check): refused.
	w := httptest.NewRecorder()
	r.serveClaim(w, httptest.NewRequest("POST", "/", strings.NewReader(`{"node":"node-a","agent":"node-a/1"}`)))
	if w.Code != 403 {
		t.Errorf("claim without an identity: status %d, want 403", w.Code)
	}
	if b, err := st.GetNodeAction(ctx, "k-b"); err != nil || b.State != store.NodeActionClaimed || b.Agent != "node-b/1" {
		t.Errorf("node-b's action after the refusals: %+v %v (want claimed by node-b/1)", b, err)
	}
	if a, err := st.GetNodeAction(ctx, "k-a"); err != nil || a.State != store.NodeActionSucceeded {
		t.Errorf("node-a's action: %+v %v (want succeeded)", a, err)
	}
	if len(journaled) != 1 || journaled[0] != "node-a/c2" {
		t.Errorf("capture ends journaled: %v, want node-a/c2 only", journaled)
	}
}

// TestUnreadableNodeActionFails: a node request the replica cannot decode
// is closed as failed at its claim instead of being claimed again at every
// lease.
func TestUnreadableNodeActionFails(t *testing.T) {
	st, err := store.Open(store.PathIn(t.TempDir()), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, _, err := st.RequestNodeAction(ctx, store.NodeRequest{Key: "k-bad", Node: "node-a", Action: "container.pause", Payload: []byte(`[1, 2]`)}); err != nil {
		t.Fatal(err)
	}
	r := newNodeRouter(st, nil, time.Second, time.Second, slog.New(slog.DiscardHandler))
	id := server.Identity{Name: "agent-a", Scope: server.ScopeAgent, Via: server.ViaToken, Node: "node-a"}
	req := httptest.NewRequestWithContext(server.WithIdentity(ctx, id), "POST", "/", strings.NewReader(`{"node":"node-a","agent":"node-a/1","max":1}`))
	w := httptest.NewRecorder()
	r.serveClaim(w, req)
	if w.Code != 200 || strings.Contains(w.Body.String(), "k-bad") {
		t.Fatalf("claim: %d %s, want 200 without the unreadable request", w.Code, w.Body)
	}
	na, err := st.GetNodeAction(ctx, "k-bad")
	if err != nil || na.State != store.NodeActionFailed || !strings.Contains(na.Error, "cannot read the request") {
		t.Fatalf("unreadable request after the claim: %+v %v, want failed", na, err)
	}
}
