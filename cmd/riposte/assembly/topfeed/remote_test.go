package topfeed

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/console"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// fakeEvents is a detector that sends what the test puts in ch.
type fakeEvents struct {
	ch     chan detector.Event
	events uint64
}

func (f *fakeEvents) Subscribe(id string, _ int) (<-chan detector.Event, func()) {
	if id != detector.AllContainers {
		panic("feed subscribed to " + id)
	}
	return f.ch, func() {}
}

func (f *fakeEvents) Stats() detector.Stats {
	return detector.Stats{Events: f.events, QueueDrops: 2, SubscriberDrops: 1, KernelDrops: map[string]uint64{"open": 4}}
}

type collected struct {
	mu sync.Mutex
	u  console.Update
}

func (c *collected) send(u console.Update) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.u.Spies = append(c.u.Spies, u.Spies...)
	c.u.Procs = append(c.u.Procs, u.Procs...)
	c.u.Incidents = append(c.u.Incidents, u.Incidents...)
	if u.Stats != nil {
		c.u.Stats = u.Stats
	}
	if u.Err != "" {
		c.u.Err = u.Err
	}
}

func (c *collected) get() console.Update {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.u
}

// TestStreamRoundTrip: events, incidents and counters go through the
// server's Handler and come out of Remote as console updates.
func TestStreamRoundTrip(t *testing.T) {
	evs := &fakeEvents{ch: make(chan detector.Event, 8), events: 1000}
	h := &Handler{Events: evs, Interval: 50 * time.Millisecond,
		Incidents: func(context.Context) ([]console.Incident, error) {
			return []console.Incident{{ID: "inc-1", ContainerID: cid, Rule: "r", State: "open"}}, nil
		}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := &collected{}
	done := make(chan error, 1)
	go func() { done <- (&Remote{URL: srv.URL, Token: "tok"}).Run(ctx, got.send) }()

	e := ev(event.Exec, 201, 200, "cat", func(e *event.Event) {
		e.Args, e.TTY, e.Ancestors = []string{"/bin/cat", "/etc/hostname"}, pts0, []string{"sh"}
	})
	evs.ch <- e
	testutil.Eventually(t, 10*time.Second, func() bool {
		u := got.get()
		return len(u.Spies) == 1 && len(u.Incidents) > 0 && u.Stats != nil
	}, "spy row, incidents and counters through the stream: %+v", got.get())
	u := got.get()
	if u.Spies[0].Cmdline != "cat /etc/hostname" || u.Incidents[0].ID != "inc-1" || u.Stats.Drops != 7 || u.Stats.Source != "" {
		t.Errorf("update = %+v stats %+v", u, u.Stats)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("remote: %v", err)
	}

	err := (&Remote{URL: srv.URL, Token: "wrong"}).Run(context.Background(), func(console.Update) {})
	var perm permanent
	if !errors.As(err, &perm) || !strings.Contains(err.Error(), "the token was refused") {
		t.Errorf("wrong token: %v", err)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, in string
		n        int
		err      string
	}{
		{"two updates", `{"spies":[{"time":"2026-11-20T09:14:03Z","container_id":"a","shell":"sh","pid":1,"cmdline":"id"}]}` + "\n\n" +
			`{"stats":{"events":1,"events_per_sec":2,"drops":0}}` + "\n", 2, "read server stream: the server closed it"},
		{"unknown field", `{"spy":[]}` + "\n", 0, `read server stream: line 1: decode update: json: unknown field "spy"`},
		{"two values on a line", `{} {}` + "\n", 0, "read server stream: line 1: decode update: more than one JSON value on the line"},
		{"wrong type", `{"procs":{}}` + "\n", 0, "read server stream: line 1: decode update: json: cannot unmarshal object"},
		{"too long", strings.Repeat(" ", maxLine+1) + "\n", 0, "read server stream: line 1: bufio.Scanner: token too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			err := Decode(strings.NewReader(tt.in), func(console.Update) { n++ })
			if n != tt.n || err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("decoded %d, err %v; want %d, %q", n, err, tt.n, tt.err)
			}
		})
	}
}

func FuzzDecodeLine(f *testing.F) {
	f.Add([]byte(`{"containers_set":true,"containers":[{"id":"a","name":"web","image":"x","state":"running","cpu_percent":1,"memory_bytes":2}]}`))
	f.Add([]byte(`{"incidents_set":true,"incidents":[{"id":"i","container_id":"a","rule":"r","state":"open","opened_at":"2026-11-20T09:14:03Z","alerts":1,"pending":[{"id":"ap","action":"container.pause"}]}]}`))
	f.Add([]byte(`{"procs":[{"container_id":"a","pid":1,"ppid":0,"cmdline":"sh","started":"2026-11-20T09:14:03Z","exit_code":0}]}`))
	f.Add([]byte(`{"err":"x","connected":true}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := DecodeLine(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "decode update: ") {
				t.Fatalf("error %q does not say what failed", err)
			}
			return
		}
		// Whatever decodes, the console takes and draws.
		m := console.New(console.Options{})
		m.Apply(u)
		_ = m.View()
	})
}
