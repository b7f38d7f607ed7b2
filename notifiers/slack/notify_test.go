package slack_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/riposte-sec/riposte/internal/actions"
	rslack "github.com/riposte-sec/riposte/notifiers/slack"
	"github.com/riposte-sec/riposte/notifiers/slack/slackpeertest"
)

// texts flattens every text of a message's blocks, for assertions.
func texts(m slackpeertest.Message) string {
	b, _ := json.Marshal(m.Blocks)
	var v any
	_ = json.Unmarshal(b, &v)
	var out []string
	var walk func(any)
	walk = func(x any) {
		switch y := x.(type) {
		case map[string]any:
			if t, ok := y["text"].(string); ok {
				out = append(out, t)
			}
			for _, z := range y {
				walk(z)
			}
		case []any:
			for _, z := range y {
				walk(z)
			}
		}
	}
	walk(v)
	return strings.Join(out, "\n")
}

func buttonsOf(m slackpeertest.Message) []*slack.ButtonBlockElement {
	var out []*slack.ButtonBlockElement
	for _, b := range m.Blocks.BlockSet {
		if ab, ok := b.(*slack.ActionBlock); ok {
			for _, e := range ab.Elements.ElementSet {
				if be, ok := e.(*slack.ButtonBlockElement); ok {
					out = append(out, be)
				}
			}
		}
	}
	return out
}

func TestNotifyPostsIncidentMessage(t *testing.T) {
	p := newPeer(t)
	s := newSlack(t, baseConfig(p), rslack.Deps{})
	a := loadAlert(t)

	res, err := s.Run(t.Context(), notifyRequest(t, a, "inc-1", "k1"))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	top := p.TopLevel()
	if len(top) != 1 {
		t.Fatalf("want 1 message, got %d", len(top))
	}
	m := top[0]
	if m.Channel != "C0IR" || res.Detail["channel"] != "C0IR" || res.Detail["ts"] != m.TS {
		t.Errorf("result %+v does not locate message %s/%s", res.Detail, m.Channel, m.TS)
	}
	if m.UnfurlLinks != "false" || m.UnfurlMedia != "false" {
		t.Errorf("unfurl_links=%q unfurl_media=%q, want both false", m.UnfurlLinks, m.UnfurlMedia)
	}
	if m.Text != "[Notice] Terminal shell in container in payments-api on staging-node-3" {
		t.Errorf("fallback text %q", m.Text)
	}
	all := texts(m)
	for _, want := range []string{
		"🔵 Notice · Terminal shell in container",
		"*Container*\npayments-api\n`3f9a1c2b7d4e`",
		"*Image*\nstaging/payments-api:1.42.0",
		"*Host*\nstaging-node-3",
		"• proc.cmdline: `sh -i`",
		"• user.name: `root`",
		"✅ 09:14:04 container.snapshot by playbook contain-shell — snapshot taken",
		"Incident `inc-1`",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("message lacks %q; texts:\n%s", want, all)
		}
	}
	if strings.Contains(all, "http") {
		t.Errorf("message carries a link:\n%s", all)
	}

	btns := buttonsOf(m)
	var ids []string
	for _, b := range btns {
		ids = append(ids, b.ActionID)
		var v map[string]string
		if err := json.Unmarshal([]byte(b.Value), &v); err != nil {
			t.Fatalf("button %s value %q: %v", b.ActionID, b.Value, err)
		}
		want := map[string]string{"incident": "inc-1", "container": "3f9a1c2b7d4e"}
		if b.ActionID == "riposte:ack" || b.ActionID == "riposte:mute" {
			want = map[string]string{"incident": "inc-1"}
		}
		if len(v) != len(want) || v["incident"] != want["incident"] || v["container"] != want["container"] {
			t.Errorf("button %s value %v, want %v", b.ActionID, v, want)
		}
		if b.ActionID == "riposte:kill" {
			if b.Style != slack.StyleDanger || b.Confirm == nil || b.Confirm.Style != slack.StyleDanger || b.Confirm.Confirm.Text != "Kill" {
				t.Errorf("kill button: style %q confirm %+v, want danger with a confirm dialog", b.Style, b.Confirm)
			}
		} else if b.ActionID == "riposte:mute" {
			if b.Style == slack.StyleDanger || b.Confirm == nil || b.Confirm.Confirm.Text != "Mute 1h" || !strings.Contains(b.Confirm.Text.Text, "containment still runs") {
				t.Errorf("mute button: style %q confirm %+v, want a confirm dialog saying containment still runs", b.Style, b.Confirm)
			}
		} else if b.Confirm != nil || b.Style == slack.StyleDanger {
			t.Errorf("button %s: unexpected danger style or confirm", b.ActionID)
		}
	}
	if got := strings.Join(ids, ","); got != "riposte:pause,riposte:quarantine,riposte:kill,riposte:snapshot,riposte:release,riposte:ack,riposte:mute" {
		t.Errorf("buttons %s", got)
	}
}

func TestNotifyAgainUpdatesAndReplies(t *testing.T) {
	p := newPeer(t)
	s := newSlack(t, baseConfig(p), rslack.Deps{})
	a := loadAlert(t)
	if _, err := s.Run(t.Context(), notifyRequest(t, a, "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	// A second alert of the same incident, more severe: same message,
	// updated, one reply in its thread.
	b := a
	b.ID = "second-alert"
	b.Priority = a.Priority + 2
	b.Time = a.Time.Add(time.Minute)
	b.OutputFields = map[string]any{"container.id": "3f9a1c2b7d4e", "container.name": "payments-api", "proc.cmdline": "sh -c id"}
	req := notifyRequest(t, b, "inc-1", "k2")
	req.Params = actions.Params{"channel": "#ir"}
	res, err := s.Run(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	top := p.TopLevel()
	if len(top) != 1 {
		t.Fatalf("want still 1 top-level message, got %d", len(top))
	}
	m := top[0]
	if m.Updates != 1 || res.Detail["updated"] != true {
		t.Errorf("updates %d, detail %v; want 1 chat.update", m.Updates, res.Detail)
	}
	if !strings.Contains(texts(m), "🟠 Error · Terminal shell in container") || !strings.Contains(texts(m), "*Alerts*\n2") {
		t.Errorf("updated message does not show the more severe alert and the count:\n%s", texts(m))
	}
	replies := p.Replies(m.Channel, m.TS)
	if len(replies) != 1 || !strings.Contains(replies[0].Text, "Again at 09:15:03 UTC: *Terminal shell in container* (Error)") || !strings.Contains(replies[0].Text, "`sh -c id`") {
		t.Fatalf("replies %+v", replies)
	}

	// The outbox retries the same request: update only, no second reply.
	if _, err := s.Run(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if got := len(p.Replies(m.Channel, m.TS)); got != 1 {
		t.Errorf("retried notify added replies: %d", got)
	}
	if got := len(p.TopLevel()); got != 1 {
		t.Errorf("retried notify posted: %d top-level messages", got)
	}
	if got := len(p.Calls("chat.postMessage")); got != 2 {
		t.Errorf("chat.postMessage calls %d, want 2 (message + one reply)", got)
	}
}

func TestOneMessagePerChannel(t *testing.T) {
	p := newPeer(t)
	s := newSlack(t, baseConfig(p), rslack.Deps{})
	a := loadAlert(t)
	if _, err := s.Run(t.Context(), notifyRequest(t, a, "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	// Another playbook tells another channel about the same incident: a
	// message there, and the first one brought up to date.
	req := notifyRequest(t, a, "inc-1", "k2")
	req.Params = actions.Params{"channel": "#alerts"}
	res, err := s.Run(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	top := p.TopLevel()
	if len(top) != 2 || top[0].Channel != "C0IR" || top[1].Channel != "C0ALERTS" || res.Detail["channel"] != "C0ALERTS" {
		t.Fatalf("messages %+v, result %v", top, res.Detail)
	}
	if len(p.Replies(top[1].Channel, top[1].TS)) != 0 {
		t.Error("the new channel's message got a reply")
	}
	// A retry of that request, and a later notify to #alerts by id: no new
	// message anywhere.
	if _, err := s.Run(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	req.Params = actions.Params{"channel": "C0ALERTS", "text": "still going"}
	req.Key = "k3"
	if _, err := s.Run(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if got := len(p.TopLevel()); got != 2 {
		t.Fatalf("%d top-level messages, want 2", got)
	}
	if r := p.Replies(top[1].Channel, top[1].TS); len(r) != 1 || r[0].Text != "still going" {
		t.Errorf("replies in #alerts %+v", r)
	}
	// A step reported later shows on both, with a reply in both threads.
	if err := s.Update(t.Context(), "inc-1", actions.Step{Action: "container.pause", Status: "succeeded", Actor: "slack:U0ALICE (alice)", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, m := range top {
		mm, _ := p.Message(m.Channel, m.TS)
		if !strings.Contains(texts(mm), "container.pause by alice") {
			t.Errorf("message in %s lacks the step:\n%s", m.Channel, texts(mm))
		}
		replies := p.Replies(m.Channel, m.TS)
		if len(replies) == 0 || !strings.Contains(replies[len(replies)-1].Text, "container.pause by alice") {
			t.Errorf("no step reply in %s: %+v", m.Channel, replies)
		}
	}
	// Approvals go to the thread of the first message unless a channel is named.
	ap, err := s.RequestApproval(t.Context(), rslack.Approval{ID: "ap-1", Incident: "inc-1", Held: []string{"container.kill"}, Channel: "#alerts"})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := p.Message(ap.Channel, ap.TS); m.Channel != "C0ALERTS" || m.ThreadTS != top[1].TS {
		t.Errorf("approval posted at %+v", m)
	}
}

func TestUpdateReportsLaterSteps(t *testing.T) {
	p := newPeer(t)
	s := newSlack(t, baseConfig(p), rslack.Deps{})
	if _, err := s.Run(t.Context(), notifyRequest(t, loadAlert(t), "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 20, 9, 14, 10, 0, time.UTC)
	steps := []actions.Step{
		{Action: "capture.start", Status: "succeeded", Note: "30s capture", Actor: "playbook:contain-shell", Time: at},
		{Action: "container.pause", Status: "held_for_approval", Actor: "playbook:contain-shell", Time: at.Add(time.Second)},
	}
	if err := s.Update(t.Context(), "inc-1", steps...); err != nil {
		t.Fatal(err)
	}
	m := p.TopLevel()[0]
	for _, want := range []string{"✅ 09:14:10 capture.start by playbook contain-shell — 30s capture", "⏳ 09:14:11 container.pause (waiting for approval) by playbook contain-shell"} {
		if !strings.Contains(texts(m), want) {
			t.Errorf("message lacks %q:\n%s", want, texts(m))
		}
	}
	r := p.Replies(m.Channel, m.TS)
	if len(r) != 1 || !strings.Contains(r[0].Text, "capture.start") || !strings.Contains(r[0].Text, "container.pause") {
		t.Fatalf("want one reply listing both steps, got %+v", r)
	}
	calls := len(p.Calls(""))
	if err := s.Update(t.Context(), "inc-1", steps...); err != nil {
		t.Fatal(err)
	}
	if got := len(p.Calls("")); got != calls {
		t.Errorf("repeating Update made %d more calls", got-calls)
	}
	if err := s.Update(t.Context(), "inc-unknown", steps...); !errors.Is(err, rslack.ErrNoMessage) || !errors.Is(err, actions.ErrNotFound) {
		t.Errorf("Update of an incident without message: %v, want ErrNoMessage", err)
	}
}

func TestNotifyHonoursRetryAfter(t *testing.T) {
	p := newPeer(t)
	s := newSlack(t, baseConfig(p), rslack.Deps{})
	p.FailNext("chat.postMessage", slackpeertest.Failure{Status: 429, RetryAfter: 7})
	req := notifyRequest(t, loadAlert(t), "inc-1", "k1")
	_, err := s.Run(t.Context(), req)
	if !actions.IsRetryable(err) {
		t.Fatalf("429: %v, want retryable", err)
	}
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(err, &ra) || ra.RetryAfter() != 7*time.Second {
		t.Fatalf("429: %v carries no Retry-After of 7s", err)
	}
	if _, err := s.Run(t.Context(), req); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := len(p.TopLevel()); got != 1 {
		t.Errorf("%d messages after a retry, want 1", got)
	}
}

func TestNotifyErrorClassification(t *testing.T) {
	a := loadAlert(t)
	tests := []struct {
		name      string
		fail      slackpeertest.Failure
		token     string
		channel   string
		retryable bool
		notFound  bool
		msg       string
	}{
		{name: "server error", fail: slackpeertest.Failure{Status: 503}, retryable: true, msg: "post slack message: slack answered HTTP 503"},
		{name: "ratelimited code", fail: slackpeertest.Failure{Error: "ratelimited"}, retryable: true, msg: "post slack message: slack error ratelimited"},
		{name: "internal error", fail: slackpeertest.Failure{Error: "internal_error"}, retryable: true, msg: "post slack message: slack error internal_error"},
		{name: "unknown channel", channel: "#nowhere", notFound: true, msg: "post slack message: slack error channel_not_found (not found)"},
		{name: "bad token", token: "xoxb-9999-wrong-token-value", msg: "post slack message: slack error invalid_auth"},
		{name: "missing scope", fail: slackpeertest.Failure{Error: "missing_scope"}, msg: "post slack message: slack error missing_scope"},
		{name: "bad request", fail: slackpeertest.Failure{Status: 400}, msg: "post slack message: slack answered HTTP 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPeer(t)
			cfg := baseConfig(p)
			deps := rslack.Deps{}
			if tt.token != "" {
				deps.LookupEnv = env(map[string]string{"SLACK_BOT_TOKEN": tt.token, "SLACK_SIGNING_SECRET": signingSecret})
			}
			s := newSlack(t, cfg, deps)
			if tt.fail != (slackpeertest.Failure{}) {
				p.FailNext("chat.postMessage", tt.fail)
			}
			req := notifyRequest(t, a, "inc-1", "k1")
			if tt.channel != "" {
				req.Params = actions.Params{"channel": tt.channel}
			}
			_, err := s.Run(t.Context(), req)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tt.msg {
				t.Errorf("error %q, want %q", err, tt.msg)
			}
			if actions.IsRetryable(err) != tt.retryable {
				t.Errorf("retryable = %v, want %v", actions.IsRetryable(err), tt.retryable)
			}
			if errors.Is(err, actions.ErrNotFound) != tt.notFound {
				t.Errorf("not found = %v, want %v", errors.Is(err, actions.ErrNotFound), tt.notFound)
			}
		})
	}
	t.Run("slack down", func(t *testing.T) {
		p := newPeer(t)
		s := newSlack(t, baseConfig(p), rslack.Deps{})
		p.Close()
		_, err := s.Run(t.Context(), notifyRequest(t, a, "inc-1", "k1"))
		if !actions.IsRetryable(err) || !strings.HasPrefix(err.Error(), "post slack message: ") {
			t.Errorf("connection refused: %v, want retryable", err)
		}
	})
	t.Run("no channel", func(t *testing.T) {
		p := newPeer(t)
		cfg := baseConfig(p)
		cfg.Channel = ""
		s := newSlack(t, cfg, rslack.Deps{})
		_, err := s.Run(t.Context(), notifyRequest(t, a, "inc-1", "k1"))
		if err == nil || actions.IsRetryable(err) || err.Error() != "notify slack: no channel: set channel in the slack config or in the action's with" {
			t.Errorf("no channel: %v", err)
		}
	})
}

func TestNotifyAfterMessageDeletedPostsAgain(t *testing.T) {
	p := newPeer(t)
	s := newSlack(t, baseConfig(p), rslack.Deps{})
	a := loadAlert(t)
	if _, err := s.Run(t.Context(), notifyRequest(t, a, "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	first := p.TopLevel()[0]
	p.DeleteMessage(first.Channel, first.TS)
	res, err := s.Run(t.Context(), notifyRequest(t, a, "inc-1", "k2"))
	if err != nil {
		t.Fatal(err)
	}
	top := p.TopLevel()
	if len(top) != 1 || top[0].TS == first.TS || res.Detail["ts"] != top[0].TS {
		t.Fatalf("want one new message, got %+v (result %v)", top, res.Detail)
	}
	if err := s.Update(t.Context(), "inc-1", actions.Step{Action: "container.pause", Status: "succeeded", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := p.TopLevel()[0].Updates; got != 1 {
		t.Errorf("the new message got %d updates, want 1", got)
	}
}

func TestAlertTextCannotMentionOrLink(t *testing.T) {
	p := newPeer(t)
	s := newSlack(t, baseConfig(p), rslack.Deps{})
	a := loadAlert(t)
	a.OutputFields["container.name"] = "<!channel> <https://evil.example|click>"
	a.OutputFields["proc.cmdline"] = "curl `x` <@U0ALICE>"
	if _, err := s.Run(t.Context(), notifyRequest(t, a, "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	m := p.TopLevel()[0]
	all := texts(m) + "\n" + m.Text
	for _, bad := range []string{"<!channel>", "<https://", "<@U0ALICE>"} {
		if strings.Contains(all, bad) {
			t.Errorf("alert text reached Slack unescaped (%q):\n%s", bad, all)
		}
	}
	if !strings.Contains(all, "&lt;!channel&gt;") {
		t.Errorf("escaped container name missing:\n%s", all)
	}
}

func TestHostAlertHasNoContainerButtons(t *testing.T) {
	p := newPeer(t)
	s := newSlack(t, baseConfig(p), rslack.Deps{})
	a := loadAlert(t)
	a.OutputFields = map[string]any{"container.id": "host", "proc.cmdline": "vi /etc/shadow"}
	req := notifyRequest(t, a, "inc-host", "k1")
	req.Container = ""
	if _, err := s.Run(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	btns := buttonsOf(p.TopLevel()[0])
	if len(btns) != 2 || btns[0].ActionID != "riposte:ack" || btns[1].ActionID != "riposte:mute" {
		t.Errorf("host alert buttons %v, want only Acknowledge and Mute", btns)
	}
}

func TestIncomingWebhookMode(t *testing.T) {
	p := newPeer(t)
	hook := p.WebhookURL("sEcReTwEbHoOkPaRt123")
	cfg := rslack.Config{WebhookURLEnv: "SLACK_WEBHOOK_URL", Channel: "#ir"}
	s := newSlack(t, cfg, rslack.Deps{LookupEnv: env(map[string]string{"SLACK_WEBHOOK_URL": hook})})
	if s.Buttons() || s.Interactive() {
		t.Error("webhook mode claims buttons or interactivity")
	}
	req := notifyRequest(t, loadAlert(t), "inc-1", "k1")
	if _, err := s.Run(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	posts := p.WebhookPosts(hook)
	if len(posts) != 1 {
		t.Fatalf("%d webhook posts", len(posts))
	}
	var msg struct {
		Text        string          `json:"text"`
		Blocks      json.RawMessage `json:"blocks"`
		UnfurlLinks *bool           `json:"unfurl_links"`
	}
	if err := json.Unmarshal(posts[0], &msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg.Blocks), "Terminal shell in container") || strings.Contains(string(msg.Blocks), `"actions"`) {
		t.Errorf("webhook blocks: want the incident without buttons, got %s", msg.Blocks)
	}
	if msg.UnfurlLinks == nil || *msg.UnfurlLinks {
		t.Errorf("unfurl_links not false")
	}

	p.FailNext("webhook", slackpeertest.Failure{Status: 429, RetryAfter: 30})
	_, err := s.Run(t.Context(), req)
	var ra interface{ RetryAfter() time.Duration }
	if !actions.IsRetryable(err) || !errors.As(err, &ra) || ra.RetryAfter() != 30*time.Second {
		t.Errorf("webhook 429: %v, want retryable after 30s", err)
	}
	p.FailNext("webhook", slackpeertest.Failure{Status: 404, Error: "no_service"})
	_, err = s.Run(t.Context(), req)
	if err == nil || actions.IsRetryable(err) || err.Error() != "post slack webhook: HTTP 404 Not Found: no_service" {
		t.Errorf("webhook 404: %v, want permanent", err)
	}
	if err := s.Update(t.Context(), "inc-1"); !errors.Is(err, rslack.ErrNoMessage) {
		t.Errorf("Update in webhook mode: %v", err)
	}
}

// TestNotifyFoldedUpdate: a throttled update updates the incident's message
// with the count of every alert it stands for and replies once with the
// count and the latest alert.
func TestNotifyFoldedUpdate(t *testing.T) {
	p := newPeer(t)
	s := newSlack(t, baseConfig(p), rslack.Deps{})
	a := loadAlert(t)
	if _, err := s.Run(t.Context(), notifyRequest(t, a, "inc-1", "k1")); err != nil {
		t.Fatal(err)
	}
	b := a
	b.ID, b.Output = "latest-alert", "the latest shell (n=38)"
	b.Time = a.Time.Add(5 * time.Minute)
	req := notifyRequest(t, b, "inc-1", "k38")
	req.Fold = &actions.Fold{Alerts: 37, Every: 5 * time.Minute}
	if _, err := s.Run(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	top := p.TopLevel()
	if len(top) != 1 || top[0].Updates != 1 {
		t.Fatalf("want 1 message updated once, got %d messages %+v", len(top), top)
	}
	if !strings.Contains(texts(top[0]), "*Alerts*\n38") {
		t.Errorf("the message does not count 38 alerts:\n%s", texts(top[0]))
	}
	replies := p.Replies(top[0].Channel, top[0].TS)
	if len(replies) != 1 || !strings.Contains(replies[0].Text, "*+37 more in 5 min*. Latest at 09:19:03 UTC:") ||
		!strings.Contains(replies[0].Text, "*Terminal shell in container*") || !strings.Contains(replies[0].Text, "the latest shell (n=38)") {
		t.Fatalf("replies %+v", replies)
	}
}
