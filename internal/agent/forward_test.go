package agent

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// intake is a replica's intake for the forwarder's tests: it answers each
// request with the next of answers (the last one repeats), and records the
// alerts of each 2xx.
type intake struct {
	mu       sync.Mutex
	answers  []int
	requests int
	got      []string
	tokens   []string
	refuse   string // an alert id answered 400 whenever it is in the body
}

func (in *intake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	alerts, err := alert.Decode(body)
	in.mu.Lock()
	defer in.mu.Unlock()
	in.tokens = append(in.tokens, r.Header.Get("Authorization"))
	status := in.answers[min(in.requests, len(in.answers)-1)]
	in.requests++
	if err != nil {
		status = http.StatusBadRequest
	}
	for _, a := range alerts {
		if a.ID == in.refuse {
			status = http.StatusBadRequest
		}
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	if status/100 == 2 {
		for _, a := range alerts {
			in.got = append(in.got, a.ID)
		}
	}
}

func (in *intake) ids() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.got...)
}

func staticToken() (string, error) { return "agent-token-0123456789", nil }

func startAgent(t *testing.T, dir string, urls ...string) (*Agent, context.CancelFunc, chan error) {
	t.Helper()
	r, err := NewReplicas(urls, staticToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Node: "node-a", Data: dir, SpoolMax: 100}, Deps{Replicas: r})
	if err != nil {
		t.Fatal(err)
	}
	a.fwd.minWait, a.fwd.maxWait = 10*time.Millisecond, 50*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, cancel, done
}

func TestForwarder(t *testing.T) {
	tests := []struct {
		name    string
		answers []int
		refuse  int // index of an alert the intake refuses; -1 none
		down    bool
	}{
		{"accepted at once", []int{202}, -1, false},
		{"retried through 503 and 500", []int{503, 500, 503, 202}, -1, false},
		{"a dead replica is skipped for the next", []int{202}, -1, true},
		{"a refused alert is set aside, the others arrive", []int{202}, 2, false},
		{"401 keeps the alerts and tries again", []int{401, 401, 202}, -1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := &intake{answers: tc.answers}
			srv := httptest.NewServer(in)
			defer srv.Close()
			urls := []string{srv.URL}
			if tc.down {
				dead := httptest.NewServer(http.NotFoundHandler())
				dead.Close()
				urls = []string{dead.URL, srv.URL}
			}
			var want []string
			var refused string
			for i := range 5 {
				a := testAlert(i)
				a.ID = alert.DeterministicID(a)
				if i == tc.refuse {
					refused = a.ID
					continue
				}
				want = append(want, a.ID)
			}
			in.refuse = refused
			dir := t.TempDir()
			ag, _, _ := startAgent(t, dir, urls...)
			for i := range 5 {
				ag.Emit(testAlert(i))
			}
			testutil.Eventually(t, 10*time.Second, func() bool { return len(in.ids()) >= len(want) && ag.Spooled() == 0 },
				"alerts not forwarded: got %v, spooled %d", in.ids(), ag.Spooled())
			got := map[string]int{}
			for _, id := range in.ids() {
				got[id]++
			}
			for _, id := range want {
				if got[id] != 1 {
					t.Errorf("alert %s arrived %d times", id, got[id])
				}
			}
			if refused != "" {
				if got[refused] != 0 {
					t.Errorf("refused alert arrived")
				}
				if n := promtest.ToFloat64(ag.m.SpoolRejected.WithLabelValues("refused")); n != 1 {
					t.Errorf("set aside counted %v, want 1", n)
				}
			}
			for _, tok := range in.tokens {
				if tok != "Bearer agent-token-0123456789" {
					t.Errorf("authorization %q", tok)
				}
			}
		})
	}
}

// TestEmitStampsNode: every alert carries the node's name as its hostname,
// and an alert whose id hashed its body gets the id of the new body.
func TestEmitStampsNode(t *testing.T) {
	in := &intake{answers: []int{202}}
	srv := httptest.NewServer(in)
	defer srv.Close()
	ag, _, _ := startAgent(t, t.TempDir(), srv.URL)
	a := testAlert(1)
	a.Hostname = "elsewhere"
	a.ID = alert.DeterministicID(a)
	named := testAlert(2)
	named.Hostname, named.ID = "elsewhere", "6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41"
	ag.Emit(a)
	ag.Emit(named)
	testutil.Eventually(t, 5*time.Second, func() bool { return len(in.ids()) == 2 }, "not forwarded: %v", in.ids())
	b := a
	b.Hostname, b.ID = "node-a", ""
	want := map[string]bool{alert.DeterministicID(b): true, named.ID: true}
	for _, id := range in.ids() {
		if !want[id] {
			t.Errorf("unexpected id %s; want %v", id, want)
		}
	}
}

// TestSpoolFullCounts: beyond the spool's bound alerts are counted as
// dropped, never silently lost.
func TestSpoolFullCounts(t *testing.T) {
	r, _ := NewReplicas([]string{"http://127.0.0.1:1"}, staticToken, nil)
	ag, err := New(Config{Node: "n", Data: t.TempDir(), SpoolMax: 3}, Deps{Replicas: r})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	for i := range 5 {
		ag.Emit(testAlert(i))
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return promtest.ToFloat64(ag.m.Dropped.WithLabelValues("spool_full")) == 2
	}, "dropped not counted: %v", promtest.ToFloat64(ag.m.Dropped.WithLabelValues("spool_full")))
	cancel()
	<-done
	if ag.Spooled() != 3 {
		t.Fatalf("spooled %d, want 3", ag.Spooled())
	}
}

func TestNewReplicasRejects(t *testing.T) {
	for _, urls := range [][]string{nil, {"ftp://x"}, {"riposte:8080"}} {
		if _, err := NewReplicas(urls, staticToken, nil); err == nil {
			t.Errorf("%v: no error", urls)
		}
	}
	if d := parseRetryAfter("7"); d != 7*time.Second {
		t.Errorf("retry-after 7: %s", d)
	}
	if d := parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT"); d != 0 {
		t.Errorf("retry-after date: %s", d)
	}
}
