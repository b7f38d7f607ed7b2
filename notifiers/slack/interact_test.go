package slack_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/store"
	rslack "github.com/riposte-sec/riposte/notifiers/slack"
	"github.com/riposte-sec/riposte/notifiers/slack/slackpeertest"
)

var (
	alice   = slack.User{ID: "U0ALICE", Name: "alice", TeamID: "T0RIPOSTE"}
	bob     = slack.User{ID: "U0BOB", Name: "bob", TeamID: "T0RIPOSTE"}
	mallory = slack.User{ID: "U0MALLORY", Name: "mallory", TeamID: "T0RIPOSTE"}
)

// server mounts the two handlers as the lead will.
func server(t *testing.T, s *rslack.Slack) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/v1/slack/interactions", s.InteractionsHandler())
	mux.Handle("/v1/slack/commands", s.CommandsHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, r *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// press notifies (once per incident) and presses a button as user.
func press(t *testing.T, p *slackpeertest.Peer, srv *httptest.Server, actionID string, user slack.User) (int, slackpeertest.Message) {
	t.Helper()
	m := p.TopLevel()[0]
	cb, err := p.Press(m, actionID, user)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := do(t, slackpeertest.SignedRequest(signingSecret, srv.URL+"/v1/slack/interactions", slackpeertest.InteractionForm(cb), time.Now()))
	return code, m
}

type interactiveSetup struct {
	p    *slackpeertest.Peer
	s    *rslack.Slack
	srv  *httptest.Server
	disp *fakeDispatcher
}

func setupInteractive(t *testing.T, mutate func(*rslack.Config)) interactiveSetup {
	t.Helper()
	p := newPeer(t)
	cfg := baseConfig(p)
	if mutate != nil {
		mutate(&cfg)
	}
	disp := &fakeDispatcher{result: actions.Result{Note: "paused"}, status: "*1 open incident*"}
	s := newSlack(t, cfg, rslack.Deps{Dispatcher: disp})
	if _, err := s.Run(t.Context(), notifyRequest(t, loadAlert(t), "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	return interactiveSetup{p: p, s: s, srv: server(t, s), disp: disp}
}

func TestInteractionSignature(t *testing.T) {
	is := setupInteractive(t, nil)
	m := is.p.TopLevel()[0]
	cb, err := is.p.Press(m, "riposte:snapshot", bob)
	if err != nil {
		t.Fatal(err)
	}
	form := slackpeertest.InteractionForm(cb)
	target := is.srv.URL + "/v1/slack/interactions"
	now := time.Now()
	tests := []struct {
		name string
		req  func() *http.Request
		want int
	}{
		{"unsigned", func() *http.Request {
			r := slackpeertest.SignedRequest(signingSecret, target, form, now)
			r.Header.Del("X-Slack-Signature")
			r.Header.Del("X-Slack-Request-Timestamp")
			return r
		}, 401},
		{"wrong secret", func() *http.Request { return slackpeertest.SignedRequest("another-secret-value", target, form, now) }, 401},
		{"tampered body", func() *http.Request {
			r := slackpeertest.SignedRequest(signingSecret, target, form, now)
			f := slackpeertest.InteractionForm(cb)
			f.Set("payload", strings.Replace(f.Get("payload"), "U0BOB", "U0ALICE", 1))
			body := f.Encode()
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
			return r
		}, 401},
		{"six minutes old", func() *http.Request {
			return slackpeertest.SignedRequest(signingSecret, target, form, now.Add(-6*time.Minute))
		}, 401},
		{"six minutes ahead", func() *http.Request {
			return slackpeertest.SignedRequest(signingSecret, target, form, now.Add(6*time.Minute))
		}, 401},
		{"signature not v0", func() *http.Request {
			r := slackpeertest.SignedRequest(signingSecret, target, form, now)
			r.Header.Set("X-Slack-Signature", "v1="+strings.TrimPrefix(r.Header.Get("X-Slack-Signature"), "v0="))
			return r
		}, 401},
		{"GET", func() *http.Request { r, _ := http.NewRequest(http.MethodGet, target, nil); return r }, 405},
		{"four minutes old", func() *http.Request {
			return slackpeertest.SignedRequest(signingSecret, target, form, now.Add(-4*time.Minute))
		}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := do(t, tt.req()); code != tt.want {
				t.Errorf("status %d (%s), want %d", code, body, tt.want)
			}
		})
	}
	t.Run("replay", func(t *testing.T) {
		r1 := slackpeertest.SignedRequest(signingSecret, target, form, now.Add(-time.Second))
		r2 := slackpeertest.SignedRequest(signingSecret, target, form, now.Add(-time.Second))
		if code, _ := do(t, r1); code != 200 {
			t.Fatalf("first: %d", code)
		}
		if code, _ := do(t, r2); code != 401 {
			t.Errorf("replayed request: %d, want 401", code)
		}
	})
	eventually(t, "the two accepted snapshot presses", func() bool { acts, _, _ := is.disp.snapshot(); return len(acts) == 2 })
	if err := is.s.Close(); err != nil {
		t.Fatal(err)
	}
	if acts, _, _ := is.disp.snapshot(); len(acts) != 2 {
		t.Errorf("refused requests reached the dispatcher: %d acts", len(acts))
	}
}

func TestPressPauseByApprover(t *testing.T) {
	is := setupInteractive(t, nil)
	code, m := press(t, is.p, is.srv, "riposte:pause", alice)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	eventually(t, "the message update", func() bool { mm, _ := is.p.Message(m.Channel, m.TS); return mm.Updates == 1 })
	acts, _, denials := is.disp.snapshot()
	want := rslack.Command{Action: "container.pause", Incident: "inc-1", Container: "3f9a1c2b7d4e", Actor: rslack.Actor{ID: "U0ALICE", Name: "alice"}, Via: "button"}
	if len(acts) != 1 || acts[0] != want || len(denials) != 0 {
		t.Fatalf("acts %+v denials %+v, want %+v", acts, denials, want)
	}
	mm, _ := is.p.Message(m.Channel, m.TS)
	if !strings.Contains(texts(mm), "container.pause by alice — paused") {
		t.Errorf("message does not say who paused:\n%s", texts(mm))
	}
	eventually(t, "the thread reply", func() bool { return len(is.p.Replies(m.Channel, m.TS)) == 1 })
	if r := is.p.Replies(m.Channel, m.TS)[0]; !strings.Contains(r.Text, "container.pause by alice — paused") {
		t.Errorf("reply %q", r.Text)
	}
	if acts[0].Actor.String() != "slack:U0ALICE (alice)" {
		t.Errorf("actor string %q", acts[0].Actor.String())
	}
}

func TestPressFailedActionIsShown(t *testing.T) {
	is := setupInteractive(t, nil)
	is.disp.err = errors.New("pause container 3f9a1c2b7d4e: container is protected")
	_, m := press(t, is.p, is.srv, "riposte:kill", alice)
	eventually(t, "the message update", func() bool { mm, _ := is.p.Message(m.Channel, m.TS); return mm.Updates == 1 })
	mm, _ := is.p.Message(m.Channel, m.TS)
	if !strings.Contains(texts(mm), "❌") || !strings.Contains(texts(mm), "container.kill (failed) by alice — pause container 3f9a1c2b7d4e: container is protected") {
		t.Errorf("failure not shown:\n%s", texts(mm))
	}
}

func TestPressDeniedForOthers(t *testing.T) {
	for _, id := range []string{"riposte:pause", "riposte:quarantine", "riposte:kill", "riposte:release"} {
		t.Run(id, func(t *testing.T) {
			is := setupInteractive(t, nil)
			code, m := press(t, is.p, is.srv, id, mallory)
			if code != 200 {
				t.Fatalf("status %d", code)
			}
			eventually(t, "the ephemeral refusal", func() bool { return len(is.p.Responses()) == 1 })
			r := is.p.Responses()[0]
			if r.ResponseType != "ephemeral" || r.ReplaceOriginal || !strings.Contains(r.Text, "You are not allowed to container.") || r.TS != m.TS {
				t.Errorf("refusal %+v", r)
			}
			acts, _, denials := is.disp.snapshot()
			if len(acts) != 0 {
				t.Errorf("a refused press reached Act: %+v", acts)
			}
			if len(denials) != 1 || denials[0].Actor.ID != "U0MALLORY" || denials[0].Incident != "inc-1" || denials[0].Reason != "not an approver" ||
				denials[0].Container != "3f9a1c2b7d4e" || denials[0].Action != "container."+strings.TrimPrefix(id, "riposte:") {
				t.Errorf("denials %+v", denials)
			}
			if mm, _ := is.p.Message(m.Channel, m.TS); mm.Updates != 0 {
				t.Errorf("a refused press updated the message")
			}
		})
	}
}

func TestOpenButtonsForAnyone(t *testing.T) {
	is := setupInteractive(t, nil)
	is.disp.result = actions.Result{Note: "acknowledged"}
	_, m := press(t, is.p, is.srv, "riposte:ack", bob)
	eventually(t, "the ack update", func() bool { mm, _ := is.p.Message(m.Channel, m.TS); return mm.Updates == 1 })
	mm, _ := is.p.Message(m.Channel, m.TS)
	if !strings.Contains(texts(mm), "Acknowledged by bob") {
		t.Errorf("acknowledgement not shown:\n%s", texts(mm))
	}
	is.disp.result = actions.Result{Note: "snapshot taken"}
	_, _ = press(t, is.p, is.srv, "riposte:snapshot", bob)
	eventually(t, "the snapshot", func() bool { acts, _, _ := is.disp.snapshot(); return len(acts) == 2 })
	acts, _, denials := is.disp.snapshot()
	if acts[0].Action != rslack.ActionAcknowledge || acts[0].Container != "" || acts[1].Action != "container.snapshot" || len(denials) != 0 {
		t.Errorf("acts %+v denials %+v", acts, denials)
	}
}

func TestGroupApprovers(t *testing.T) {
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	p := newPeer(t)
	p.AddGroup(slackpeertest.Group{ID: "S0ONCALL", Handle: "oncall", Users: []string{"U0BOB"}})
	p.AddGroup(slackpeertest.Group{ID: "S0SEC", Handle: "security", Users: []string{"U0CAROL"}})
	cfg := baseConfig(p)
	cfg.Approvers = []string{"@oncall", "S0SEC"}
	cfg.GroupCacheTTL = time.Minute
	disp := &fakeDispatcher{result: actions.Result{Note: "paused"}}
	s := newSlack(t, cfg, rslack.Deps{Dispatcher: disp, Now: clock})
	if _, err := s.Run(t.Context(), notifyRequest(t, loadAlert(t), "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	srv := server(t, s)
	carol := slack.User{ID: "U0CAROL", Name: "carol"}

	press(t, p, srv, "riposte:pause", bob)
	eventually(t, "bob's pause", func() bool { a, _, _ := disp.snapshot(); return len(a) == 1 })
	press(t, p, srv, "riposte:pause", carol)
	eventually(t, "carol's pause", func() bool { a, _, _ := disp.snapshot(); return len(a) == 2 })
	press(t, p, srv, "riposte:pause", mallory)
	eventually(t, "mallory's denial", func() bool { _, _, d := disp.snapshot(); return len(d) == 1 })
	if n := len(p.Calls("usergroups.users.list")); n != 2 {
		t.Errorf("usergroups.users.list called %d times for 3 presses, want 2 (one per group, cached)", n)
	}
	if n := len(p.Calls("usergroups.list")); n != 1 {
		t.Errorf("usergroups.list called %d times, want 1 (handle cached)", n)
	}
	// Bob leaves the on-call group: within the TTL the cache still lets him
	// in; after it, the change is seen.
	p.AddGroup(slackpeertest.Group{ID: "S0ONCALL", Handle: "oncall", Users: []string{"U0DAVE"}})
	press(t, p, srv, "riposte:pause", bob)
	eventually(t, "bob's cached pause", func() bool { a, _, _ := disp.snapshot(); return len(a) == 3 })
	offset.Store(int64(2 * time.Minute))
	press(t, p, srv, "riposte:pause", bob)
	eventually(t, "bob's denial", func() bool { _, _, d := disp.snapshot(); return len(d) == 2 })
	// After the TTL both groups are looked up again (bob is in neither).
	if n := len(p.Calls("usergroups.users.list")); n != 4 {
		t.Errorf("usergroups.users.list called %d times, want 4 (both groups refreshed after the TTL)", n)
	}
}

func TestGroupLookupFailureDenies(t *testing.T) {
	p := newPeer(t)
	cfg := baseConfig(p)
	cfg.Approvers = []string{"@oncall"}
	disp := &fakeDispatcher{}
	s := newSlack(t, cfg, rslack.Deps{Dispatcher: disp})
	if _, err := s.Run(t.Context(), notifyRequest(t, loadAlert(t), "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	srv := server(t, s)
	p.FailNext("usergroups.list", slackpeertest.Failure{Error: "missing_scope"})
	press(t, p, srv, "riposte:kill", bob)
	eventually(t, "the denial", func() bool { _, _, d := disp.snapshot(); return len(d) == 1 })
	_, _, d := disp.snapshot()
	if d[0].Reason != "could not check approver groups: look up slack user groups: missing_scope" {
		t.Errorf("reason %q", d[0].Reason)
	}
	if acts, _, _ := disp.snapshot(); len(acts) != 0 {
		t.Errorf("lookup failure let the press through")
	}
}

func TestApprovalFlow(t *testing.T) {
	is := setupInteractive(t, nil)
	msg, err := is.s.RequestApproval(t.Context(), rslack.Approval{
		ID: "ap-7", Incident: "inc-1", Playbook: "contain-shell", Held: []string{"container.pause"},
		Container: "payments-api", Approvers: []string{"U0BOB"}, Expires: time.Date(2026, 11, 20, 9, 24, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	top := is.p.TopLevel()
	ap, ok := is.p.Message(msg.Channel, msg.TS)
	if !ok || ap.ThreadTS != top[0].TS || !ap.Broadcast {
		t.Fatalf("approval %+v: want a broadcast reply in the incident thread %s", ap, top[0].TS)
	}
	for _, want := range []string{"⏳ *Approval needed*: container.pause on `payments-api` (playbook contain-shell)", "Approvers: <@U0BOB> · expires 09:24 UTC · approval `ap-7`"} {
		if !strings.Contains(texts(ap), want) {
			t.Errorf("approval lacks %q:\n%s", want, texts(ap))
		}
	}
	// Alice is a config approver but not this approval's: refused.
	cb, err := is.p.Press(ap, "riposte:approve", alice)
	if err != nil {
		t.Fatal(err)
	}
	do(t, slackpeertest.SignedRequest(signingSecret, is.srv.URL+"/v1/slack/interactions", slackpeertest.InteractionForm(cb), time.Now()))
	eventually(t, "alice's denial", func() bool { _, _, d := is.disp.snapshot(); return len(d) == 1 })
	_, approvals, denials := is.disp.snapshot()
	if len(approvals) != 0 || denials[0].ApprovalID != "ap-7" || denials[0].Action != rslack.ActionApproval {
		t.Fatalf("approvals %+v denials %+v", approvals, denials)
	}
	cb, _ = is.p.Press(ap, "riposte:approve", bob)
	do(t, slackpeertest.SignedRequest(signingSecret, is.srv.URL+"/v1/slack/interactions", slackpeertest.InteractionForm(cb), time.Now()))
	eventually(t, "the closed approval", func() bool { m, _ := is.p.Message(msg.Channel, msg.TS); return m.Updates == 1 })
	_, approvals, _ = is.disp.snapshot()
	if len(approvals) != 1 || approvals[0] != (approvalCall{"ap-7", rslack.Actor{ID: "U0BOB", Name: "bob"}, true}) {
		t.Fatalf("approvals %+v", approvals)
	}
	closed, _ := is.p.Message(msg.Channel, msg.TS)
	if len(buttonsOf(closed)) != 0 || !strings.Contains(closed.Text, "Approved by bob at ") || !strings.Contains(closed.Text, "container.pause (approval ap-7)") {
		t.Errorf("closed approval %q keeps buttons or lacks the decision", closed.Text)
	}
	eventually(t, "the incident message step", func() bool { m, _ := is.p.Message(top[0].Channel, top[0].TS); return m.Updates == 1 })
	inc, _ := is.p.Message(top[0].Channel, top[0].TS)
	if !strings.Contains(texts(inc), "approval (approved) by bob — container.pause") {
		t.Errorf("incident message lacks the decision:\n%s", texts(inc))
	}

	// The engine times out another approval.
	msg2, err := is.s.RequestApproval(t.Context(), rslack.Approval{ID: "ap-8", Incident: "inc-1", Held: []string{"container.kill"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := is.s.CloseApproval(t.Context(), msg2, "Approval expired: container.kill aborted"); err != nil {
		t.Fatal(err)
	}
	if m, _ := is.p.Message(msg2.Channel, msg2.TS); len(buttonsOf(m)) != 0 || m.Text != "Approval expired: container.kill aborted" {
		t.Errorf("expired approval %+v", m)
	}
}

func TestApprovalRefusedByEngineIsShown(t *testing.T) {
	is := setupInteractive(t, nil)
	is.disp.approveErr = errors.New("approval ap-9 already decided")
	msg, err := is.s.RequestApproval(t.Context(), rslack.Approval{ID: "ap-9", Incident: "inc-1", Held: []string{"container.pause"}})
	if err != nil {
		t.Fatal(err)
	}
	ap, _ := is.p.Message(msg.Channel, msg.TS)
	cb, _ := is.p.Press(ap, "riposte:deny", alice)
	do(t, slackpeertest.SignedRequest(signingSecret, is.srv.URL+"/v1/slack/interactions", slackpeertest.InteractionForm(cb), time.Now()))
	eventually(t, "the ephemeral error", func() bool { return len(is.p.Responses()) == 1 })
	if r := is.p.Responses()[0]; r.ResponseType != "ephemeral" || r.Text != "Your decision was not recorded: approval ap-9 already decided" {
		t.Errorf("response %+v", r)
	}
	if m, _ := is.p.Message(msg.Channel, msg.TS); m.Updates != 0 {
		t.Error("an unrecorded decision closed the approval")
	}
}

func TestSlashCommands(t *testing.T) {
	is := setupInteractive(t, nil)
	target := is.srv.URL + "/v1/slack/commands"
	send := func(user slack.User, text string) (int, string) {
		return do(t, slackpeertest.SignedRequest(signingSecret, target, is.p.CommandForm(user, "C0IR", text), time.Now()))
	}
	// Immediate answers are ephemeral mrkdwn: < and > must be escaped or
	// Slack reads "<container>" as a link.
	immediate := func(text string) string {
		t.Helper()
		code, body := send(bob, text)
		var r struct {
			ResponseType string `json:"response_type"`
			Text         string `json:"text"`
		}
		if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil || r.ResponseType != "ephemeral" {
			t.Fatalf("%q: %d %s", text, code, body)
		}
		return r.Text
	}
	if got := immediate("help"); !strings.Contains(got, "• `/riposte pause &lt;container&gt;`: freeze its processes (approvers only)") || strings.Contains(got, "<") {
		t.Errorf("help: %s", got)
	}
	if got := immediate("pause"); !strings.HasPrefix(got, "usage: `/riposte pause &lt;container&gt;`\n") {
		t.Errorf("pause without container: %s", got)
	}
	if got := immediate("pause ../../etc"); !strings.HasPrefix(got, `"../../etc" is not a container name or id`) {
		t.Errorf("bad container: %s", got)
	}
	if got := immediate("format /"); !strings.HasPrefix(got, `unknown command "format"`) {
		t.Errorf("unknown: %s", got)
	}

	if code, _ := send(bob, "status"); code != 200 {
		t.Fatal(code)
	}
	eventually(t, "status", func() bool { return len(is.p.Responses()) == 1 })
	if r := is.p.Responses()[0]; r.ResponseType != "ephemeral" || r.Text != "*1 open incident*" {
		t.Errorf("status response %+v", r)
	}

	send(alice, "pause payments-api")
	eventually(t, "pause", func() bool { return len(is.p.Responses()) == 2 })
	acts, _, _ := is.disp.snapshot()
	if len(acts) != 1 || acts[0] != (rslack.Command{Action: "container.pause", Container: "payments-api", Actor: rslack.Actor{ID: "U0ALICE", Name: "alice"}, Via: "command"}) {
		t.Errorf("acts %+v", acts)
	}
	if r := is.p.Responses()[1]; r.ResponseType != "in_channel" || !strings.Contains(r.Text, "container.pause by alice — paused · container `payments-api`") {
		t.Errorf("pause response %+v", r)
	}

	send(mallory, "kill payments-api")
	eventually(t, "denial", func() bool { return len(is.p.Responses()) == 3 })
	acts, _, denials := is.disp.snapshot()
	if len(acts) != 1 || len(denials) != 1 || denials[0].Action != "container.kill" || denials[0].Container != "payments-api" {
		t.Errorf("acts %+v denials %+v", acts, denials)
	}
	if r := is.p.Responses()[2]; r.ResponseType != "ephemeral" || !strings.Contains(r.Text, "not allowed") {
		t.Errorf("denial response %+v", r)
	}

	// Unsigned commands are refused like interactions.
	r := slackpeertest.SignedRequest("wrong-secret-000000", target, is.p.CommandForm(alice, "C0IR", "kill payments-api"), time.Now())
	if code, _ := do(t, r); code != 401 {
		t.Errorf("badly signed command: %d", code)
	}
}

func TestResponseURLOnlyToSlack(t *testing.T) {
	is := setupInteractive(t, nil)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("response sent to a foreign host: %s", r.URL)
	}))
	defer evil.Close()
	m := is.p.TopLevel()[0]
	cb, _ := is.p.Press(m, "riposte:kill", mallory)
	cb.ResponseURL = evil.URL + "/hook"
	do(t, slackpeertest.SignedRequest(signingSecret, is.srv.URL+"/v1/slack/interactions", slackpeertest.InteractionForm(cb), time.Now()))
	eventually(t, "the denial", func() bool { _, _, d := is.disp.snapshot(); return len(d) == 1 })
	_ = is.s.Close()
}

func TestSocketMode(t *testing.T) {
	p := newPeer(t)
	cfg := baseConfig(p)
	cfg.SigningSecretEnv = ""
	cfg.SocketMode = new(bool)
	*cfg.SocketMode = true
	cfg.AppTokenEnv = "SLACK_APP_TOKEN"
	disp := &fakeDispatcher{result: actions.Result{Note: "quarantined"}}
	s := newSlack(t, cfg, rslack.Deps{Dispatcher: disp})
	if _, err := s.Run(t.Context(), notifyRequest(t, loadAlert(t), "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.RunSocketMode(ctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := p.WaitSocket(wctx); err != nil {
		t.Fatal(err)
	}
	m := p.TopLevel()[0]
	cb, err := p.Press(m, "riposte:quarantine", alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendInteractive(wctx, cb); err != nil {
		t.Fatalf("interactive envelope not acknowledged: %v", err)
	}
	eventually(t, "the quarantine update", func() bool { mm, _ := p.Message(m.Channel, m.TS); return mm.Updates == 1 })
	acts, _, _ := disp.snapshot()
	if len(acts) != 1 || acts[0].Action != "container.quarantine" || acts[0].Via != "socket" || acts[0].Container != "3f9a1c2b7d4e" {
		t.Errorf("acts %+v", acts)
	}

	ack, err := p.SendSlashCommand(wctx, slack.SlashCommand{UserID: "U0BOB", UserName: "bob", ChannelID: "C0IR", Command: "/riposte", Text: "help", ResponseURL: p.ResponseURL("C0IR", "")})
	if err != nil {
		t.Fatal(err)
	}
	var help struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal(ack, &help); err != nil || help.ResponseType != "ephemeral" || !strings.Contains(help.Text, "/riposte status") {
		t.Errorf("help ack %s (%v)", ack, err)
	}
	if _, err := p.SendSlashCommand(wctx, slack.SlashCommand{UserID: "U0MALLORY", UserName: "mallory", ChannelID: "C0IR", Command: "/riposte", Text: "kill payments-api", ResponseURL: p.ResponseURL("C0IR", "")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the socket denial", func() bool { _, _, d := disp.snapshot(); return len(d) == 1 })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunSocketMode: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunSocketMode did not return after cancel")
	}
}

func TestSocketModeBadAppToken(t *testing.T) {
	p := newPeer(t)
	cfg := baseConfig(p)
	cfg.SocketMode = new(bool)
	*cfg.SocketMode = true
	cfg.AppTokenEnv = "SLACK_APP_TOKEN"
	s := newSlack(t, cfg, rslack.Deps{LookupEnv: env(map[string]string{"SLACK_BOT_TOKEN": botToken, "SLACK_SIGNING_SECRET": signingSecret, "SLACK_APP_TOKEN": "xapp-1-wrong-app-token-000"})})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err := s.RunSocketMode(ctx)
	if err == nil || !strings.Contains(err.Error(), "invalid_auth") || strings.Contains(err.Error(), "xapp-1-wrong") {
		t.Errorf("bad app token: %v", err)
	}
}

func TestParseInteraction(t *testing.T) {
	p := newPeer(t)
	s := newSlack(t, baseConfig(p), rslack.Deps{})
	if _, err := s.Run(t.Context(), notifyRequest(t, loadAlert(t), "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	m := p.TopLevel()[0]
	valid, err := p.Press(m, "riposte:pause", alice)
	if err != nil {
		t.Fatal(err)
	}
	body := func(mut func(*slack.InteractionCallback)) []byte {
		cb := valid
		cb.ActionCallback.BlockActions = []*slack.BlockAction{ptr(*valid.ActionCallback.BlockActions[0])}
		if mut != nil {
			mut(&cb)
		}
		return []byte(slackpeertest.InteractionForm(cb).Encode())
	}
	in, err := rslack.ParseInteraction(body(nil))
	if err != nil {
		t.Fatal(err)
	}
	if in.Kind != rslack.KindButton || in.Action != "container.pause" || !in.Restricted || in.Incident != "inc-1" || in.Container != "3f9a1c2b7d4e" ||
		in.User != (rslack.Actor{ID: "U0ALICE", Name: "alice"}) || in.ChannelID != "C0IR" || in.MessageTS != m.TS || in.ResponseURL == "" {
		t.Errorf("parsed %+v", in)
	}
	tests := []struct {
		name    string
		body    []byte
		ignored bool
		msg     string
	}{
		{"view submission", body(func(cb *slack.InteractionCallback) { cb.Type = slack.InteractionTypeViewSubmission }), true, ""},
		{"another app's button", body(func(cb *slack.InteractionCallback) { cb.ActionCallback.BlockActions[0].ActionID = "other:thing" }), true, ""},
		{"no payload", []byte("foo=bar"), false, "parse slack interaction: no payload"},
		{"not JSON", []byte("payload=%7B"), false, "parse slack interaction: unexpected end of JSON input"},
		{"two actions", body(func(cb *slack.InteractionCallback) {
			cb.ActionCallback.BlockActions = append(cb.ActionCallback.BlockActions, cb.ActionCallback.BlockActions[0])
		}), false, "parse slack interaction: want one action, got 2"},
		{"unknown riposte button", body(func(cb *slack.InteractionCallback) {
			cb.ActionCallback.BlockActions[0].ActionID = "riposte:format-disk"
		}), false, `parse slack interaction: unknown riposte action "riposte:format-disk"`},
		{"value with alert text", body(func(cb *slack.InteractionCallback) {
			cb.ActionCallback.BlockActions[0].Value = `{"incident":"inc-1","container":"3f9a1c2b7d4e","rule":"x"}`
		}), false, "parse slack interaction: button value: not the JSON riposte puts in its buttons"},
		{"container with spaces", body(func(cb *slack.InteractionCallback) {
			cb.ActionCallback.BlockActions[0].Value = `{"incident":"inc-1","container":"a b"}`
		}), false, "parse slack interaction: button value: bad container reference"},
		{"no incident", body(func(cb *slack.InteractionCallback) { cb.ActionCallback.BlockActions[0].Value = `{"container":"abc"}` }), false, "parse slack interaction: button value: bad incident id"},
		{"bot user", body(func(cb *slack.InteractionCallback) { cb.User.ID = "B0BOT" }), false, `parse slack interaction: user id "B0BOT" is not a Slack user id`},
		{"response_url not http", body(func(cb *slack.InteractionCallback) { cb.ResponseURL = "file:///etc/passwd" }), false, "parse slack interaction: response_url is not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rslack.ParseInteraction(tt.body)
			if errors.Is(err, rslack.ErrIgnored) != tt.ignored {
				t.Fatalf("err %v, ignored want %v", err, tt.ignored)
			}
			if !tt.ignored && (err == nil || err.Error() != tt.msg) {
				t.Errorf("err %v, want %q", err, tt.msg)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func FuzzParseInteraction(f *testing.F) {
	value := `{"incident":"inc-1","container":"3f9a1c2b7d4e"}`
	cb := slack.InteractionCallback{Type: slack.InteractionTypeBlockActions, User: alice, ResponseURL: "https://hooks.slack.com/actions/T0/1/x",
		Container: slack.Container{Type: "message", MessageTs: "1700000000.000100", ChannelID: "C0IR"}}
	for _, id := range []string{"riposte:pause", "riposte:ack", "riposte:approve", "other"} {
		v := value
		if id == "riposte:approve" {
			v = `{"approval":"ap-1","incident":"inc-1","approvers":["U0ALICE","@oncall"],"held":["container.pause"]}`
		}
		c := cb
		c.ActionCallback.BlockActions = []*slack.BlockAction{{ActionID: id, Value: v, Type: "button"}}
		f.Add([]byte(slackpeertest.InteractionForm(c).Encode()))
	}
	f.Add([]byte("payload=" + url.QueryEscape(`{"type":"block_actions","actions":[{"action_id":"riposte:kill","value":"{}"}]}`)))
	f.Add([]byte("payload=null"))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := rslack.ParseInteraction(body)
		if err != nil {
			return
		}
		if in.Kind != rslack.KindButton && in.Kind != rslack.KindApproval {
			t.Fatalf("accepted with kind %d", in.Kind)
		}
		if !strings.HasPrefix(in.User.ID, "U") && !strings.HasPrefix(in.User.ID, "W") {
			t.Fatalf("accepted user %q", in.User.ID)
		}
		for _, s := range []string{in.Incident, in.Container, in.ApprovalID, in.User.Name} {
			if len(s) > 512 || strings.ContainsAny(s, "<>&\n\x00") {
				t.Fatalf("accepted unsafe value %q", s)
			}
		}
		if in.Kind == rslack.KindButton && in.Incident == "" {
			t.Fatal("button without incident")
		}
		if in.Kind == rslack.KindApproval && in.ApprovalID == "" {
			t.Fatal("approval without id")
		}
		if in.Restricted != (in.Action != "container.snapshot" && in.Action != rslack.ActionAcknowledge) {
			t.Fatalf("action %s restricted=%v", in.Action, in.Restricted)
		}
		_ = strconv.Quote(in.ResponseURL)
	})
}

// TestReplayRefused sends one captured button press again: with the hex of
// its signature upper-cased, and after a restart of riposte (a new notifier
// and a reopened store). Each replay is refused before it reaches the
// dispatcher; a new press is still accepted.
func TestReplayRefused(t *testing.T) {
	p := newPeer(t)
	path := store.PathIn(t.TempDir())
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	disp := &fakeDispatcher{result: actions.Result{Note: "snapshot taken"}}
	s := newSlack(t, baseConfig(p), rslack.Deps{Dispatcher: disp, Replays: st})
	if _, err := s.Run(t.Context(), notifyRequest(t, loadAlert(t), "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	cb, err := p.Press(p.TopLevel()[0], "riposte:snapshot", bob)
	if err != nil {
		t.Fatal(err)
	}
	form := slackpeertest.InteractionForm(cb)
	sent := time.Now().Add(-time.Second)
	captured := func(srv *httptest.Server) *http.Request {
		return slackpeertest.SignedRequest(signingSecret, srv.URL+"/v1/slack/interactions", form, sent)
	}
	srv := server(t, s)
	if code, body := do(t, captured(srv)); code != 200 {
		t.Fatalf("original request: %d %s", code, body)
	}
	variants := []struct {
		name string
		edit func(*http.Request)
	}{
		{"same request", func(*http.Request) {}},
		{"upper-case hex", func(r *http.Request) {
			r.Header.Set("X-Slack-Signature", "v0="+strings.ToUpper(strings.TrimPrefix(r.Header.Get("X-Slack-Signature"), "v0=")))
		}},
		{"mixed-case hex", func(r *http.Request) {
			h := []byte(r.Header.Get("X-Slack-Signature"))
			for i := 3; i < len(h); i += 2 {
				if h[i] >= 'a' && h[i] <= 'f' {
					h[i] -= 'a' - 'A'
				}
			}
			r.Header.Set("X-Slack-Signature", string(h))
		}},
		{"extra header", func(r *http.Request) { r.Header.Set("X-Forwarded-For", "203.0.113.9") }},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			r := captured(srv)
			v.edit(r)
			if code, body := do(t, r); code != 401 {
				t.Errorf("replay: %d %s, want 401", code, body)
			}
		})
	}

	// Restart: the notifier and the store are closed and opened again.
	eventually(t, "the original press", func() bool { acts, _, _ := disp.snapshot(); return len(acts) == 1 })
	srv.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s2 := newSlack(t, baseConfig(p), rslack.Deps{Dispatcher: disp, Replays: st})
	srv2 := server(t, s2)
	if code, body := do(t, captured(srv2)); code != 401 {
		t.Errorf("replay after a restart: %d %s, want 401", code, body)
	}
	// A new press (another timestamp) is served.
	fresh := slackpeertest.SignedRequest(signingSecret, srv2.URL+"/v1/slack/interactions", form, time.Now())
	if code, body := do(t, fresh); code != 200 {
		t.Errorf("new request after a restart: %d %s, want 200", code, body)
	}
	eventually(t, "the new press", func() bool { acts, _, _ := disp.snapshot(); return len(acts) == 2 })
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if acts, _, _ := disp.snapshot(); len(acts) != 2 {
		t.Errorf("%d presses reached the dispatcher, want 2 (the original and the new one)", len(acts))
	}
}
