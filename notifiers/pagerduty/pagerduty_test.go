package pagerduty_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/notifiers/pagerduty"
	"github.com/riposte-sec/riposte/notifiers/pagerduty/pdtest"
)

const routingKey = "R0ENTEST0123456789abcdefABCDEF01" // 32 characters

func lookup(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func newPD(t *testing.T, peer *pdtest.Peer, key string) *pagerduty.PagerDuty {
	t.Helper()
	p, err := pagerduty.New(pagerduty.Config{RoutingKeyEnv: "PD_ROUTING_KEY", Endpoint: peer.URL()},
		pagerduty.Deps{LookupEnv: lookup(map[string]string{"PD_ROUTING_KEY": key})})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func loadAlert(t *testing.T) alert.Alert {
	t.Helper()
	b, err := os.ReadFile("testdata/falco-shell-in-container.json")
	if err != nil {
		t.Fatal(err)
	}
	as, err := alert.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return as[0]
}

func trigger(a alert.Alert, params actions.Params) actions.Request {
	return actions.Request{Action: pagerduty.ActionTrigger, Alert: a, Incident: "inc-1", Container: "3f9a1c2b7d4e", Params: params, Key: "k1",
		Steps: []actions.Step{{Action: "container.snapshot", Status: "succeeded", Note: "snapshot taken", Time: time.Now()}}}
}

func TestTrigger(t *testing.T) {
	peer := pdtest.New()
	defer peer.Close()
	p := newPD(t, peer, routingKey)
	res, err := p.Run(t.Context(), trigger(loadAlert(t), nil))
	if err != nil {
		t.Fatal(err)
	}
	evs := peer.Events()
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	pl := ev.Payload
	if ev.RoutingKey != routingKey || ev.EventAction != "trigger" || ev.DedupKey != "inc-1" || ev.Client != "riposte" {
		t.Errorf("event %+v", ev)
	}
	wantSummary := "A shell was spawned in a container with an attached terminal (user=root user_loginuid=-1 container_id=3f9a1c2b7d4e container_name=payments-api image=staging/payments-api:1.42.0 shell=sh parent=runc cmdline=sh -i terminal=34816)"
	if pl.Summary != wantSummary {
		t.Errorf("summary %q", pl.Summary)
	}
	if pl.Source != "staging-node-3/payments-api" || pl.Severity != "info" || pl.Class != "Terminal shell in container" ||
		pl.Component != "staging/payments-api:1.42.0" || pl.Timestamp != "2026-11-20T09:14:03.512348123Z" {
		t.Errorf("payload %+v", pl)
	}
	cd := pl.CustomDetails
	fields, _ := cd["fields"].(map[string]any)
	if cd["incident"] != "inc-1" || cd["rule"] != "Terminal shell in container" || cd["priority"] != "Notice" || fields["proc.cmdline"] != "sh -i" ||
		fields["container.name"] != "payments-api" || !strings.Contains(strings.Join(toStrings(cd["riposte_steps"]), ","), "container.snapshot: succeeded (snapshot taken)") {
		t.Errorf("custom_details %v", cd)
	}
	if res.Detail["dedup_key"] != "inc-1" || res.Detail["status"] != "success" || res.Note != "PagerDuty event trigger accepted (dedup_key inc-1)" {
		t.Errorf("result %+v", res)
	}

	// The outbox retries: same dedup_key, same alert.
	if _, err := p.Run(t.Context(), trigger(loadAlert(t), nil)); err != nil {
		t.Fatal(err)
	}
	if a, _ := peer.Alert("inc-1"); a.Triggers != 2 || a.Status != "triggered" {
		t.Errorf("alert %+v", a)
	}
	res, err = p.Run(t.Context(), actions.Request{Action: pagerduty.ActionResolve, Incident: "inc-1"})
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := peer.Alert("inc-1"); a.Status != "resolved" {
		t.Errorf("after resolve: %+v", a)
	}
	last := peer.Events()[2]
	if last.EventAction != "resolve" || last.DedupKey != "inc-1" || last.Payload != nil || res.Note != "PagerDuty event resolve accepted (dedup_key inc-1)" {
		t.Errorf("resolve event %+v result %+v", last, res)
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestSeverity(t *testing.T) {
	peer := pdtest.New()
	defer peer.Close()
	p := newPD(t, peer, routingKey)
	tests := []struct {
		prio  alert.Priority
		param string
		want  string
	}{
		{alert.PriorityEmergency, "", "critical"},
		{alert.PriorityAlert, "", "critical"},
		{alert.PriorityCritical, "", "critical"},
		{alert.PriorityError, "", "error"},
		{alert.PriorityWarning, "", "warning"},
		{alert.PriorityNotice, "", "info"},
		{alert.PriorityInformational, "", "info"},
		{alert.PriorityDebug, "", "info"},
		{alert.PriorityNotice, "critical", "critical"},
		{alert.PriorityCritical, "Warning", "warning"},
	}
	for _, tt := range tests {
		t.Run(tt.prio.String()+"/"+tt.param, func(t *testing.T) {
			if got := pagerduty.Severity(tt.prio); tt.param == "" && got != tt.want {
				t.Errorf("Severity(%s) = %s, want %s", tt.prio, got, tt.want)
			}
			a := loadAlert(t)
			a.Priority = tt.prio
			params := actions.Params{}
			if tt.param != "" {
				params["severity"] = tt.param
			}
			if _, err := p.Run(t.Context(), trigger(a, params)); err != nil {
				t.Fatal(err)
			}
			evs := peer.Events()
			if got := evs[len(evs)-1].Payload.Severity; got != tt.want {
				t.Errorf("sent severity %s, want %s", got, tt.want)
			}
		})
	}
	n := peer.Requests()
	_, err := p.Run(t.Context(), trigger(loadAlert(t), actions.Params{"severity": "urgent"}))
	if err == nil || actions.IsRetryable(err) || err.Error() != `trigger pagerduty event: severity "urgent": want critical, error, warning or info` {
		t.Errorf("bad severity: %v", err)
	}
	if peer.Requests() != n {
		t.Error("a bad severity was sent")
	}
}

func TestSummaryCutTo1024(t *testing.T) {
	peer := pdtest.New()
	defer peer.Close()
	p := newPD(t, peer, routingKey)
	long := strings.Repeat("é", 3000)
	if _, err := p.Run(t.Context(), trigger(loadAlert(t), actions.Params{"summary": long})); err != nil {
		t.Fatalf("long summary: %v", err)
	}
	s := peer.Events()[0].Payload.Summary
	if utf8.RuneCountInString(s) != pagerduty.MaxSummary || !strings.HasSuffix(s, "…") {
		t.Errorf("summary of %d characters", utf8.RuneCountInString(s))
	}
	a := loadAlert(t)
	a.Output = ""
	if _, err := p.Run(t.Context(), trigger(a, nil)); err != nil {
		t.Fatal(err)
	}
	if s := peer.Events()[1].Payload.Summary; s != "Terminal shell in container in payments-api" {
		t.Errorf("summary without output %q", s)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name       string
		fail       pdtest.Failure
		key        string
		retryable  bool
		retryAfter time.Duration
		msg        string
	}{
		{name: "rate limited", fail: pdtest.Failure{Status: 429, RetryAfter: 30}, retryable: true, retryAfter: 30 * time.Second,
			msg: "trigger pagerduty event: HTTP 429: throttle event: Requests for this service are arriving too quickly.  Please retry later. (retry after 30s)"},
		{name: "rate limited without Retry-After", fail: pdtest.Failure{Status: 429}, retryable: true,
			msg: "trigger pagerduty event: HTTP 429: throttle event: Requests for this service are arriving too quickly.  Please retry later."},
		{name: "server error", fail: pdtest.Failure{Status: 502}, retryable: true, msg: "trigger pagerduty event: HTTP 502: Bad Gateway"},
		{name: "bad routing key", key: "short-key-123", msg: "trigger pagerduty event: HTTP 400: invalid event: Event object is invalid: Length of 'routing_key' is incorrect (should be 32 characters)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := pdtest.New()
			defer peer.Close()
			key := routingKey
			if tt.key != "" {
				key = tt.key
			}
			p := newPD(t, peer, key)
			if tt.fail.Status != 0 {
				peer.FailNext(tt.fail)
			}
			_, err := p.Run(t.Context(), trigger(loadAlert(t), nil))
			if err == nil || err.Error() != tt.msg {
				t.Fatalf("error %v, want %q", err, tt.msg)
			}
			if actions.IsRetryable(err) != tt.retryable {
				t.Errorf("retryable %v, want %v", actions.IsRetryable(err), tt.retryable)
			}
			var ra interface{ RetryAfter() time.Duration }
			if got := errors.As(err, &ra); got != (tt.retryAfter > 0) || (got && ra.RetryAfter() != tt.retryAfter) {
				t.Errorf("retry after: %v", err)
			}
			if tt.retryable {
				if _, err := p.Run(t.Context(), trigger(loadAlert(t), nil)); err != nil {
					t.Errorf("retry: %v", err)
				}
				if len(peer.Events()) != 1 {
					t.Errorf("%d events after the retry", len(peer.Events()))
				}
			}
		})
	}
	t.Run("pagerduty down", func(t *testing.T) {
		peer := pdtest.New()
		p := newPD(t, peer, routingKey)
		peer.Close()
		_, err := p.Run(t.Context(), trigger(loadAlert(t), nil))
		if !actions.IsRetryable(err) || !strings.HasPrefix(err.Error(), "trigger pagerduty event: ") {
			t.Errorf("down: %v", err)
		}
	})
	t.Run("nothing to dedup on", func(t *testing.T) {
		peer := pdtest.New()
		defer peer.Close()
		p := newPD(t, peer, routingKey)
		_, err := p.Run(t.Context(), actions.Request{Action: pagerduty.ActionResolve})
		if err == nil || actions.IsRetryable(err) || err.Error() != "resolve pagerduty event: no incident id to use as dedup_key" {
			t.Errorf("resolve without incident: %v", err)
		}
	})
}

func TestLongIncidentIDIsHashed(t *testing.T) {
	peer := pdtest.New()
	defer peer.Close()
	p := newPD(t, peer, routingKey)
	req := trigger(loadAlert(t), nil)
	req.Incident = strings.Repeat("x", 300)
	if _, err := p.Run(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	k := peer.Events()[0].DedupKey
	if len(k) > 255 || !strings.HasPrefix(k, "riposte-") {
		t.Errorf("dedup_key %q", k)
	}
	req.Action = pagerduty.ActionResolve
	if _, err := p.Run(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if a, _ := peer.Alert(k); a.Status != "resolved" {
		t.Errorf("resolve of a hashed key: %+v", a)
	}
}

// TestTriggerFoldedUpdate: a throttled update triggers the same dedup_key
// with the count first in the summary and in the custom details.
func TestTriggerFoldedUpdate(t *testing.T) {
	peer := pdtest.New()
	defer peer.Close()
	p := newPD(t, peer, routingKey)
	req := trigger(loadAlert(t), nil)
	req.Fold = &actions.Fold{Alerts: 37, Every: 5 * time.Minute}
	if _, err := p.Run(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	ev := peer.Events()[0]
	if ev.DedupKey != "inc-1" || !strings.HasPrefix(ev.Payload.Summary, "[+37 more in 5 min] A shell was spawned") {
		t.Errorf("event %s %q", ev.DedupKey, ev.Payload.Summary)
	}
	cd := ev.Payload.CustomDetails
	if cd["riposte_update"] != "+37 more in 5 min" || cd["riposte_alerts_in_update"] != float64(37) {
		t.Errorf("custom_details %v", cd)
	}
}
