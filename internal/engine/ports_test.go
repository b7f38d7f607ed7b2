package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// updater records the step reports it receives.
type updater struct {
	mu      sync.Mutex
	reports [][]actions.Step
}

func (u *updater) Update(_ context.Context, _ string, steps ...actions.Step) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reports = append(u.reports, steps)
	return nil
}

func (u *updater) n() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reports)
}

// TestReleaseFollowUps: a hand-run action flagged Releases closes its
// incident, and every configured action flagged OnRelease is queued once
// (the engine names neither).
func TestReleaseFollowUps(t *testing.T) {
	f := newFixture(t, Config{}, containPlaybook)
	f.start()
	a := shellAlert("3f9a1c2b7d4e")
	f.submit(a)
	f.waitFor("processed", func(es []store.Entry) bool { return has(es, store.ActionSucceeded) }, store.Filter{AlertID: a.ID})
	incs, err := f.st.ListIncidents(context.Background(), store.IncidentFilter{State: store.IncidentStateOpen})
	if err != nil || len(incs) != 1 {
		t.Fatalf("open incidents: %v %v", incs, err)
	}
	if _, err := f.eng.Act(context.Background(), Manual{Action: "container.release", Container: "3f9a1c2b7d4e", Incident: incs[0].ID, Actor: "cli:root"}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return f.rec.count("pagerduty.resolve") == 1 }, "pagerduty.resolve delivered")
	in, err := f.st.GetIncident(context.Background(), incs[0].ID)
	if err != nil || in.State != store.IncidentStateReleased {
		t.Errorf("incident after release: %+v %v", in, err)
	}
	// Releasing again changes nothing and queues nothing more.
	if _, err := f.eng.Act(context.Background(), Manual{Action: "container.release", Container: "3f9a1c2b7d4e", Incident: incs[0].ID, Actor: "cli:root"}); err != nil {
		t.Fatal(err)
	}
	testutil.Never(t, 300*time.Millisecond, func() bool { return f.rec.count("pagerduty.resolve") > 1 }, "a second resolve")
}

// TestSeveralUpdaters: every integration that takes step updates gets each
// report once, and one failing does not make the other see it twice.
func TestSeveralUpdaters(t *testing.T) {
	f := newFixture(t, Config{}, `
- playbook: p
  actions:
    - do: slack.notify
    - do: container.pause
`)
	chat, pager := &updater{}, &updater{}
	var failed sync.Once
	flaky := updaterFunc(func(ctx context.Context, inc string, steps ...actions.Step) error {
		var err error
		failed.Do(func() { err = actions.Retryable(errors.New("chat is down")) })
		if err != nil {
			return err
		}
		return chat.Update(ctx, inc, steps...)
	})
	f.eng.deps.Updates = map[string]StepUpdater{"chat": flaky, "pager": pager}
	f.start()
	a := shellAlert("3f9a1c2b7d4e")
	f.submit(a)
	testutil.Eventually(t, 10*time.Second, func() bool { return chat.n() >= 1 && chat.n() == pager.n() }, "both updated")
	n := pager.n()
	testutil.Never(t, 300*time.Millisecond, func() bool { return chat.n() != n || pager.n() != n }, "a report delivered twice")
}

type updaterFunc func(ctx context.Context, incident string, steps ...actions.Step) error

func (f updaterFunc) Update(ctx context.Context, incident string, steps ...actions.Step) error {
	return f(ctx, incident, steps...)
}
