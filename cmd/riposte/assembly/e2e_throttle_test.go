package assembly

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/notifiers/slack/slackpeertest"
)

// throttleAll sets notifiers.slack/pagerduty/email's throttle.
func throttleAll(t *testing.T, cfg *config.Config, every time.Duration) {
	t.Helper()
	for _, name := range []string{"notifiers.slack", "notifiers.pagerduty", "notifiers.email"} {
		var m map[string]any
		if err := cfg.Section(name).Decode(&m); err != nil {
			t.Fatal(err)
		}
		m["throttle"] = every.String()
		if err := cfg.SetSection(name, m); err != nil {
			t.Fatal(err)
		}
	}
}

// postAlerts posts alerts as NDJSON, batch at a time, as one sender would.
func (s *served) postAlerts(t *testing.T, bodies []string, batch int) {
	t.Helper()
	for len(bodies) > 0 {
		n := min(batch, len(bodies))
		req, _ := http.NewRequest("POST", "http://"+s.addr+"/v1/alerts", strings.NewReader(strings.Join(bodies[:n], "\n")))
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("post alerts: %s", resp.Status)
		}
		bodies = bodies[n:]
	}
}

// burstAlerts are n distinct alerts of one container and rule: one
// incident.
func burstAlerts(container, name string, n int) []string {
	out := make([]string, n)
	for i := range out {
		var m map[string]any
		_ = json.Unmarshal([]byte(shellAlertJSON(container, name)), &m)
		m["uuid"] = fmt.Sprintf("burst-%s-%d-%d", container, time.Now().UnixNano(), i)
		m["output"] = fmt.Sprintf("A shell was spawned in a container with an attached terminal (shell=sh n=%d)", i)
		b, _ := json.Marshal(m)
		out[i] = string(b)
	}
	return out
}

// incidentOf is the incident of a container's alerts, once the engine
// has opened it.
func incidentOf(t *testing.T, a *App, container string) string {
	t.Helper()
	var id string
	waitUntil(t, "the incident of "+container, 10*time.Second, func() bool {
		incs, err := a.Store.ListIncidents(context.Background(), store.IncidentFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range incs {
			if in.ContainerID == container {
				id = in.ID
				return true
			}
		}
		return false
	})
	return id
}

var moreRe = regexp.MustCompile(`\+(\d+) more in `)

// sentTo is what the three peers got about one incident: Slack's message
// and its thread replies, PagerDuty's events of its dedup_key, and the
// mails that name it.
type sentTo struct {
	slackTop     []slackpeertest.Message
	slackReplies []slackpeertest.Message
	pd           []map[string]any // custom_details of each event
	mails        []*mail.Message
}

func (p *peers) sentAbout(t *testing.T, incident string) sentTo {
	t.Helper()
	var s sentTo
	for _, m := range p.slack.TopLevel() {
		if strings.Contains(m.RawBlocks, incident) {
			s.slackTop = append(s.slackTop, m)
			s.slackReplies = append(s.slackReplies, p.slack.Replies(m.Channel, m.TS)...)
		}
	}
	for _, ev := range p.pd.Events() {
		if ev.DedupKey == incident && ev.EventAction == "trigger" && ev.Payload != nil {
			s.pd = append(s.pd, ev.Payload.CustomDetails)
		}
	}
	for _, m := range p.smtp.Mails() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		if msg.Header.Get("X-Riposte-Incident") == incident {
			s.mails = append(s.mails, msg)
		}
	}
	return s
}

// counted is what one notifier sent about an incident: the alerts its
// messages stand for, and how many messages went out at once (not
// updates: the first, and the first after a quiet interval).
type counted struct{ alerts, immediate int }

// check sums, per notifier, the alerts the messages stand for, and checks
// that each notifier sent one first message and then only messages about
// it (the same Slack message and thread, the same dedup_key, replies to
// the first mail).
func (s sentTo) check(t *testing.T, who string) (slack, pd, email counted) {
	t.Helper()
	if len(s.slackTop) != 1 {
		t.Fatalf("%s: %d top-level Slack messages, want 1", who, len(s.slackTop))
	}
	slack = counted{1, 1}
	for _, r := range s.slackReplies {
		if m := moreRe.FindStringSubmatch(r.Text); m != nil {
			n, _ := strconv.Atoi(m[1])
			slack.alerts += n
		} else if strings.Contains(r.Text, "Again at") {
			slack.alerts++
			slack.immediate++
		}
	}
	for i, d := range s.pd {
		n, ok := d["riposte_alerts_in_update"]
		switch {
		case i == 0 && ok:
			t.Fatalf("%s: the first PagerDuty event is an update: %v", who, d)
		case ok:
			pd.alerts += int(n.(float64))
		default:
			pd.alerts++
			pd.immediate++
		}
	}
	var root string
	for i, m := range s.mails {
		body, err := io.ReadAll(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		match := moreRe.FindSubmatch(body)
		if i == 0 {
			if m.Header.Get("In-Reply-To") != "" || match != nil {
				t.Fatalf("%s: the first mail replies to %q or counts:\n%s", who, m.Header.Get("In-Reply-To"), body)
			}
			root = m.Header.Get("Message-Id")
		} else if got := m.Header.Get("In-Reply-To"); got != root || m.Header.Get("References") != root {
			t.Fatalf("%s: mail %d replies to %q (references %q), want the first mail %s", who, i, got, m.Header.Get("References"), root)
		}
		if match == nil {
			email.alerts++
			email.immediate++
			continue
		}
		n, _ := strconv.Atoi(string(match[1]))
		email.alerts += n
	}
	return slack, pd, email
}

// TestE2EThrottleBurst: 1,000 alerts of one incident posted to the intake
// of a served riposte with every notifier throttled produce, per notifier,
// one first message and at most one update per interval (same Slack
// message and thread, same PagerDuty dedup_key, mails replying to the
// first), the updates' counts add up to every alert, every alert's
// notifications are journaled (queued; the folded ones throttled), and an
// incident of another container mid-burst is not held back by the first.
func TestE2EThrottleBurst(t *testing.T) {
	const (
		burst = 1000
		every = 250 * time.Millisecond
	)
	p := startPeers(t)
	dir := t.TempDir()
	cfg := p.config(t, dir, e2eNotifyPlaybook)
	throttleAll(t, &cfg, every)
	s := serveApp(t, cfg)

	start := time.Now()
	alerts := burstAlerts("0123456789ab", "web", burst)
	s.postAlerts(t, alerts[:burst/2], 10)
	s.postAlerts(t, burstAlerts("ba9876543210", "db", 1), 1)
	s.postAlerts(t, alerts[burst/2:], 10)
	posted := time.Since(start)

	inc := incidentOf(t, s.app, "0123456789ab")
	other := incidentOf(t, s.app, "ba9876543210")
	var got sentTo
	var slackN, pdN, mailN counted
	waitUntil(t, "every alert counted by every notifier", 60*time.Second, func() bool {
		got = p.sentAbout(t, inc)
		if len(got.slackTop) != 1 {
			return false
		}
		slackN, pdN, mailN = got.check(t, "burst")
		return slackN.alerts == burst && pdN.alerts == burst && mailN.alerts == burst
	})
	took := time.Since(start)

	var queued []store.Entry
	waitUntil(t, "every alert's three notifications queued", 10*time.Second, func() bool {
		queued = journal(t, s.app, store.Filter{Types: []store.EntryType{store.ActionQueued}})
		return len(queued) == 3*(burst+1)
	})
	// A stall in the burst longer than the interval (a loaded machine)
	// lets a notification out at once again, as after a quiet spell; the
	// others were held.
	held := journal(t, s.app, store.Filter{Types: []store.EntryType{store.NotificationThrottled}})
	immediate := slackN.immediate + pdN.immediate + mailN.immediate
	if want := 3*burst - immediate; len(held) != want {
		t.Fatalf("%d notification.throttled entries, want %d: every notification but the %d sent at once", len(held), want, immediate)
	}
	// At most one message per interval: the span of the enqueues bounds
	// how many intervals the burst covered.
	var first, last time.Time
	for _, e := range queued {
		if e.AlertID == "" || !strings.HasPrefix(e.AlertID, "burst-0123456789ab") {
			continue
		}
		if first.IsZero() || e.Time.Before(first) {
			first = e.Time
		}
		if e.Time.After(last) {
			last = e.Time
		}
	}
	limit := int(math.Ceil(float64(last.Sub(first))/float64(every))) + 1
	sent := map[string]int{"slack": 1 + len(got.slackReplies), "pagerduty": len(got.pd), "email": len(got.mails)}
	for who, n := range sent {
		if n > limit || n < 2 {
			t.Errorf("%s: %d messages for a burst over %s, want 2 to %d (one per %s)", who, n, last.Sub(first), limit, every)
		}
	}
	if !strings.Contains(got.slackTop[0].RawBlocks, fmt.Sprintf(`*Alerts*\n%d`, burst)) {
		t.Errorf("the Slack message does not count %d alerts: %s", burst, got.slackTop[0].RawBlocks)
	}
	waitUntil(t, "the other incident's first messages, not held back", 10*time.Second, func() bool {
		o := p.sentAbout(t, other)
		return len(o.slackTop) == 1 && len(o.pd) == 1 && len(o.mails) == 1
	})
	t.Logf("burst of %d alerts posted in %s, all counted in %s; messages sent: slack %d (1 + %d thread updates, %d chat.update), pagerduty %d, email %d; at most %d allowed at one per %s",
		burst, posted.Round(time.Millisecond), took.Round(time.Millisecond), sent["slack"], len(got.slackReplies),
		len(p.slack.Calls("chat.update")), sent["pagerduty"], sent["email"], limit, every)
}

// TestE2EThrottleKeepsTheFoldAcrossRestart: alerts held for the next
// update when riposte stops are delivered, counted, by the next start. The
// playbook's throttle parameters (4s) override the notifiers' (1h).
func TestE2EThrottleKeepsTheFoldAcrossRestart(t *testing.T) {
	const (
		every = 4 * time.Second
		later = 10
	)
	p := startPeers(t)
	dir := t.TempDir()
	cfg := p.config(t, dir, `
- playbook: e2e-notify
  match: {rules: ["Terminal shell in container"]}
  actions:
    - do: slack.notify
      with: {throttle: 4s}
    - do: pagerduty.trigger
      with: {throttle: 4s}
    - do: email.send
      with: {throttle: 4s}
`)
	throttleAll(t, &cfg, time.Hour)
	s := serveApp(t, cfg)
	alerts := burstAlerts("0123456789ab", "web", 1+later)
	s.postAlerts(t, alerts[:1], 1)
	inc := incidentOf(t, s.app, "0123456789ab")
	waitUntil(t, "the first messages", 10*time.Second, func() bool {
		g := p.sentAbout(t, inc)
		return len(g.slackTop) == 1 && len(g.pd) == 1 && len(g.mails) == 1
	})
	s.postAlerts(t, alerts[1:], 1)
	waitUntil(t, "the later notifications held", 10*time.Second, func() bool {
		return len(journal(t, s.app, store.Filter{Types: []store.EntryType{store.NotificationThrottled}})) == 3*later
	})
	s.stop()
	if g := p.sentAbout(t, inc); len(g.slackReplies) != 0 || len(g.pd) != 1 || len(g.mails) != 1 {
		t.Fatalf("an update went out before the interval ended (the test machine is too slow for a %s interval)", every)
	}

	s2 := serveApp(t, cfg)
	waitUntil(t, "the held update after restart", 15*time.Second, func() bool {
		g := p.sentAbout(t, inc)
		sl, pd, ml := g.check(t, "restart")
		return sl.alerts == 1+later && pd.alerts == 1+later && ml.alerts == 1+later
	})
	g := p.sentAbout(t, inc)
	if len(g.slackReplies) != 1 || len(g.pd) != 2 || len(g.mails) != 2 {
		t.Fatalf("after restart: %d Slack replies, %d PagerDuty events, %d mails; want one update each",
			len(g.slackReplies), len(g.pd), len(g.mails))
	}
	// The delivery is journaled once the peer answered.
	waitUntil(t, "the updates' notification.sent entries", 10*time.Second, func() bool {
		carried := 0
		for _, e := range journal(t, s2.app, store.Filter{Types: []store.EntryType{store.NotificationSent}}) {
			if n, ok := e.Detail["alerts"]; ok {
				k, _ := strconv.Atoi(fmt.Sprint(n))
				carried += k
			}
		}
		return carried == 3*later
	})
}

// TestE2EThrottleOff: interval 0 (the default) sends every alert.
func TestE2EThrottleOff(t *testing.T) {
	const n = 20
	p := startPeers(t)
	cfg := p.config(t, t.TempDir(), e2eNotifyPlaybook)
	s := serveApp(t, cfg)
	s.postAlerts(t, burstAlerts("0123456789ab", "web", n), 5)
	inc := incidentOf(t, s.app, "0123456789ab")
	waitUntil(t, "every alert sent", 30*time.Second, func() bool {
		g := p.sentAbout(t, inc)
		return len(g.slackTop) == 1 && len(g.slackReplies) == n-1 && len(g.pd) == n && len(g.mails) == n
	})
	if held := journal(t, s.app, store.Filter{Types: []store.EntryType{store.NotificationThrottled}}); len(held) != 0 {
		t.Fatalf("%d notifications throttled with throttling off", len(held))
	}
}
