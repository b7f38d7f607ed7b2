package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// delivered sums what the notifier was asked to send for an incident:
// messages, the alerts they stand for, and how many were sent at once
// (not folded).
func (r *recorder) delivered(action, incident string) (messages, alerts, immediate int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		if c.Action != action || c.Incident != incident {
			continue
		}
		messages++
		if c.Fold == nil {
			alerts++
			immediate++
			continue
		}
		alerts += c.Fold.Alerts
	}
	return messages, alerts, immediate
}

func (f *fixture) incidentOf(a alert.Alert) string {
	f.t.Helper()
	id, _, err := f.st.Incident(context.Background(), a.Field("container.id"), a.Rule, a.Time)
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

func TestThrottleFoldsAnIncidentsNotifications(t *testing.T) {
	const burst = 40
	tests := []struct {
		name     string
		config   time.Duration // slack.notify's default
		with     string        // the action's with
		throttle time.Duration // in effect
	}{
		{"from the notifier's config", 300 * time.Millisecond, "{}", 300 * time.Millisecond},
		{"from the action's parameter", 0, "{throttle: 300ms}", 300 * time.Millisecond},
		{"off by the action's parameter", time.Hour, "{throttle: 0s}", 0},
		{"off", 0, "{}", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Config{}, fmt.Sprintf(`
- playbook: page
  match: {rules: ["*"]}
  actions:
    - do: slack.notify
      with: %s
`, tc.with))
			f.eng.deps.Throttle = map[string]time.Duration{"slack.notify": tc.config}
			f.start()
			start := time.Now()
			var first, other alert.Alert
			for i := range burst {
				a := shellAlert("c0ffee00")
				if i == 0 {
					first = a
				}
				f.submit(a)
			}
			other = shellAlert("beef0000") // another incident, mid-burst
			f.submit(other)
			inc, otherInc := f.incidentOf(first), f.incidentOf(other)
			testutil.Eventually(t, 10*time.Second, func() bool {
				_, alerts, _ := f.rec.delivered("slack.notify", inc)
				return alerts == burst
			}, "the notifications of %d alerts were not all delivered", burst)
			took := time.Since(start)
			messages, alerts, immediate := f.rec.delivered("slack.notify", inc)
			if immediate < 1 || f.rec.calls[0].Fold != nil {
				t.Fatalf("the first notification was not sent at once: %d immediate, first %+v", immediate, f.rec.calls[0].Fold)
			}
			if tc.throttle == 0 {
				if messages != burst || immediate != burst {
					t.Fatalf("unthrottled: %d messages, %d sent at once, want %d", messages, immediate, burst)
				}
			} else if limit := int(took/tc.throttle) + 2; messages > limit {
				t.Fatalf("%d messages in %s, want at most %d at one per %s", messages, took, limit, tc.throttle)
			}
			if alerts != burst {
				t.Fatalf("the messages stand for %d alerts, want %d", alerts, burst)
			}
			if _, _, imm := f.rec.delivered("slack.notify", otherInc); imm != 1 {
				t.Fatalf("the other incident's notification was throttled by the first's (%d sent at once)", imm)
			}
			// Every alert's notification is journaled: queued, and the
			// folded ones throttled.
			queued := f.waitFor("every notification queued", func(es []store.Entry) bool { return len(es) == burst+1 },
				store.Filter{Types: []store.EntryType{store.ActionQueued}})
			held, err := f.st.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.NotificationThrottled}})
			if err != nil {
				t.Fatal(err)
			}
			if len(held) != burst-immediate {
				t.Fatalf("%d notification.throttled entries, want %d (the %d not sent at once); %d queued", len(held), burst-immediate, burst-immediate, len(queued))
			}
			sent := f.waitFor("the updates journaled", func(es []store.Entry) bool { return len(es) >= messages+1 },
				store.Filter{Types: []store.EntryType{store.NotificationSent}})
			carried := 0
			for _, e := range sent {
				if n, ok := e.Detail["alerts"]; ok {
					var k int
					fmt.Sscan(fmt.Sprint(n), &k)
					carried += k
				}
			}
			if carried != burst-immediate {
				t.Fatalf("the updates' notification.sent entries carry %d alerts, want %d", carried, burst-immediate)
			}
		})
	}
}

func TestThrottleBadParameterFailsTheAction(t *testing.T) {
	f := newFixture(t, Config{}, `
- playbook: page
  match: {rules: ["*"]}
  actions:
    - do: slack.notify
      with: {throttle: '{{ .Rule }}'}
`)
	f.start()
	f.submit(shellAlert("c0ffee00"))
	es := f.waitFor("the action failed", func(es []store.Entry) bool { return len(es) == 1 },
		store.Filter{Types: []store.EntryType{store.ActionFailed}})
	if msg := fmt.Sprint(es[0].Detail["error"]); msg != `with.throttle rendered to "Terminal shell in container": want a duration such as 30s or 5m, got "Terminal shell in container"` {
		t.Fatalf("error %q", msg)
	}
	if n := f.rec.count("slack.notify"); n != 0 {
		t.Fatalf("sent %d notifications", n)
	}
}

// stepCounter is a StepUpdater that counts its calls.
type stepCounter struct {
	mu    sync.Mutex
	calls int
}

func (s *stepCounter) Update(_ context.Context, _ string, _ ...actions.Step) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return nil
}

func (s *stepCounter) n() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// TestThrottleFoldsStepReports: the step reports that follow a throttled
// notification (here a pause after it, per alert) are throttled with it;
// every step is still journaled.
func TestThrottleFoldsStepReports(t *testing.T) {
	const (
		burst = 30
		every = 300 * time.Millisecond
	)
	f := newFixture(t, Config{}, `
- playbook: page-and-pause
  match: {rules: ["*"]}
  actions:
    - do: slack.notify
    - do: container.pause
`)
	steps := &stepCounter{}
	f.eng.deps.Throttle = map[string]time.Duration{"slack.notify": every}
	f.eng.deps.Updates = map[string]StepUpdater{"slack": steps}
	f.start()
	start := time.Now()
	var first alert.Alert
	for i := range burst {
		a := shellAlert("c0ffee00")
		if i == 0 {
			first = a
		}
		f.submit(a)
	}
	inc := f.incidentOf(first)
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, alerts, _ := f.rec.delivered("slack.notify", inc)
		return alerts == burst && f.rec.count("container.pause") == burst
	}, "the burst was not handled")
	f.waitFor("every pause journaled", func(es []store.Entry) bool { return len(es) == burst },
		store.Filter{Types: []store.EntryType{store.ActionSucceeded}})
	testutil.Eventually(t, 10*time.Second, func() bool {
		st, err := f.st.Stats(context.Background())
		return err == nil && st.OutboxPending == 0
	}, "the outbox did not drain")
	took := time.Since(start)
	if n, limit := steps.n(), int(took/every)+2; n < 1 || n > limit {
		t.Fatalf("%d step reports in %s, want 1 to %d at one per %s", n, took, limit, every)
	}
}
