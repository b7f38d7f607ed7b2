package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
)

// testNodeActions: a node's request is created once per key, claimed by
// its node's agent only, leased (not claimed again while the lease holds,
// claimed again with its attempts counted once it ran out), finished once;
// a replica's give-up applies only to an unclaimed request; heartbeats
// list the agents and extend the leases of what they run.
func testNodeActions(t *testing.T, h Harness) {
	c := NewClock()
	b, _ := open(t, h, store.Options{Now: c.Now})
	s, ok := b.(store.NodeActions)
	if !ok {
		t.Fatalf("%T does not implement store.NodeActions", b)
	}
	req := func(key, node string) store.NodeRequest {
		return store.NodeRequest{Key: key, Node: node, Action: "container.pause", Payload: []byte(`{"container":"c-` + key + `"}`)}
	}
	a, created, err := s.RequestNodeAction(ctx, req("k1", "node-a"))
	if err != nil || !created || a.State != store.NodeActionPending || a.Node != "node-a" || string(a.Payload) != `{"container":"c-k1"}` {
		t.Fatalf("request: %+v %v %v", a, created, err)
	}
	if again, created, err := s.RequestNodeAction(ctx, store.NodeRequest{Key: "k1", Node: "node-b", Action: "container.kill", Payload: []byte(`{}`)}); err != nil || created || again.Node != "node-a" {
		t.Fatalf("request again: %+v %v %v", again, created, err)
	}
	if _, _, err := s.RequestNodeAction(ctx, req("k2", "node-b")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []store.NodeRequest{{Key: "x", Node: "n", Action: "a", Payload: []byte("{")}, {Key: "", Node: "n", Action: "a", Payload: []byte("{}")}} {
		if _, _, err := s.RequestNodeAction(ctx, bad); err == nil {
			t.Errorf("request %+v: no error", bad)
		}
	}

	// Only node-a's request goes to node-a's agent.
	got, err := s.ClaimNodeActions(ctx, "node-a", "agent-1", 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].Key != "k1" || got[0].State != store.NodeActionClaimed || got[0].Attempts != 1 || got[0].Agent != "agent-1" {
		t.Fatalf("claim: %+v %v", got, err)
	}
	if more, _ := s.ClaimNodeActions(ctx, "node-a", "agent-2", 10, time.Minute); len(more) != 0 {
		t.Fatalf("claimed twice within the lease: %+v", more)
	}
	// A replica's give-up does not apply while the lease holds.
	if _, applied, err := s.FinishNodeAction(ctx, "k1", store.NodeOutcome{State: store.NodeActionFailed, Error: "gave up", IfUnclaimed: true}); err != nil || applied {
		t.Fatalf("give up a claimed request: %v %v", applied, err)
	}
	// A heartbeat extends the lease of what the agent runs.
	c.Add(50 * time.Second)
	if err := s.AgentSeen(ctx, "node-a", "agent-1", []string{"k1"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Add(50 * time.Second)
	if more, _ := s.ClaimNodeActions(ctx, "node-a", "agent-2", 10, time.Minute); len(more) != 0 {
		t.Fatalf("claimed again within the extended lease: %+v", more)
	}
	// The lease runs out: claimed again, attempts counted.
	c.Add(time.Minute)
	got, err = s.ClaimNodeActions(ctx, "node-a", "agent-2", 10, time.Minute)
	if err != nil || len(got) != 1 || got[0].Attempts != 2 || got[0].Agent != "agent-2" {
		t.Fatalf("claim after the lease: %+v %v", got, err)
	}
	// Only the agent that holds the claim finishes it, once.
	if _, applied, _ := s.FinishNodeAction(ctx, "k1", store.NodeOutcome{State: store.NodeActionSucceeded, Agent: "agent-1"}); applied {
		t.Fatal("finished by the agent that lost the claim")
	}
	fin, applied, err := s.FinishNodeAction(ctx, "k1", store.NodeOutcome{State: store.NodeActionSucceeded, Agent: "agent-2", Result: []byte(`{"note":"paused"}`)})
	if err != nil || !applied || fin.State != store.NodeActionSucceeded || string(fin.Result) != `{"note":"paused"}` || fin.FinishedAt.IsZero() {
		t.Fatalf("finish: %+v %v %v", fin, applied, err)
	}
	if _, applied, _ := s.FinishNodeAction(ctx, "k1", store.NodeOutcome{State: store.NodeActionFailed, Error: "late"}); applied {
		t.Fatal("finished twice")
	}
	if more, _ := s.ClaimNodeActions(ctx, "node-a", "agent-2", 10, time.Minute); len(more) != 0 {
		t.Fatalf("a finished request claimed: %+v", more)
	}
	// A request no agent took: the replica gives up, once.
	fin, applied, err = s.FinishNodeAction(ctx, "k2", store.NodeOutcome{State: store.NodeActionFailed, Error: "no agent of node node-b took the action within 30s", IfUnclaimed: true})
	if err != nil || !applied || fin.State != store.NodeActionFailed || fin.Error == "" {
		t.Fatalf("give up: %+v %v %v", fin, applied, err)
	}
	if more, _ := s.ClaimNodeActions(ctx, "node-b", "agent-3", 10, time.Minute); len(more) != 0 {
		t.Fatalf("a request given up on was claimed: %+v", more)
	}
	if _, _, err := s.FinishNodeAction(ctx, "k2", store.NodeOutcome{State: "done"}); err == nil {
		t.Error("finish with a bad state: no error")
	}
	if _, err := s.GetNodeAction(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get a missing request: %v", err)
	}
	agents, err := s.Agents(ctx)
	if err != nil || len(agents) != 1 || agents[0].Node != "node-a" || agents[0].Agent != "agent-1" || agents[0].SeenAt.IsZero() {
		t.Fatalf("agents: %+v %v", agents, err)
	}
}

// testPruneNodeActions: Prune deletes the node actions finished before
// now - DuplicateWindow, and keeps the open ones (however old) and those
// finished since.
func testPruneNodeActions(t *testing.T, h Harness) {
	c := NewClock()
	b, _ := open(t, h, store.Options{Now: c.Now, DuplicateWindow: time.Hour})
	s, ok := b.(store.NodeActions)
	if !ok {
		t.Fatalf("%T does not implement store.NodeActions", b)
	}
	request := func(key string) {
		t.Helper()
		if _, _, err := s.RequestNodeAction(ctx, store.NodeRequest{Key: key, Node: "node-a", Action: "container.pause", Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	finish := func(key string, state store.NodeActionState) {
		t.Helper()
		if _, applied, err := s.FinishNodeAction(ctx, key, store.NodeOutcome{State: state, Error: "x"}); err != nil || !applied {
			t.Fatalf("finish %s: %v %v", key, applied, err)
		}
	}
	request("old-ok")
	finish("old-ok", store.NodeActionSucceeded)
	request("old-failed")
	finish("old-failed", store.NodeActionFailed)
	request("old-pending")
	request("old-claimed")
	if got, err := s.ClaimNodeActions(ctx, "node-a", "node-a/1", 1, time.Minute); err != nil || len(got) != 1 {
		t.Fatalf("claim: %+v %v", got, err)
	}
	c.Add(2 * time.Hour)
	request("new-ok")
	finish("new-ok", store.NodeActionSucceeded)
	p, err := b.Prune(ctx)
	if err != nil || p.NodeActions != 2 {
		t.Fatalf("prune: %+v %v (want 2 node actions)", p, err)
	}
	for _, tc := range []struct {
		key  string
		kept bool
	}{{"old-ok", false}, {"old-failed", false}, {"old-pending", true}, {"old-claimed", true}, {"new-ok", true}} {
		_, err := s.GetNodeAction(ctx, tc.key)
		switch {
		case tc.kept && err != nil:
			t.Errorf("%s: pruned or unreadable: %v", tc.key, err)
		case !tc.kept && !errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: want pruned, got %v", tc.key, err)
		}
	}
	if p, err := b.Prune(ctx); err != nil || p.NodeActions != 0 {
		t.Fatalf("prune again: %+v %v", p, err)
	}
}
