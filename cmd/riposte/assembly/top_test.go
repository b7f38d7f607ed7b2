package assembly

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/topfeed"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/console"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// streamed collects what a Remote source sends.
type streamed struct {
	mu sync.Mutex
	us []console.Update
}

func (s *streamed) send(u console.Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.us = append(s.us, u)
}

// last returns the newest snapshot of incidents and containers.
func (s *streamed) last() (incidents []console.Incident, containers []console.Container, seenIncidents, seenContainers bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.us {
		if u.IncidentsSet {
			incidents, seenIncidents = u.Incidents, true
		}
		if u.ContainersSet {
			containers, seenContainers = u.Containers, true
		}
	}
	return
}

// TestTopServerStream: riposte top attached to a running server reads its
// stream (through the local socket; over TCP a wrong token, or the intake
// token, is refused for good), sees the container and the incident with
// its held action, and approves it through POST /v1/decide: the container
// is paused and the journal names the OS user the kernel reported.
func TestTopServerStream(t *testing.T) {
	cli := testutil.DockerClient(t)
	name := testutil.UniqueName("top-stream")
	id := testutil.RunContainer(t, cli, name, nil)
	p := startPeers(t)
	s := serveApp(t, p.config(t, t.TempDir(), `
- playbook: gated-pause
  approval: {approvers: [U0ALICE], timeout: 1h}
  actions:
    - do: container.pause
      gated: true
`))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	bad := &topfeed.Remote{URL: "http://" + s.addr + TopStreamPath, Token: "not-the-token"}
	if err := bad.Run(ctx, func(console.Update) {}); err == nil || !strings.Contains(err.Error(), "401 Unauthorized: the token was refused") {
		t.Fatalf("wrong token: %v", err)
	}
	if strings.Contains(errString(bad.Run(ctx, func(console.Update) {})), "not-the-token") {
		t.Fatal("the error shows the token")
	}
	intake := &topfeed.Remote{URL: "http://" + s.addr + TopStreamPath, Token: e2eToken}
	if err := intake.Run(ctx, func(console.Update) {}); err == nil || !strings.Contains(err.Error(), "403 Forbidden") {
		t.Fatalf("intake token: %v, want 403", err)
	}
	sock := s.app.Config.SocketPath()

	s.postAlert(t, shellAlertJSON(id[:12], name))
	got := &streamed{}
	remote := &topfeed.Remote{URL: "http://riposte" + TopStreamPath, Client: socketClient(sock)}
	done := make(chan error, 1)
	go func() { done <- remote.Run(ctx, got.send) }()
	var held console.PendingAppr
	var incident string
	waitUntil(t, "the incident with its held pause on the stream", 20*time.Second, func() bool {
		incs, conts, _, _ := got.last()
		found := false
		for _, c := range conts {
			if c.ID == id && c.Name == name && c.State == "running" {
				found = true
			}
		}
		for _, in := range incs {
			if strings.HasPrefix(id, in.ContainerID) && len(in.Pending) == 1 && in.Pending[0].Action == "container.pause" {
				held, incident = in.Pending[0], in.ID
				return found
			}
		}
		return false
	})
	actor := remoteActor{cfg: s.app.Config, info: ServeInfo{Listen: s.addr, Socket: sock}, base: "http://riposte", client: socketClient(sock)}
	if _, err := actor.Act(ctx, console.Request{Action: "approve", Container: id, Incident: incident, Approval: held.ID}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	waitUntil(t, "paused after approval", 10*time.Second, func() bool { return paused(t, cli, id) })
	granted := journal(t, s.app, store.Filter{Types: []store.EntryType{store.ApprovalGranted}})
	if want := "cli:" + OSUser() + " via socket"; len(granted) != 1 || granted[0].Actor != want {
		t.Errorf("approval.granted entries %+v, want one by %s", granted, want)
	}
	waitUntil(t, "the stream shows the container paused", 20*time.Second, func() bool {
		_, conts, _, _ := got.last()
		for _, c := range conts {
			if c.ID == id && c.State == "paused" {
				return true
			}
		}
		return false
	})
	waitUntil(t, "the incident's pause shown succeeded", 20*time.Second, func() bool {
		incs, _, _, _ := got.last()
		for _, in := range incs {
			if in.ID == incident && len(in.Pending) == 0 {
				for _, a := range in.Actions {
					if a.Action == "container.pause" && a.State == "succeeded" {
						return true
					}
				}
			}
		}
		return false
	})
	// A second decision on the same approval runs nothing more.
	if _, err := actor.Act(ctx, console.Request{Action: "deny", Container: id, Approval: held.ID}); err == nil {
		t.Error("deny after approve: no error")
	}
	// Shutting the server down ends the stream promptly (no drain wait).
	start := time.Now()
	s.stop()
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("serve took %s to stop with a stream attached", d)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("remote: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestDecideRefusesBadInput: the body is decoded strictly and the actor
// checked before anything runs (the app here has no engine).
func TestDecideRefusesBadInput(t *testing.T) {
	a := &App{}
	tests := []struct{ name, body, want string }{
		{"unknown field", `{"approval":"ap-1","granted":true,"by":"x"}`, `unknown field`},
		{"no approval", `{"granted":true}`, "field approval: missing"},
		{"actor named by the client", `{"approval":"ap-1","requested_by":"root"}`, `unknown field \"requested_by`},
		{"not json", `approve`, "decode decide request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			a.serveDecide(w, httptest.NewRequest(http.MethodPost, "/v1/decide", strings.NewReader(tt.body)))
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), tt.want) {
				t.Errorf("status %d body %s, want 400 with %q", w.Code, w.Body, tt.want)
			}
		})
	}
}

// TestLocalTopIncidents: without a server, top reads the open incidents
// from the store for a moment at a time, and creates no store where there
// is none.
func TestLocalTopIncidents(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.Data = filepath.Join(dir, "data")
	l := &localTop{cfg: cfg, user: "jane"}
	got, err := l.incidents(context.Background())
	if err != nil || got != nil {
		t.Fatalf("no store: %v, %v", got, err)
	}
	if _, err := os.Stat(cfg.Data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("top created the data directory: %v", err)
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.PathIn(cfg.Data), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := st.Incident(context.Background(), "3f9a1c2b7d4e", "Terminal shell in container", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// It reads while another process holds the store (act, a server
	// starting), and does not take its lock.
	got, err = l.incidents(context.Background())
	st.Close()
	defer l.close()
	if err != nil || len(got) != 1 || got[0].ID != id || got[0].ContainerID != "3f9a1c2b7d4e" || got[0].State != "open" {
		t.Errorf("incidents %+v, %v", got, err)
	}
	// Its handle stays open and sees what others write later.
	st, err = store.Open(store.PathIn(cfg.Data), store.Options{})
	if err != nil {
		t.Fatalf("open the store beside top's handle: %v", err)
	}
	if _, _, err := st.Incident(context.Background(), "77aa1c2b7d4e", "Read sensitive file untrusted", time.Now()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if got, err = l.incidents(context.Background()); err != nil || len(got) != 2 {
		t.Errorf("after a second incident: %+v, %v", got, err)
	}
}

// TestLocalTopCaptureNeedsServer: without a server a capture would end
// with the act that started it; top says so instead of recording nothing.
func TestLocalTopCaptureNeedsADetector(t *testing.T) {
	cfg := config.Defaults()
	cfg.Data = t.TempDir()
	l := &localTop{cfg: cfg, user: "jane"}
	_, err := l.Act(context.Background(), console.Request{Action: "capture.start", Container: "web", With: map[string]string{"duration": "30s"}})
	if err == nil || !strings.Contains(err.Error(), "capture needs a running riposte serve on "+cfg.Data+" or top's own detector") {
		t.Errorf("capture without a server or a detector: %v", err)
	}
}

func FuzzDecodeDecideRequest(f *testing.F) {
	for _, s := range []string{
		`{"approval":"apr-20261203-122621-83b506bc66","granted":true}`,
		`{"approval":"apr-1"}`,
		`{"approval":""}`,
		`{"approval":"apr-1","granted":"yes"}`,
		`{"approval":"apr-1","requested_by":"root"}`,
		`{"approval":"apr-1"} {"approval":"apr-2"}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeDecideRequest(bytes.NewReader(body))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "decode decide request: ") {
				t.Fatalf("error %q does not say what failed", err)
			}
			return
		}
		if req.Approval == "" {
			t.Fatal("accepted a request without an approval id")
		}
	})
}

func TestDecodeDecideRequest(t *testing.T) {
	for _, tc := range []struct{ body, err string }{
		{`{"approval":"apr-1","granted":true}`, ""},
		{`{"approval":""}`, "field approval: missing"},
		{`{"approval":"apr-1","requested_by":"root"}`, `unknown field "requested_by"`},
		{`{"approval":"apr-1"} {"approval":"apr-2"}`, "data after the request object"},
	} {
		_, err := decodeDecideRequest(strings.NewReader(tc.body))
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: error %v, want %q", tc.body, err, tc.err)
		}
	}
}

// TestTopIncidentActions: the incidents view shows an incident's actions
// from both of the journal's forms: action.planned and the entries that
// move it on, and a dry-run playbook's one playbook.matched entry with its
// plan.
func TestTopIncidentActions(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(store.PathIn(t.TempDir()), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, _, err := st.Incident(ctx, "3f9a1c2b7d4e", "Terminal shell in container", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx,
		store.Entry{Type: store.ActionPlanned, AlertID: "a-1", Playbook: "contain", Action: "container.pause", Detail: map[string]any{"incident": id, "index": 0}},
		store.Entry{Type: store.ActionStarted, AlertID: "a-1", Playbook: "contain", Action: "container.pause"},
		store.Entry{Type: store.ActionSucceeded, AlertID: "a-1", Playbook: "contain", Action: "container.pause"},
		store.Entry{Type: store.PlaybookMatched, AlertID: "a-2", Playbook: "evidence", Detail: map[string]any{
			"incident": id, "dry_run": true, store.PlanDetail: []store.PlanStep{
				{Index: 0, Action: "container.snapshot", Decision: "skipped_dry_run"},
				{Index: 1, Action: "container.kill", Decision: "skipped", Reason: "if was false"},
			}}},
	); err != nil {
		t.Fatal(err)
	}
	got, err := topIncidents(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	want := []console.ActionState{{Action: "container.pause", State: "succeeded"}, {Action: "container.snapshot", State: "dry run"},
		{Action: "container.kill", State: "skipped"}}
	if len(got) != 1 || !slices.Equal(got[0].Actions, want) {
		t.Errorf("incidents = %+v, want one with actions %+v", got, want)
	}
}
