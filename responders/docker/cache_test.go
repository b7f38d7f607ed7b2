package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/riposte-sec/riposte/internal/actions"
)

// memDaemon is a Docker daemon in memory for the inspect cache's tests:
// inspect, pause, kill and the event stream, with every call recorded.
// The API methods it does not fake are not called by these tests.
type memDaemon struct {
	API // nil: not faked

	mu    sync.Mutex
	byID  map[string]*container.InspectResponse
	calls []string // "inspect <ref>", "pause <id>", "list"
	subs  chan fakeSub
	list  error                    // ContainerList fails with it when set
	gate  map[string]chan struct{} // an inspect of this exact ref waits for the channel
}

type fakeSub struct {
	msgs chan<- events.Message
	errs chan<- error
}

func newMemDaemon() *memDaemon {
	return &memDaemon{byID: map[string]*container.InspectResponse{}, subs: make(chan fakeSub, 8), gate: map[string]chan struct{}{}}
}

func fakeID(n byte) string { return strings.Repeat(fmt.Sprintf("%02x", n), 32) }

// add creates a running container; it does not send its start event.
func (f *memDaemon) add(id, name string, labels map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byID[id] = &container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: id, Name: "/" + name, Image: "sha256:" + fakeID(0xee),
			State: &container.State{Status: "running", Running: true, Pid: 4242}},
		Config: &container.Config{Image: "app:1", Labels: labels},
	}
}

func (f *memDaemon) remove(id string) {
	f.mu.Lock()
	delete(f.byID, id)
	f.mu.Unlock()
}

func (f *memDaemon) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

// takeCalls returns the calls since the last take.
func (f *memDaemon) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *memDaemon) find(ref string) *container.InspectResponse {
	if c, ok := f.byID[ref]; ok {
		return c
	}
	for _, c := range f.byID {
		if c.Name == "/"+ref || c.Name == ref {
			return c
		}
	}
	for id, c := range f.byID {
		if strings.HasPrefix(id, ref) {
			return c
		}
	}
	return nil
}

func notFound(ref string) error {
	return fmt.Errorf("no such container: %s: %w", ref, cerrdefs.ErrNotFound)
}

func (f *memDaemon) ContainerInspectWithRaw(_ context.Context, ref string, _ bool) (container.InspectResponse, []byte, error) {
	f.record("inspect " + ref)
	f.mu.Lock()
	gate := f.gate[ref]
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(ref)
	if c == nil {
		return container.InspectResponse{}, nil, notFound(ref)
	}
	cp := *c
	st := *c.State
	cp.ContainerJSONBase = &container.ContainerJSONBase{}
	*cp.ContainerJSONBase = *c.ContainerJSONBase
	cp.State = &st
	return cp, nil, nil
}

func (f *memDaemon) ContainerPause(_ context.Context, ref string) error {
	f.record("pause " + ref)
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(ref)
	switch {
	case c == nil:
		return notFound(ref)
	case c.State.Paused:
		return fmt.Errorf("container %s is already paused: %w", ref, cerrdefs.ErrConflict)
	}
	c.State.Paused = true
	return nil
}

func (f *memDaemon) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	f.record("list")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.list != nil {
		return nil, f.list
	}
	var out []container.Summary
	for id, c := range f.byID {
		if c.State.Running {
			out = append(out, container.Summary{ID: id})
		}
	}
	return out, nil
}

func (f *memDaemon) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	msgs, errs := make(chan events.Message), make(chan error, 1)
	f.subs <- fakeSub{msgs, errs}
	return msgs, errs
}

// subscription waits for the responder's next subscription.
func (f *memDaemon) subscription(t *testing.T) fakeSub {
	t.Helper()
	select {
	case s := <-f.subs:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the responder did not subscribe to the daemon's events")
		return fakeSub{}
	}
}

func send(t *testing.T, s fakeSub, action events.Action, id string) {
	t.Helper()
	select {
	case s.msgs <- events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id}}:
	case <-time.After(10 * time.Second):
		t.Fatalf("the responder does not read its events (%s %s)", action, shortID(id))
	}
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond) // polling the watcher goroutine's state
	}
}

func cachedResponder(t *testing.T, f *memDaemon, edit func(*Config)) *Responder {
	t.Helper()
	cfg := Config{DataDir: t.TempDir()}
	if edit != nil {
		edit(&cfg)
	}
	r, err := New(cfg, Deps{Docker: f, Events: f, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), ProcSelf: t.TempDir(), Hostname: "test-host"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func (r *Responder) holds(id string) bool {
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	_, ok := r.cache.byID[id]
	return ok
}

// TestInspectCache: the cache fills from the running containers and the
// start events, empties on die, destroy and rename, answers only for ids
// and id prefixes, and goes quiet while the event stream is broken.
func TestInspectCache(t *testing.T) {
	f := newMemDaemon()
	web, db := fakeID(1), fakeID(2)
	f.add(web, "web", nil)
	r := cachedResponder(t, f, nil)
	sub := f.subscription(t)
	waitFor(t, "the running container is cached", func() bool { n, live := r.Cached(); return live && n == 1 })

	f.add(db, "db", nil)
	send(t, sub, events.ActionStart, db)
	waitFor(t, "the started container is cached", func() bool { return r.holds(db) })
	f.takeCalls()

	for _, tc := range []struct {
		ref  string
		want []string // the calls Run makes before the pause settles
	}{
		{web[:12], []string{"pause " + web}},
		{db, []string{"pause " + db}},
		{"db", []string{"inspect db"}}, // names are never answered from the cache
	} {
		t.Run(tc.ref, func(t *testing.T) {
			f.mu.Lock()
			for _, c := range f.byID {
				c.State.Paused = false
			}
			f.mu.Unlock()
			f.takeCalls()
			res, err := r.Run(context.Background(), actions.Request{Action: "container.pause", Container: tc.ref})
			if err != nil || res.Note != "paused" {
				t.Fatalf("pause %s: %v %q", tc.ref, err, res.Note)
			}
			if got := f.takeCalls(); !slices.Equal(got[:len(tc.want)], tc.want) {
				t.Fatalf("calls %q, want them to start with %q", got, tc.want)
			}
		})
	}

	send(t, sub, events.ActionRename, db)
	waitFor(t, "a renamed container is dropped", func() bool { return !r.holds(db) })
	send(t, sub, events.ActionStart, db)
	waitFor(t, "it is cached again on start", func() bool { return r.holds(db) })
	send(t, sub, events.ActionDie, db)
	waitFor(t, "a container that died is dropped", func() bool { return !r.holds(db) })
	send(t, sub, events.ActionStart, db)
	waitFor(t, "cached again", func() bool { return r.holds(db) })
	f.remove(db)
	send(t, sub, events.ActionDestroy, db)
	waitFor(t, "a removed container is dropped", func() bool { return !r.holds(db) })

	// The stream breaks: nothing is answered from the cache until the
	// watch is back and has listed the running containers again.
	f.mu.Lock()
	f.list = errors.New("daemon restarting")
	f.mu.Unlock()
	sub.errs <- errors.New("unexpected EOF")
	waitFor(t, "the cache is off", func() bool { n, live := r.Cached(); return !live && n == 0 })
	f.takeCalls()
	if _, err := r.Run(context.Background(), actions.Request{Action: "container.pause", Container: web[:12]}); err != nil {
		t.Fatal(err)
	}
	if got := f.takeCalls(); len(got) == 0 || got[0] != "inspect "+web[:12] {
		t.Fatalf("with the stream broken, calls %q; want an inspect first", got)
	}
	f.mu.Lock()
	f.list = nil
	f.mu.Unlock()
	waitFor(t, "the cache is back", func() bool { n, live := r.Cached(); return live && n == 1 })
}

// TestInspectCacheGuardrails: a protected container is refused from the
// cache as from an inspect, without a call to the daemon; a stale entry (a
// removed container whose events have not arrived) never redirects an
// action to the container that took its name; a prefix that is also a
// container's name is left to the daemon.
func TestInspectCacheGuardrails(t *testing.T) {
	f := newMemDaemon()
	old, guarded, named := fakeID(1), fakeID(2), fakeID(3)
	f.add(old, "app", nil)
	f.add(guarded, "vault", map[string]string{"riposte.protect": "true"})
	f.add(named, old[:12], nil) // a container named like old's short id
	r := cachedResponder(t, f, func(c *Config) { c.Protect.Names = []string{"db-*"} })
	f.subscription(t)
	waitFor(t, "the running containers are cached", func() bool { n, live := r.Cached(); return live && n == 3 })

	pause := func(ref string) (actions.Result, error) {
		f.takeCalls()
		return r.Run(context.Background(), actions.Request{Action: "container.pause", Container: ref})
	}

	t.Run("protected label", func(t *testing.T) {
		_, err := pause(guarded[:12])
		if !errors.Is(err, actions.ErrProtected) || !strings.Contains(err.Error(), "label riposte.protect=true") {
			t.Fatalf("err %v, want protected by its label", err)
		}
		if calls := f.takeCalls(); len(calls) != 0 {
			t.Fatalf("refused after calls %q; want none (from the cache)", calls)
		}
		if ok, reason, err := r.Protected(context.Background(), guarded[:12]); !ok || err != nil || reason != "label riposte.protect=true" {
			t.Fatalf("Protected: %v %q %v", ok, reason, err)
		}
	})

	t.Run("protection configured after the entry was cached", func(t *testing.T) {
		r.cfg.Protect.Names = []string{"app"}
		defer func() { r.cfg.Protect.Names = []string{"db-*"} }()
		if _, err := pause(old); !errors.Is(err, actions.ErrProtected) {
			t.Fatalf("err %v, want protected: the verdict is not cached, only the inspect", err)
		}
	})

	t.Run("a prefix that is also a name", func(t *testing.T) {
		res, err := pause(old[:12])
		if err != nil || res.Note != "paused" {
			t.Fatal(err, res.Note)
		}
		// The daemon resolves the name first: the one named so is paused.
		if calls := f.takeCalls(); calls[0] != "inspect "+old[:12] || calls[1] != "pause "+named {
			t.Fatalf("calls %q, want the inspect to decide", calls)
		}
	})

	t.Run("name reused by a protected container, events late", func(t *testing.T) {
		// old is removed and a new, protected container takes its name;
		// neither event has reached the cache.
		f.remove(old)
		successor := fakeID(4)
		f.add(successor, "app", nil)
		f.mu.Lock()
		f.byID[successor].Config.Labels = map[string]string{"riposte.protect": "true"}
		f.mu.Unlock()
		if !r.holds(old) {
			t.Fatal("the stale entry is gone already; the test proves nothing")
		}
		if _, err := pause("app"); !errors.Is(err, actions.ErrProtected) {
			t.Fatalf("pause by name: %v, want the successor refused", err)
		}
		_, err := pause(old)
		if !errors.Is(err, actions.ErrNotFound) {
			t.Fatalf("pause by the old id: %v, want not found", err)
		}
		for _, c := range f.takeCalls() {
			if strings.Contains(c, successor) {
				t.Fatalf("call %q touched the successor", c)
			}
		}
		if r.holds(old) {
			t.Fatal("the stale entry is still cached after it failed")
		}
		f.mu.Lock()
		paused := f.byID[successor].State.Paused
		f.mu.Unlock()
		if paused {
			t.Fatal("the protected successor was paused")
		}
	})
}

// TestCloseStopsWatch: Close ends the watch goroutine and may be called
// twice; a Responder without Events has no cache.
func TestCloseStopsWatch(t *testing.T) {
	f := newMemDaemon()
	r := cachedResponder(t, f, nil)
	f.subscription(t)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, live := r.Cached(); live {
		t.Fatal("cache still answers after Close")
	}
	plain, err := New(Config{DataDir: t.TempDir()}, Deps{Docker: f})
	if err != nil {
		t.Fatal(err)
	}
	if n, live := plain.Cached(); n != 0 || live {
		t.Fatalf("without Events: %d cached, live %v", n, live)
	}
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestInspectCacheWaitsForStart: an action on a container whose start the
// watcher is still inspecting (a shell as the entrypoint: the alert comes
// with the start) waits for that inspect instead of making its own.
func TestInspectCacheWaitsForStart(t *testing.T) {
	f := newMemDaemon()
	r := cachedResponder(t, f, nil)
	sub := f.subscription(t)
	waitFor(t, "the cache is live", func() bool { _, live := r.Cached(); return live })
	id := fakeID(7)
	f.add(id, "fresh", nil)
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate[id] = gate
	f.mu.Unlock()
	f.takeCalls()
	send(t, sub, events.ActionStart, id)
	waitFor(t, "the watcher is inspecting the new container", func() bool { return r.cache.inflight(id[:12]) != nil })
	type result struct {
		res actions.Result
		err error
	}
	out := make(chan result, 1)
	go func() {
		res, err := r.Run(context.Background(), actions.Request{Action: "container.pause", Container: id[:12]})
		out <- result{res, err}
	}()
	close(gate)
	got := <-out
	if got.err != nil || got.res.Note != "paused" {
		t.Fatalf("pause: %v %q", got.err, got.res.Note)
	}
	calls := f.takeCalls()
	if !slices.Equal(calls[:2], []string{"inspect " + id, "pause " + id}) {
		t.Fatalf("calls %q; want the watcher's inspect, then the pause, and no inspect of the action's own", calls)
	}
}
