package assembly

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/slack-go/slack"

	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/notifiers/email/smtptest"
	"github.com/riposte-sec/riposte/notifiers/pagerduty/pdtest"
	"github.com/riposte-sec/riposte/notifiers/slack/slackpeertest"
)

const (
	e2eBotToken      = "xoxb-1111111111-2222222222-riposteE2EbotTOKEN"
	e2eAppToken      = "xapp-1-A0RIPOSTE-3333333333-riposteE2EappTOKEN"
	e2eSigningSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	e2eRoutingKey    = "R0E2EPAGERDUTYROUTINGKEY00000001"
	e2eSMTPPassword  = "e2e-smtp-password"
	e2eToken         = "e2e-intake-token-0123456789"
)

// peers are the local Slack, PagerDuty and SMTP servers a served riposte
// talks to in these tests.
type peers struct {
	slack *slackpeertest.Peer
	pd    *pdtest.Peer
	smtp  *smtptest.Server
	ca    string
}

func startPeers(t *testing.T) *peers {
	t.Helper()
	t.Setenv("E2E_SLACK_BOT_TOKEN", e2eBotToken)
	t.Setenv("E2E_SLACK_SIGNING_SECRET", e2eSigningSecret)
	t.Setenv("E2E_PD_KEY", e2eRoutingKey)
	t.Setenv("E2E_SMTP_PASSWORD", e2eSMTPPassword)
	p := &peers{slack: slackpeertest.New(e2eBotToken, e2eAppToken), pd: pdtest.New()}
	t.Cleanup(p.slack.Close)
	t.Cleanup(p.pd.Close)
	var err error
	p.smtp, err = smtptest.New(smtptest.Options{StartTLS: true, Users: map[string]string{"riposte": e2eSMTPPassword}, RequireAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.smtp.Close)
	if p.ca, err = p.smtp.CAFile(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	return p
}

// e2eConfig is a riposte.yaml with every notifier pointed at the peers.
func (p *peers) config(t *testing.T, dir, playbooks string) config.Config {
	t.Helper()
	pbPath := filepath.Join(dir, "playbooks.yaml")
	if err := os.WriteFile(pbPath, []byte(playbooks), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf(`
playbooks: [%q]
engine: {poll: 20ms, outbox: {base_backoff: 50ms, max_backoff: 200ms}}
notifiers:
  slack:
    token_env: E2E_SLACK_BOT_TOKEN
    signing_secret_env: E2E_SLACK_SIGNING_SECRET
    channel: "#ir"
    approvers: [U0ALICE]
    api_url: %q
  pagerduty:
    routing_key_env: E2E_PD_KEY
    endpoint: %q
  email:
    host: 127.0.0.1
    port: %d
    starttls: mandatory
    ca_file: %q
    auth: plain
    username: riposte
    password_env: E2E_SMTP_PASSWORD
    from: riposte@example.com
    to: [soc@example.com]
`, pbPath, p.slack.APIURL(), p.pd.URL(), p.smtp.Port(), p.ca)
	cfg, err := config.Parse(filepath.Join(dir, "riposte.yaml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = filepath.Join(dir, "data")
	cfg.Listen = "127.0.0.1:0"
	return cfg
}

// served is an in-process riposte serve.
type served struct {
	app  *App
	addr string
	stop func()
}

func serveApp(t *testing.T, cfg config.Config) *served {
	t.Helper()
	a, err := Build(cfg, NewLogger(cfg, os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, e2eToken, func(addr string) { addrc <- addr }) }()
	s := &served{app: a}
	select {
	case s.addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	var once bool
	s.stop = func() {
		if once {
			return
		}
		once = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	}
	t.Cleanup(s.stop)
	return s
}

func (s *served) postAlert(t *testing.T, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/v1/alerts", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post alert: %s", resp.Status)
	}
}

// press signs a button press as Slack does and posts it to the server.
func (s *served) press(t *testing.T, p *slackpeertest.Peer, msg slackpeertest.Message, actionID string, user slack.User, secret string, at time.Time) int {
	t.Helper()
	cb, err := p.Press(msg, actionID, user)
	if err != nil {
		t.Fatal(err)
	}
	req := slackpeertest.SignedRequest(secret, "http://"+s.addr+"/v1/slack/interactions", slackpeertest.InteractionForm(cb), at)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func shellAlertJSON(container, name string) string {
	b, _ := json.Marshal(map[string]any{
		"uuid": "e2e-" + fmt.Sprint(time.Now().UnixNano()), "time": time.Now().UTC().Format(time.RFC3339Nano),
		"rule": "Terminal shell in container", "priority": "Warning", "source": "syscall", "hostname": "e2e-host",
		"tags":   []string{"container", "shell"},
		"output": "A shell was spawned in a container with an attached terminal (shell=sh)",
		"output_fields": map[string]any{"container.id": container, "container.name": name, "container.image.repository": "riposte-test",
			"container.image.tag": "1", "proc.cmdline": "sh -i", "user.name": "root"},
	})
	return string(b)
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, d, cond, "timed out waiting for %s", what)
}

func journal(t *testing.T, a *App, f store.Filter) []store.Entry {
	t.Helper()
	es, err := a.Store.Entries(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func paused(t *testing.T, cli *client.Client, id string) bool {
	t.Helper()
	info, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Paused
}

const e2eNotifyPlaybook = `
- playbook: e2e-notify
  match: {rules: ["Terminal shell in container"]}
  actions:
    - do: slack.notify
    - do: pagerduty.trigger
    - do: email.send
`

// TestE2ESlackPauseButton is issue 6's acceptance test: a Falco alert
// posted to /v1/alerts produces a Slack message with buttons, a PagerDuty
// trigger and a mail at their local peers; pressing Pause (a signed
// interaction) as an approver pauses the real container and updates the
// message; a non-approver is refused and journaled; unsigned, badly signed
// and stale requests get 401.
func TestE2ESlackPauseButton(t *testing.T) {
	cli := testutil.DockerClient(t)
	name := testutil.UniqueName("e2e-slack-pause")
	id := testutil.RunContainer(t, cli, name, nil)
	p := startPeers(t)
	s := serveApp(t, p.config(t, t.TempDir(), e2eNotifyPlaybook))
	s.postAlert(t, shellAlertJSON(id[:12], name))

	// Slack: one message with the response buttons.
	waitUntil(t, "slack message", 10*time.Second, func() bool { return len(p.slack.TopLevel()) == 1 })
	msg := p.slack.TopLevel()[0]
	buttons := map[string]*slack.ButtonBlockElement{}
	for _, b := range msg.Blocks.BlockSet {
		if ab, ok := b.(*slack.ActionBlock); ok && ab.Elements != nil {
			for _, e := range ab.Elements.ElementSet {
				if be, ok := e.(*slack.ButtonBlockElement); ok {
					buttons[be.Text.Text] = be
				}
			}
		}
	}
	for _, label := range []string{"Pause", "Quarantine", "Kill", "Snapshot", "Release", "Acknowledge"} {
		if buttons[label] == nil {
			t.Errorf("message lacks the %s button; buttons: %v", label, buttons)
		}
	}
	if k := buttons["Kill"]; k != nil && (k.Style != slack.StyleDanger || k.Confirm == nil) {
		t.Errorf("Kill button: style %q confirm %v, want danger with a confirm dialog", k.Style, k.Confirm)
	}

	// PagerDuty: a trigger deduplicated on the incident; email over STARTTLS.
	waitUntil(t, "pagerduty event and mail", 10*time.Second, func() bool { return len(p.pd.Events()) == 1 && len(p.smtp.Mails()) == 1 })
	incidents := journal(t, s.app, store.Filter{Types: []store.EntryType{store.IncidentOpened}})
	if len(incidents) != 1 {
		t.Fatalf("incidents: %v", incidents)
	}
	incident := incidents[0].Detail["incident"]
	ev := p.pd.Events()[0]
	if ev.EventAction != "trigger" || ev.DedupKey != incident || ev.Payload.Severity != "warning" {
		t.Errorf("pagerduty event: action %s dedup %s severity %s, want trigger / %v / warning", ev.EventAction, ev.DedupKey, ev.Payload.Severity, incident)
	}
	mail := p.smtp.Mails()[0]
	if !mail.TLS || mail.AuthUser != "riposte" || !bytes.Contains(mail.Data, []byte("text/plain")) || !bytes.Contains(mail.Data, []byte("text/html")) {
		t.Errorf("mail: tls=%v auth=%q, text+html=%v", mail.TLS, mail.AuthUser, bytes.Contains(mail.Data, []byte("text/html")))
	}

	// Forged requests never reach the engine.
	now := time.Now()
	alice := slack.User{ID: "U0ALICE", Name: "alice"}
	for _, tc := range []struct {
		name   string
		secret string
		at     time.Time
	}{{"bad signature", "not-the-signing-secret-000000000", now}, {"stale", e2eSigningSecret, now.Add(-6 * time.Minute)}} {
		if code := s.press(t, p.slack, msg, "riposte:pause", alice, tc.secret, tc.at); code != http.StatusUnauthorized {
			t.Errorf("%s press: %d, want 401", tc.name, code)
		}
	}
	unsigned, _ := http.Post("http://"+s.addr+"/v1/slack/interactions", "application/x-www-form-urlencoded", strings.NewReader("payload={}"))
	if unsigned.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned press: %d, want 401", unsigned.StatusCode)
	}
	unsigned.Body.Close()

	// Someone who is not an approver: refused, journaled, nothing paused.
	mallory := slack.User{ID: "U0MALLORY", Name: "mallory"}
	if code := s.press(t, p.slack, msg, "riposte:pause", mallory, e2eSigningSecret, time.Now()); code != http.StatusOK {
		t.Fatalf("press by a non-approver: %d", code)
	}
	waitUntil(t, "approval.denied", 10*time.Second, func() bool {
		return len(journal(t, s.app, store.Filter{Types: []store.EntryType{store.ApprovalDenied}})) == 1
	})
	if paused(t, cli, id) {
		t.Fatal("a non-approver's press paused the container")
	}
	waitUntil(t, "ephemeral refusal", 5*time.Second, func() bool {
		for _, r := range p.slack.Responses() {
			if r.ResponseType == "ephemeral" && strings.Contains(strings.ToLower(r.Text), "not allowed") {
				return true
			}
		}
		return false
	})

	// The approver presses Pause: the real container is paused, the message
	// says who did it, the journal has the Slack actor.
	if code := s.press(t, p.slack, msg, "riposte:pause", alice, e2eSigningSecret, time.Now()); code != http.StatusOK {
		t.Fatalf("press: %d", code)
	}
	waitUntil(t, "container paused", 10*time.Second, func() bool { return paused(t, cli, id) })
	waitUntil(t, "message updated", 10*time.Second, func() bool {
		m, ok := p.slack.Message(msg.Channel, msg.TS)
		return ok && m.Updates > 0 && strings.Contains(m.RawBlocks+m.Text, "alice")
	})
	var actor string
	for _, e := range journal(t, s.app, store.Filter{Types: []store.EntryType{store.ActionSucceeded}}) {
		if e.Action == "container.pause" {
			actor = e.Actor
		}
	}
	if actor != "slack:U0ALICE (alice)" {
		t.Errorf("pause journaled with actor %q", actor)
	}
}

// TestE2EOutboxSurvivesRestart: Slack is down when the alert comes; the
// containment step does not wait for it; riposte is stopped with the
// message still queued; Slack comes back, riposte starts again on the same
// data directory, and the message is delivered exactly once.
func TestE2EOutboxSurvivesRestart(t *testing.T) {
	p := startPeers(t)
	var up atomic.Bool
	var refused atomic.Int64
	target, err := url.Parse(p.slack.APIURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			refused.Add(1)
			http.Error(w, "slack is down", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(gate.Close)

	dir := t.TempDir()
	cfg := p.config(t, dir, `
- playbook: notify-then-note
  actions:
    - do: slack.notify
    - do: journal.note
      with: {text: contained}
`)
	apiURL := gate.URL + target.Path
	if err := cfg.SetSection("notifiers.slack", map[string]any{"token_env": "E2E_SLACK_BOT_TOKEN", "signing_secret_env": "E2E_SLACK_SIGNING_SECRET",
		"channel": "#ir", "approvers": []string{"U0ALICE"}, "api_url": apiURL}); err != nil {
		t.Fatal(err)
	}

	s := serveApp(t, cfg)
	s.postAlert(t, shellAlertJSON("0123456789ab", "web"))
	// The note after the notification does not wait for Slack.
	waitUntil(t, "note", 10*time.Second, func() bool {
		return len(journal(t, s.app, store.Filter{Types: []store.EntryType{store.Note}})) == 1
	})
	waitUntil(t, "a failed delivery attempt", 10*time.Second, func() bool {
		st, err := s.app.Store.Stats(context.Background())
		return err == nil && st.OutboxPending == 1 && refused.Load() > 0 && len(p.slack.Calls("chat.postMessage")) == 0
	})
	s.stop()

	up.Store(true)
	s2 := serveApp(t, cfg)
	notified := func() int {
		n := 0
		for _, e := range journal(t, s2.app, store.Filter{Types: []store.EntryType{store.NotificationSent}}) {
			if e.Action == "slack.notify" {
				n++
			}
		}
		return n
	}
	waitUntil(t, "delivery after restart", 15*time.Second, func() bool { return notified() == 1 })
	// The note's step report may reach Slack as a reply in the message's
	// thread (it can still be queued when the first run stops); only a
	// second top-level message would be a second delivery.
	testutil.Never(t, 300*time.Millisecond, func() bool { return len(p.slack.TopLevel()) > 1 || notified() > 1 },
		"slack got a second delivery after restart")
	if n := len(p.slack.TopLevel()); n != 1 {
		t.Errorf("slack holds %d top-level messages, want exactly 1", n)
	}
	if n := notified(); n != 1 {
		t.Errorf("slack.notify journaled notification.sent %d times", n)
	}
}

// TestE2EApprovalFromSlack: a gated action waits; Approve and Deny buttons
// are posted; the approver's Approve runs it (journaled with the Slack
// actor); a second press runs nothing.
func TestE2EApprovalFromSlack(t *testing.T) {
	cli := testutil.DockerClient(t)
	name := testutil.UniqueName("e2e-slack-approve")
	id := testutil.RunContainer(t, cli, name, nil)
	p := startPeers(t)
	s := serveApp(t, p.config(t, t.TempDir(), `
- playbook: gated-pause
  approval: {approvers: [U0ALICE], timeout: 1h}
  actions:
    - do: slack.notify
    - do: container.pause
      gated: true
`))
	s.postAlert(t, shellAlertJSON(id[:12], name))
	var req slackpeertest.Message
	waitUntil(t, "approval request", 10*time.Second, func() bool {
		for _, m := range p.slack.Messages() {
			if strings.Contains(m.RawBlocks, "riposte:approve") {
				req = m
				return true
			}
		}
		return false
	})
	if paused(t, cli, id) {
		t.Fatal("paused before approval")
	}
	alice := slack.User{ID: "U0ALICE", Name: "alice"}
	if code := s.press(t, p.slack, req, "riposte:approve", alice, e2eSigningSecret, time.Now()); code != http.StatusOK {
		t.Fatalf("approve: %d", code)
	}
	waitUntil(t, "paused after approval", 10*time.Second, func() bool { return paused(t, cli, id) })
	if code := s.press(t, p.slack, req, "riposte:approve", alice, e2eSigningSecret, time.Now()); code != http.StatusOK {
		t.Fatalf("second approve: %d", code)
	}
	pauses := func() int {
		n := 0
		for _, e := range journal(t, s.app, store.Filter{Types: []store.EntryType{store.ActionSucceeded}}) {
			if e.Action == "container.pause" {
				n++
			}
		}
		return n
	}
	testutil.Never(t, 300*time.Millisecond, func() bool { return pauses() > 1 }, "the second approve ran container.pause again")
	granted := journal(t, s.app, store.Filter{Types: []store.EntryType{store.ApprovalGranted}})
	var ran []store.Entry
	for _, e := range journal(t, s.app, store.Filter{Types: []store.EntryType{store.ActionSucceeded}}) {
		if e.Action == "container.pause" {
			ran = append(ran, e)
		}
	}
	if len(granted) != 1 || granted[0].Actor != "slack:U0ALICE (alice)" || len(ran) != 1 || ran[0].Actor != "slack:U0ALICE (alice)" {
		t.Errorf("granted %v, pause ran %v", granted, ran)
	}
}

// TestServeRefusesUnconfiguredNotifier: a playbook that notifies a service
// with no configuration (and no log fallback) stops serve with a clear
// message.
func TestServeRefusesUnconfiguredNotifier(t *testing.T) {
	dir := t.TempDir()
	pb := filepath.Join(dir, "pb.yaml")
	if err := os.WriteFile(pb, []byte("- playbook: page\n  actions: [{do: pagerduty.trigger}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig("", Overrides{Data: filepath.Join(dir, "data"), Playbooks: []string{pb}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(cfg, NewLogger(cfg, io.Discard))
	if err == nil || !strings.Contains(err.Error(), "pagerduty.trigger (used by page) is not configured: add a notifiers.pagerduty section to the config") {
		t.Errorf("Build: %v", err)
	}
}

// TestServeRefusesUnknownWebhookEndpoint: an endpoint name only the config
// can judge is checked when serve builds the app, with the playbook's file
// and line, not when the first alert is delivered.
func TestServeRefusesUnknownWebhookEndpoint(t *testing.T) {
	dir := t.TempDir()
	pb := filepath.Join(dir, "pb.yaml")
	playbook := `- playbook: to-soar
  actions:
    - do: webhook.post
      with: {endpoint: soar}
    - do: webhook.post
      with: {endpoint: "{{ .Rule }}"}
    - do: webhook.post
      with: {endpoint: siem}
`
	if err := os.WriteFile(pb, []byte(playbook), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "riposte.yaml")
	if err := os.WriteFile(conf, []byte("notifiers:\n  webhook:\n    endpoints:\n      - {name: soar, url: \"http://127.0.0.1:9/hook\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(conf, Overrides{Data: filepath.Join(dir, "data"), Playbooks: []string{pb}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(cfg, NewLogger(cfg, io.Discard))
	want := pb + `:7: playbook "to-soar": actions[2]: with.endpoint: no webhook endpoint "siem" in the config (configured: soar)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Build: %v\nwant it to contain %s", err, want)
	}
	if strings.Contains(err.Error(), "actions[0]") || strings.Contains(err.Error(), "actions[1]") {
		t.Errorf("a configured endpoint or a template was refused: %v", err)
	}

	// With the endpoint configured, the same playbooks build.
	if err := os.WriteFile(pb, []byte(strings.Replace(playbook, "endpoint: siem", "endpoint: soar", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := Build(cfg, NewLogger(cfg, io.Discard))
	if err != nil {
		t.Fatalf("Build with known endpoints: %v", err)
	}
	a.Close()
}
