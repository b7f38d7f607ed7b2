package secret_test

// This test drives every notifier through its failure paths with a logger
// writing into a buffer, and checks that no credential appears in any error
// text or log line.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/notifiers/email"
	"github.com/riposte-sec/riposte/notifiers/email/smtptest"
	"github.com/riposte-sec/riposte/notifiers/pagerduty"
	"github.com/riposte-sec/riposte/notifiers/pagerduty/pdtest"
	"github.com/riposte-sec/riposte/notifiers/slack"
	"github.com/riposte-sec/riposte/notifiers/slack/slackpeertest"
	"github.com/riposte-sec/riposte/notifiers/webhook"

	"github.com/riposte-sec/riposte/internal/testutil"
)

var secrets = map[string]string{
	"SLACK_BOT_TOKEN":      "xoxb-4242424242-LEAKCHECKbotTOKENvalue",
	"SLACK_SIGNING_SECRET": "LEAKCHECKsigningSECRETvalue0000",
	"SLACK_APP_TOKEN":      "xapp-1-A0LEAK-LEAKCHECKappTOKENvalue",
	"PD_ROUTING_KEY":       "LEAKCHECKroutingKEYvalue00000001", // 32 characters
	"PD_SHORT_KEY":         "LEAKCHECKshortROUTINGkey",
	"SMTP_PASSWORD":        "LEAKCHECKsmtpPASSWORDvalue",
	"HOOK_SECRET":          "LEAKCHECKhmacSECRETvalue",
	"HOOK_BEARER":          "LEAKCHECKbearerTOKENvalue",
	// Set per test: URLs that are credentials.
	"SLACK_WEBHOOK_URL": "",
	"HOOK_URL":          "",
}

// collector keeps every error text produced.
type collector struct {
	mu   sync.Mutex
	errs []string
}

func (c *collector) add(what string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.errs = append(c.errs, what+": <nil>")
		return
	}
	c.errs = append(c.errs, fmt.Sprintf("%s: %v | %+v", what, err, err))
}

func lookup(k string) (string, bool) {
	v, ok := secrets[k]
	return v, ok && v != ""
}

func testAlert(t *testing.T) alert.Alert {
	t.Helper()
	as, err := alert.Decode([]byte(`{"uuid":"leak-1","time":"2026-11-20T09:14:03Z","rule":"Terminal shell in container","priority":"Critical",
		"output":"shell","hostname":"node-1","output_fields":{"container.id":"3f9a1c2b7d4e","container.name":"payments-api","proc.cmdline":"sh -i"}}`))
	if err != nil {
		t.Fatal(err)
	}
	return as[0]
}

func TestNoSecretInErrorsOrLogs(t *testing.T) {
	logs := &testutil.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	col := &collector{}
	a := testAlert(t)
	ctx := t.Context()

	slackFailures(t, ctx, logger, col, a)
	pagerdutyFailures(t, ctx, logger, col, a)
	emailFailures(t, ctx, logger, col, a)
	webhookFailures(t, ctx, logger, col, a)

	all := strings.Join(col.errs, "\n")
	failures := 0
	for _, e := range col.errs {
		if !strings.HasSuffix(e, ": <nil>") {
			failures++
		}
	}
	if failures < 25 {
		t.Fatalf("only %d failure paths produced an error; the test no longer covers what it claims:\n%s", failures, all)
	}
	if logs.String() == "" {
		t.Fatal("nothing was logged; the log half of the check is vacuous")
	}
	for name, v := range secrets {
		if v == "" {
			t.Fatalf("secret %s was never set", name)
		}
		for _, probe := range probes(v) {
			if strings.Contains(all, probe) {
				t.Errorf("secret %s (%q) appears in an error:\n%s", name, probe, all)
			}
			if strings.Contains(logs.String(), probe) {
				t.Errorf("secret %s (%q) appears in the logs:\n%s", name, probe, logs.String())
			}
		}
	}
	t.Logf("%d failure paths checked, %d bytes of logs", failures, len(logs.String()))
}

// probes are the forms under which a secret could leak: whole, and for URLs
// the secret path and query.
func probes(v string) []string {
	out := []string{v}
	if i := strings.Index(v, "/services/"); i >= 0 {
		out = append(out, v[i:])
	}
	if i := strings.Index(v, "?"); i >= 0 {
		out = append(out, v[i+1:])
	}
	return out
}

func slackFailures(t *testing.T, ctx context.Context, logger *slog.Logger, col *collector, a alert.Alert) {
	// A peer that knows another bot token: every call is invalid_auth.
	p := slackpeertest.New("xoxb-0000-other-token", "xapp-other")
	defer p.Close()
	yes := true
	cfg := slack.Config{TokenEnv: "SLACK_BOT_TOKEN", SigningSecretEnv: "SLACK_SIGNING_SECRET", AppTokenEnv: "SLACK_APP_TOKEN", SocketMode: &yes,
		Channel: "#ir", Approvers: []string{"@oncall"}, APIURL: p.APIURL(), ActionTimeout: 5 * time.Second}
	s, err := slack.New(cfg, slack.Deps{Logger: logger, LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	req := actions.Request{Action: slack.ActionNotify, Alert: a, Incident: "inc-leak", Key: "k"}
	_, err = s.Run(ctx, req)
	col.add("slack invalid_auth", err)
	_, err = s.RequestApproval(ctx, slack.Approval{ID: "ap-1", Incident: "inc-leak", Held: []string{"container.pause"}})
	col.add("slack approval invalid_auth", err)
	col.add("slack update without message", s.Update(ctx, "inc-leak", actions.Step{Action: "x"}))
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	col.add("slack socket mode bad app token", s.RunSocketMode(sctx))
	cancel()

	// Signed-request failures through the handler (they are logged).
	srv := httptest.NewServer(s.InteractionsHandler())
	defer srv.Close()
	cb := slackapi.InteractionCallback{Type: slackapi.InteractionTypeBlockActions, User: slackapi.User{ID: "U0MALLORY", Name: "mallory"}}
	cb.ActionCallback.BlockActions = []*slackapi.BlockAction{{ActionID: "riposte:kill", Value: `{"incident":"inc-leak","container":"3f9a1c2b7d4e"}`}}
	for _, r := range []*http.Request{
		slackpeertest.SignedRequest("wrong-secret-000000", srv.URL, slackpeertest.InteractionForm(cb), time.Now()),
		slackpeertest.SignedRequest(secrets["SLACK_SIGNING_SECRET"], srv.URL, slackpeertest.InteractionForm(cb), time.Now().Add(-time.Hour)),
		slackpeertest.SignedRequest(secrets["SLACK_SIGNING_SECRET"], srv.URL, slackpeertest.InteractionForm(cb), time.Now()),
	} {
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		col.add("slack handler", fmt.Errorf("HTTP %d %s", resp.StatusCode, body))
	}
	_ = s.Close() // waits for the denied press (group lookup fails: invalid_auth)

	// A working peer with injected failures.
	good := slackpeertest.New(secrets["SLACK_BOT_TOKEN"], secrets["SLACK_APP_TOKEN"])
	defer good.Close()
	cfg.APIURL = good.APIURL()
	s2, err := slack.New(cfg, slack.Deps{Logger: logger, LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, f := range []slackpeertest.Failure{{Status: 500}, {Status: 429, RetryAfter: 3}, {Error: "channel_not_found"}, {Error: "missing_scope"}} {
		good.FailNext("chat.postMessage", f)
		_, err := s2.Run(ctx, req)
		col.add("slack post failure", err)
	}
	good.Close()
	_, err = s2.Run(ctx, req)
	col.add("slack down", err)

	// Incoming webhook mode.
	hooks := slackpeertest.New("xoxb-unused", "xapp-unused")
	defer hooks.Close()
	secrets["SLACK_WEBHOOK_URL"] = hooks.WebhookURL("LEAKCHECKwebhookPATHsecret")
	wh, err := slack.New(slack.Config{WebhookURLEnv: "SLACK_WEBHOOK_URL", Channel: "#ir"}, slack.Deps{Logger: logger, LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []slackpeertest.Failure{{Status: 404, Error: "no_service"}, {Status: 429, RetryAfter: 2}, {Status: 500}} {
		hooks.FailNext("webhook", f)
		_, err := wh.Run(ctx, req)
		col.add("slack webhook failure", err)
	}
	hooks.Close()
	_, err = wh.Run(ctx, req)
	col.add("slack webhook down", err)
}

func pagerdutyFailures(t *testing.T, ctx context.Context, logger *slog.Logger, col *collector, a alert.Alert) {
	peer := pdtest.New()
	defer peer.Close()
	req := actions.Request{Action: pagerduty.ActionTrigger, Alert: a, Incident: "inc-leak"}
	short, err := pagerduty.New(pagerduty.Config{RoutingKeyEnv: "PD_SHORT_KEY", Endpoint: peer.URL()}, pagerduty.Deps{Logger: logger, LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	_, err = short.Run(ctx, req)
	col.add("pagerduty 400", err)
	p, err := pagerduty.New(pagerduty.Config{RoutingKeyEnv: "PD_ROUTING_KEY", Endpoint: peer.URL()}, pagerduty.Deps{Logger: logger, LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []pdtest.Failure{{Status: 429, RetryAfter: 5}, {Status: 500}, {Status: 503}} {
		peer.FailNext(f)
		_, err := p.Run(ctx, req)
		col.add("pagerduty failure", err)
	}
	_, err = p.Run(ctx, actions.Request{Action: pagerduty.ActionTrigger, Alert: a, Incident: "inc-leak", Params: actions.Params{"severity": "bogus"}})
	col.add("pagerduty bad severity", err)
	peer.Close()
	_, err = p.Run(ctx, actions.Request{Action: pagerduty.ActionResolve, Incident: "inc-leak"})
	col.add("pagerduty down", err)
}

func emailFailures(t *testing.T, ctx context.Context, logger *slog.Logger, col *collector, a alert.Alert) {
	srv, err := smtptest.New(smtptest.Options{StartTLS: true, Users: map[string]string{"riposte": "the-real-password"}, RequireAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	ca, err := srv.CAFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "smtp-password")
	if err := os.WriteFile(pwFile, []byte(secrets["SMTP_PASSWORD"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	req := actions.Request{Action: email.ActionSend, Alert: a, Incident: "inc-leak", Key: "k"}
	for _, auth := range []email.AuthMechanism{email.AuthPlain, email.AuthLogin} {
		for _, mutate := range []func(*email.Config){
			func(*email.Config) {},                  // wrong password
			func(c *email.Config) { c.CAFile = "" }, // untrusted certificate
			func(c *email.Config) { c.Port = 1 },    // nothing listens
		} {
			cfg := email.Config{Host: srv.Host(), Port: srv.Port(), CAFile: ca, From: "riposte@example.com", To: []string{"soc@example.com"},
				Auth: auth, Username: "riposte", PasswordFile: pwFile, Timeout: 3 * time.Second}
			mutate(&cfg)
			e, err := email.New(cfg, email.Deps{Logger: logger, LookupEnv: lookup})
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.Run(ctx, req)
			col.add("email "+string(auth), err)
		}
	}
	ok, err := smtptest.New(smtptest.Options{StartTLS: true, Users: map[string]string{"riposte": secrets["SMTP_PASSWORD"]}, RequireAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	ca2, _ := ok.CAFile(t.TempDir())
	e, err := email.New(email.Config{Host: ok.Host(), Port: ok.Port(), CAFile: ca2, From: "riposte@example.com", To: []string{"soc@example.com"},
		Username: "riposte", PasswordEnv: "SMTP_PASSWORD"}, email.Deps{Logger: logger, LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []smtptest.Failure{{Stage: "RCPT", Code: 550, Message: "no such user"}, {Stage: "DATA", Code: 451, Message: "later"}} {
		ok.FailNext(f)
		_, err := e.Run(ctx, req)
		col.add("email smtp failure", err)
	}
}

func webhookFailures(t *testing.T, ctx context.Context, logger *slog.Logger, col *collector, a alert.Alert) {
	var status int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status == http.StatusMovedPermanently {
			w.Header().Set("Location", r.URL.String()+"&next=1")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "refused")
	}))
	defer srv.Close()
	secrets["HOOK_URL"] = srv.URL + "/hooks/riposte?token=LEAKCHECKurlTOKENvalue"
	w, err := webhook.New(webhook.Config{Timeout: 2 * time.Second, Endpoints: []webhook.Endpoint{{Name: "soar", URLEnv: "HOOK_URL", SecretEnv: "HOOK_SECRET", BearerTokenEnv: "HOOK_BEARER"}}},
		webhook.Deps{Logger: logger, LookupEnv: lookup})
	if err != nil {
		t.Fatal(err)
	}
	req := actions.Request{Action: webhook.ActionPost, Alert: a, Incident: "inc-leak", Key: "k"}
	for _, s := range []int{400, 401, 404, 301, 429, 500, 503} {
		status = s
		_, err := w.Run(ctx, req)
		col.add(fmt.Sprintf("webhook %d", s), err)
	}
	_, err = w.Run(ctx, actions.Request{Action: webhook.ActionPost, Params: actions.Params{"endpoint": "nope"}})
	col.add("webhook unknown endpoint", err)
	srv.Close()
	_, err = w.Run(ctx, req)
	col.add("webhook down", err)
}
