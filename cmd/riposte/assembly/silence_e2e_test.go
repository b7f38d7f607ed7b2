package assembly

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
	rslack "github.com/riposte-sec/riposte/notifiers/slack"
)

const silencePlaybook = `
- playbook: e2e-notify-all
  match: {rules: ["Terminal shell in container", "Read sensitive file untrusted"]}
  actions:
    - do: slack.notify
`

// ruleAlertJSON is a Falco alert of rule in container id.
func ruleAlertJSON(rule, id string) string {
	b, _ := json.Marshal(map[string]any{
		"uuid": fmt.Sprintf("e2e-%d", time.Now().UnixNano()), "time": time.Now().UTC().Format(time.RFC3339Nano),
		"rule": rule, "priority": "Warning", "source": "syscall", "hostname": "e2e-host", "output": rule,
		"output_fields": map[string]any{"container.id": id, "container.name": "web-" + id[:4], "container.image.repository": "riposte-test"},
	})
	return string(b)
}

func alertIDOf(t *testing.T, body string) string {
	t.Helper()
	var v struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return v.UUID
}

// muted reports whether the alert's slack.notify was skipped, silenced by
// silence id, and the alert journaled alert.silenced naming it.
func muted(t *testing.T, a *App, alertID, id string) bool {
	t.Helper()
	var skipped, named bool
	for _, e := range journal(t, a, store.Filter{AlertID: alertID}) {
		switch {
		case e.Type == store.AlertSilenced && e.Detail["silence"] == id:
			named = true
		case e.Type == store.ActionSkipped && e.Action == "slack.notify" && e.Detail["reason"] == "silenced" && e.Detail["silence"] == id:
			skipped = true
		case e.Type == store.ActionQueued:
			t.Fatalf("alert %s: a muted notification was queued", alertID)
		}
	}
	return skipped && named
}

// TestE2ESilenceMutesNotifications: with a silence on a rule (created
// through the running server's socket, as `riposte silence add` does), an
// alert of that rule posted to the intake is journaled as silenced and
// sends no Slack message, while an alert of another rule still does; the
// silence survives a restart.
func TestE2ESilenceMutesNotifications(t *testing.T) {
	ctx := context.Background()
	p := startPeers(t)
	cfg := p.config(t, t.TempDir(), silencePlaybook)
	s := serveApp(t, cfg)

	resp, how, err := Silence(ctx, cfg, SilenceOp{Kind: SilenceAdd, Request: &silence.Request{
		Matcher: store.SilenceMatcher{Rules: []string{"Terminal shell*"}}, Duration: "1h", Comment: "maintenance"}})
	if err != nil || resp.Silence == nil || !strings.Contains(how, "socket") {
		t.Fatalf("add silence: %+v (%s), %v", resp, how, err)
	}
	sil := resp.Silence
	if sil.CreatedBy == "" || sil.Scope != store.ScopeNotify || sil.State != store.SilenceStateActive {
		t.Fatalf("silence %+v", sil)
	}

	shell := ruleAlertJSON("Terminal shell in container", "3f9a1c2b7d4e")
	read := ruleAlertJSON("Read sensitive file untrusted", "7c1d2e3f4a5b")
	s.postAlert(t, shell)
	s.postAlert(t, read)
	waitUntil(t, "the unsilenced alert's message and the silenced alert's skip", 10*time.Second, func() bool {
		return len(p.slack.TopLevel()) == 1 && muted(t, s.app, alertIDOf(t, shell), sil.ID)
	})
	if m := p.slack.TopLevel()[0]; !strings.Contains(m.Text+m.RawBlocks, "Read sensitive file untrusted") {
		t.Fatalf("the message is not about the unsilenced alert: %s", m.Text)
	}
	if es := journal(t, s.app, store.Filter{AlertID: alertIDOf(t, shell), Types: []store.EntryType{store.AlertReceived}}); len(es) != 1 {
		t.Fatalf("the silenced alert was not stored: %v", es)
	}

	// Restart: the silence is still listed and still applies.
	s.stop()
	s = serveApp(t, cfg)
	list, _, err := Silence(ctx, cfg, SilenceOp{Kind: SilenceList})
	if err != nil || len(list.Silences) != 1 || list.Silences[0].ID != sil.ID {
		t.Fatalf("silences after restart: %+v, %v", list, err)
	}
	shell2 := ruleAlertJSON("Terminal shell in container", "9e8d7c6b5a4f")
	read2 := ruleAlertJSON("Read sensitive file untrusted", "1a2b3c4d5e6f")
	s.postAlert(t, shell2)
	s.postAlert(t, read2)
	waitUntil(t, "the second unsilenced message and the silenced skip", 10*time.Second, func() bool {
		return len(p.slack.TopLevel()) == 2 && muted(t, s.app, alertIDOf(t, shell2), sil.ID)
	})

	// Expired: the rule notifies again; the expiry is journaled.
	if _, _, err := Silence(ctx, cfg, SilenceOp{Kind: SilenceExpire, ID: sil.ID}); err != nil {
		t.Fatal(err)
	}
	if es := journal(t, s.app, store.Filter{Types: []store.EntryType{store.SilenceExpired}}); len(es) != 1 || es[0].Detail["silence"] != sil.ID {
		t.Fatalf("silence.expired entries %v", es)
	}
	s.postAlert(t, ruleAlertJSON("Terminal shell in container", "5f4e3d2c1b0a"))
	waitUntil(t, "a message once the silence expired", 10*time.Second, func() bool { return len(p.slack.TopLevel()) == 3 })
}

// TestE2ESlackMute: the Mute 1h button of an incident message; a
// non-approver's press is refused and journaled, an approver's creates a
// silence of the incident's rule in its container, and the next alert of
// the incident notifies nobody.
func TestE2ESlackMute(t *testing.T) {
	ctx := context.Background()
	p := startPeers(t)
	cfg := p.config(t, t.TempDir(), silencePlaybook)
	s := serveApp(t, cfg)
	first := ruleAlertJSON("Read sensitive file untrusted", "3f9a1c2b7d4e")
	s.postAlert(t, first)
	waitUntil(t, "slack message", 10*time.Second, func() bool { return len(p.slack.TopLevel()) == 1 })
	msg := p.slack.TopLevel()[0]

	mallory := slack.User{ID: "U0MALLORY", Name: "mallory"}
	if code := s.press(t, p.slack, msg, "riposte:mute", mallory, e2eSigningSecret, time.Now()); code != http.StatusOK {
		t.Fatalf("press by a non-approver: %d", code)
	}
	waitUntil(t, "the refusal journaled", 10*time.Second, func() bool {
		for _, e := range journal(t, s.app, store.Filter{Types: []store.EntryType{store.ApprovalDenied}}) {
			if e.Action == rslack.ActionMute && strings.Contains(e.Actor, "U0MALLORY") {
				return true
			}
		}
		return false
	})
	if list, _ := s.app.Store.ListSilences(ctx, store.SilenceFilter{Deleted: true}); len(list) != 0 {
		t.Fatalf("a non-approver's press made a silence: %+v", list)
	}

	alice := slack.User{ID: "U0ALICE", Name: "alice"}
	if code := s.press(t, p.slack, msg, "riposte:mute", alice, e2eSigningSecret, time.Now()); code != http.StatusOK {
		t.Fatalf("press by an approver: %d", code)
	}
	var sil store.Silence
	waitUntil(t, "the silence", 10*time.Second, func() bool {
		list, _ := s.app.Store.ListSilences(ctx, store.SilenceFilter{})
		if len(list) == 1 {
			sil = list[0]
		}
		return len(list) == 1
	})
	if sil.CreatedBy != "slack:U0ALICE (alice)" || sil.Scope != store.ScopeNotify || len(sil.Matcher.Rules) != 1 ||
		sil.Matcher.Rules[0] != "Read sensitive file untrusted" || len(sil.Matcher.Containers) != 1 || sil.Matcher.Containers[0] != "3f9a1c2b7d4e" ||
		sil.EndsAt.Sub(sil.StartsAt) != time.Hour {
		t.Fatalf("silence %+v", sil)
	}
	waitUntil(t, "the message says who muted", 10*time.Second, func() bool {
		m, ok := p.slack.Message(msg.Channel, msg.TS)
		if !ok || !strings.Contains(m.RawBlocks+m.Text, "alice") || !strings.Contains(m.RawBlocks+m.Text, sil.ID) {
			return false
		}
		for _, r := range p.slack.Replies(msg.Channel, msg.TS) {
			if strings.Contains(r.Text, sil.ID) {
				return true
			}
		}
		return false
	})

	// The next alert of the incident: silenced, no reply in the thread
	// (the one there says who muted).
	before := len(p.slack.Replies(msg.Channel, msg.TS))
	again := ruleAlertJSON("Read sensitive file untrusted", "3f9a1c2b7d4e")
	s.postAlert(t, again)
	waitUntil(t, "the next alert silenced", 10*time.Second, func() bool { return muted(t, s.app, alertIDOf(t, again), sil.ID) })
	if r := p.slack.Replies(msg.Channel, msg.TS); len(r) != before || len(p.slack.TopLevel()) != 1 {
		t.Fatalf("a muted alert reached Slack: %d replies (%+v), %d messages", len(r), r, len(p.slack.TopLevel()))
	}
}

const containPlaybook = `
- playbook: e2e-contain
  match: {rules: ["Terminal shell in container"]}
  actions:
    - do: slack.notify
    - do: container.pause
`

// TestE2ESilenceScopeAll: a silence of scope all waits for a second
// operator's approval (its creator cannot give it); approved, it blocks the
// containment of the container it names, while the same rule in another
// container is still paused and notified.
func TestE2ESilenceScopeAll(t *testing.T) {
	ctx := context.Background()
	cli := testutil.DockerClient(t)
	quiet := testutil.UniqueName("e2e-silence-all")
	quietID := testutil.RunContainer(t, cli, quiet, nil)
	loud := testutil.UniqueName("e2e-silence-none")
	loudID := testutil.RunContainer(t, cli, loud, nil)
	p := startPeers(t)
	cfg := p.config(t, t.TempDir(), containPlaybook)
	const leadToken = "e2e-lead-operator-token-0123456789"
	t.Setenv("E2E_LEAD_TOKEN", leadToken)
	cfg.Auth.Tokens = append(cfg.Auth.Tokens, config.NamedToken{Name: "lead", Scope: "operator", Env: "E2E_LEAD_TOKEN"})
	s := serveApp(t, cfg)

	resp, _, err := Silence(ctx, cfg, SilenceOp{Kind: SilenceAdd, Request: &silence.Request{
		Matcher: store.SilenceMatcher{Rules: []string{"Terminal shell*"}, Containers: []string{quiet}}, Scope: store.ScopeAll,
		Duration: "30m", Comment: "debugging"}})
	if err != nil || resp.Silence.State != store.SilenceStatePending {
		t.Fatalf("add: %+v, %v", resp, err)
	}
	id := resp.Silence.ID
	if _, _, err := Silence(ctx, cfg, SilenceOp{Kind: SilenceApprove, ID: id}); !errors.Is(err, ErrSilenceRefused) {
		t.Fatalf("the creator approved its own silence: %v", err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+"/v1/silences/"+id+"/approve", nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken) // intake: not an operator
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusForbidden {
		t.Fatalf("approve with the intake token: %v %v", r, err)
	}
	req.Header.Set("Authorization", "Bearer "+leadToken)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ar SilenceResponse
	if err := json.NewDecoder(r.Body).Decode(&ar); err != nil || r.StatusCode != http.StatusOK || ar.Silence.ApprovedBy != "token:lead" {
		t.Fatalf("approve: %s %+v %v", r.Status, ar, err)
	}
	r.Body.Close()

	quietAlert, loudAlert := shellAlertJSON(quietID[:12], quiet), shellAlertJSON(loudID[:12], loud)
	s.postAlert(t, quietAlert)
	s.postAlert(t, loudAlert)
	waitUntil(t, "the other container paused and notified", 15*time.Second, func() bool {
		return paused(t, cli, loudID) && len(p.slack.TopLevel()) == 1
	})
	waitUntil(t, "the silenced alert's actions skipped", 10*time.Second, func() bool {
		n := 0
		for _, e := range journal(t, s.app, store.Filter{AlertID: alertIDOf(t, quietAlert)}) {
			if e.Type == store.ActionSkipped && e.Detail["reason"] == "silenced" && e.Detail["silence"] == id {
				n++
			}
			if e.Type == store.ActionStarted || e.Type == store.ActionQueued {
				t.Fatalf("a silenced action ran: %+v", e)
			}
		}
		return n == 2
	})
	if paused(t, cli, quietID) {
		t.Fatal("scope all let the containment run")
	}
	if es := journal(t, s.app, store.Filter{Types: []store.EntryType{store.SilenceApproved}}); len(es) != 1 || es[0].Actor != "token:lead" {
		t.Fatalf("silence.approved entries %v", es)
	}
}
