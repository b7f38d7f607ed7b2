package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/postgres"
	"github.com/riposte-sec/riposte/internal/store/postgres/pgtest"
	"github.com/riposte-sec/riposte/internal/store/storetest"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/playbooks"
)

// pg is this test binary's PostgreSQL server, started on first use.
var pg pgtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// replica is one engine on its own handle of a shared database, with its
// own responders.
type replica struct {
	st   *postgres.Store
	eng  *Engine
	rec  *recorder
	stop context.CancelFunc
	done chan error
}

func startReplica(t *testing.T, url, yml string) *replica {
	t.Helper()
	st, err := postgres.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := playbooks.Parse(testCatalog(), playbooks.Source{Name: "test.yaml", Data: []byte(yml)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	runners := map[string]actions.Runner{}
	for _, s := range testSpecs {
		runners[s.Name] = rec
	}
	eng, err := New(Config{Poll: 20 * time.Millisecond}, Deps{Store: st, Playbooks: set, Catalog: testCatalog(), Runners: runners})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{st: st, eng: eng, rec: rec, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- eng.Run(ctx) }()
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

func (r *replica) shutdown(t *testing.T) {
	if r.stop == nil {
		return
	}
	r.stop()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Run did not return after cancel")
	}
	r.stop = nil
	r.st.Close()
}

// TestApprovalDecidedOnAnotherReplica: replica A holds an action for
// approval and goes away; the approval, granted through replica B (the
// Slack button landing there), runs the action once, on B.
func TestApprovalDecidedOnAnotherReplica(t *testing.T) {
	url := pg.Database(t)
	const yml = `
- playbook: gated
  approval: {approvers: [U1], timeout: 1h}
  actions:
    - do: container.pause
      gated: true
    - do: container.snapshot
`
	a := startReplica(t, url, yml)
	b := startReplica(t, url, yml)
	al := shellAlert("3f9a1c2b7d4e")
	if _, err := a.eng.Submit(context.Background(), []alert.Alert{al}, "test"); err != nil {
		t.Fatal(err)
	}
	var pending []store.Approval
	testutil.Eventually(t, 10*time.Second, func() bool {
		pending, _ = b.st.PendingApprovals(context.Background())
		return len(pending) == 1
	}, "no pending approval")
	a.shutdown(t) // the replica that asked is gone
	res, err := b.eng.Decide(context.Background(), pending[0].ID, true, "slack:U1 (jane)", "")
	if err != nil || res.Note != "container.pause done" {
		t.Fatalf("decide on B: %+v %v", res, err)
	}
	if _, err := b.eng.Decide(context.Background(), pending[0].ID, true, "slack:U1 (jane)", ""); !errors.Is(err, ErrDecided) {
		t.Errorf("second decision: %v", err)
	}
	if a.rec.count("container.pause") != 0 || b.rec.count("container.pause") != 1 {
		t.Fatalf("pause ran %d times on A, %d on B; want 0 and 1", a.rec.count("container.pause"), b.rec.count("container.pause"))
	}
	if n := a.rec.count("container.snapshot") + b.rec.count("container.snapshot"); n != 1 {
		t.Fatalf("snapshot ran %d times", n)
	}
	storetest.MustVerify(t, b.st)
}

// TestOutboxDeliversOnceAcrossReplicas: two replicas' delivery workers
// share one outbox; every notification is delivered once, by one of them.
func TestOutboxDeliversOnceAcrossReplicas(t *testing.T) {
	url := pg.Database(t)
	const yml = `
- playbook: notify
  actions:
    - do: slack.notify
      with: {channel: "#ir"}
`
	rs := []*replica{startReplica(t, url, yml), startReplica(t, url, yml)}
	const alerts = 30
	for i := range alerts {
		al := shellAlert(fmt.Sprintf("%012d", i))
		if _, err := rs[i%2].eng.Submit(context.Background(), []alert.Alert{al}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		es, err := rs[0].st.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.NotificationSent}})
		return err == nil && len(es) == alerts
	}, "not every notification was sent")
	a, b := rs[0].rec.count("slack.notify"), rs[1].rec.count("slack.notify")
	if a+b != alerts {
		t.Fatalf("slack.notify delivered %d times (A %d, B %d), want %d", a+b, a, b, alerts)
	}
	t.Logf("deliveries: A %d, B %d", a, b)
	storetest.MustVerify(t, rs[0].st)
}

// TestThrottleAcrossReplicas: alerts of one incident taken in by two
// replicas fold into one incident's notifications: one sent at once, then
// at most one update per interval, whichever replica delivers it, counting
// every alert.
func TestThrottleAcrossReplicas(t *testing.T) {
	url := pg.Database(t)
	const (
		yml = `
- playbook: notify
  actions:
    - do: slack.notify
      with: {throttle: 300ms}
`
		alerts = 40
		every  = 300 * time.Millisecond
	)
	rs := []*replica{startReplica(t, url, yml), startReplica(t, url, yml)}
	start := time.Now()
	var first alert.Alert
	for i := range alerts {
		al := shellAlert("3f9a1c2b7d4e")
		if i == 0 {
			first = al
		}
		if _, err := rs[i%2].eng.Submit(context.Background(), []alert.Alert{al}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	inc, _, err := rs[0].st.Incident(context.Background(), "3f9a1c2b7d4e", first.Rule, first.Time)
	if err != nil {
		t.Fatal(err)
	}
	sum := func() (messages, counted, immediate int) {
		for _, r := range rs {
			m, c, i := r.rec.delivered("slack.notify", inc)
			messages, counted, immediate = messages+m, counted+c, immediate+i
		}
		return
	}
	testutil.Eventually(t, 20*time.Second, func() bool { _, c, _ := sum(); return c == alerts },
		"the notifications of %d alerts were not all delivered", alerts)
	took := time.Since(start)
	messages, _, immediate := sum()
	if immediate != 1 || messages > int(took/every)+2 {
		t.Fatalf("%d messages (%d sent at once) in %s, want one at once and at most %d", messages, immediate, took, int(took/every)+2)
	}
	t.Logf("%d alerts on two replicas: %d messages in %s (A %d, B %d calls)", alerts, messages, took,
		rs[0].rec.count("slack.notify"), rs[1].rec.count("slack.notify"))
	storetest.MustVerify(t, rs[0].st)
}
