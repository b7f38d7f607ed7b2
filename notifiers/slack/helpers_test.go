package slack_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	rslack "github.com/riposte-sec/riposte/notifiers/slack"
	"github.com/riposte-sec/riposte/notifiers/slack/slackpeertest"
)

const (
	botToken      = "xoxb-1111111111-2222222222-riposteTESTbotTOKEN"
	appToken      = "xapp-1-A0RIPOSTE-3333333333-riposteTESTappTOKEN"
	signingSecret = "8f742231b10e8888abcd99yyyzzz85a5"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

var testEnv = env(map[string]string{"SLACK_BOT_TOKEN": botToken, "SLACK_SIGNING_SECRET": signingSecret, "SLACK_APP_TOKEN": appToken})

func baseConfig(p *slackpeertest.Peer) rslack.Config {
	return rslack.Config{
		TokenEnv:         "SLACK_BOT_TOKEN",
		SigningSecretEnv: "SLACK_SIGNING_SECRET",
		Channel:          "#ir",
		Approvers:        []string{"U0ALICE"},
		APIURL:           p.APIURL(),
	}
}

func newSlack(t *testing.T, cfg rslack.Config, deps rslack.Deps) *rslack.Slack {
	t.Helper()
	if deps.LookupEnv == nil {
		deps.LookupEnv = testEnv
	}
	s, err := rslack.New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newPeer(t *testing.T) *slackpeertest.Peer {
	t.Helper()
	p := slackpeertest.New(botToken, appToken)
	t.Cleanup(p.Close)
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

func notifyRequest(t *testing.T, a alert.Alert, incident, key string) actions.Request {
	return actions.Request{
		Action:    rslack.ActionNotify,
		Alert:     a,
		Incident:  incident,
		Container: a.Field("container.id"),
		Actor:     "playbook:contain-shell",
		Key:       key,
		Params:    actions.Params{},
		Steps: []actions.Step{{Action: "container.snapshot", Status: "succeeded", Note: "snapshot taken", Actor: "playbook:contain-shell",
			Time: time.Date(2026, 11, 20, 9, 14, 4, 0, time.UTC)}},
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeDispatcher records what the handlers ask.
type fakeDispatcher struct {
	mu         sync.Mutex
	acts       []rslack.Command
	approvals  []approvalCall
	denials    []rslack.Denial
	result     actions.Result
	err        error
	approveErr error
	status     string
}

type approvalCall struct {
	ID      string
	Actor   rslack.Actor
	Approve bool
}

func (d *fakeDispatcher) Act(_ context.Context, c rslack.Command) (actions.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.acts = append(d.acts, c)
	return d.result, d.err
}

func (d *fakeDispatcher) Approve(_ context.Context, id string, a rslack.Actor, ok bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.approvals = append(d.approvals, approvalCall{id, a, ok})
	return d.approveErr
}

func (d *fakeDispatcher) Status(context.Context) (string, error) { return d.status, nil }

func (d *fakeDispatcher) Denied(_ context.Context, den rslack.Denial) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.denials = append(d.denials, den)
	return nil
}

func (d *fakeDispatcher) snapshot() ([]rslack.Command, []approvalCall, []rslack.Denial) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]rslack.Command(nil), d.acts...), append([]approvalCall(nil), d.approvals...), append([]rslack.Denial(nil), d.denials...)
}
