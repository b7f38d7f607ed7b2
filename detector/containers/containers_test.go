package containers

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/go-connections/nat"
)

func TestSplitImage(t *testing.T) {
	tests := []struct{ in, repo, tag, digest string }{
		{"nginx", "nginx", "latest", ""},
		{"riposte-test:1", "riposte-test", "1", ""},
		{"registry:5000/team/app:1.2", "registry:5000/team/app", "1.2", ""},
		{"registry:5000/team/app", "registry:5000/team/app", "latest", ""},
		{"app@sha256:abcd", "app", "", "sha256:abcd"},
		{"app:2@sha256:abcd", "app", "2", "sha256:abcd"},
		{"sha256:0123456789ab", "sha256:0123456789ab", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			repo, tag, digest := SplitImage(tt.in)
			if repo != tt.repo || tag != tt.tag || digest != tt.digest {
				t.Fatalf("SplitImage(%q) = %q %q %q, want %q %q %q", tt.in, repo, tag, digest, tt.repo, tt.tag, tt.digest)
			}
		})
	}
}

func inspectOf(id, name string, running bool) container.InspectResponse {
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: id, Name: "/" + name, State: &container.State{Running: running, Pid: 4242},
			HostConfig: &container.HostConfig{PortBindings: nat.PortMap{"8080/tcp": nil}}},
		Config: &container.Config{Image: "registry/app:1.2", Labels: map[string]string{"team": "red"},
			ExposedPorts: nat.PortSet{"80/tcp": {}, "8080/tcp": {}}},
	}
}

func TestFromInspect(t *testing.T) {
	got := FromInspect(inspectOf("abc", "web", true))
	want := Info{ID: "abc", Name: "web", Image: "registry/app", Tag: "1.2", Labels: map[string]string{"team": "red"},
		Ports: []uint16{80, 8080}, Pid: 4242, Running: true, Known: true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// fakeAPI is an in-memory Docker.
type fakeAPI struct {
	mu       sync.Mutex
	known    map[string]container.InspectResponse
	inspects atomic.Int32
	delay    time.Duration
	events   chan events.Message
}

func (f *fakeAPI) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	f.inspects.Add(1)
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.known[id]
	if !ok {
		return r, errors.New("no such container")
	}
	return r, nil
}

func (f *fakeAPI) ContainerList(ctx context.Context, _ container.ListOptions) ([]container.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []container.Summary
	for id := range f.known {
		out = append(out, container.Summary{ID: id})
	}
	return out, nil
}

func (f *fakeAPI) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	return f.events, make(chan error)
}

func TestGetDedupsAndCaches(t *testing.T) {
	api := &fakeAPI{known: map[string]container.InspectResponse{"a": inspectOf("a", "web", true)}, delay: 50 * time.Millisecond}
	c := New(api, nil)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if info := c.Get(context.Background(), "a"); info.Name != "web" {
				t.Errorf("Get = %+v", info)
			}
		}()
	}
	wg.Wait()
	if n := api.inspects.Load(); n != 1 {
		t.Fatalf("%d inspects for 10 concurrent misses, want 1", n)
	}
	c.Get(context.Background(), "a")
	if info := c.Get(context.Background(), "missing"); info.Known || info.ID != "missing" {
		t.Fatalf("unknown id: %+v", info)
	}
	c.Get(context.Background(), "missing")
	if n := api.inspects.Load(); n != 2 {
		t.Fatalf("%d inspects, want 2 (hits and negative answers cached)", n)
	}
	if info, ok := c.Peek("a"); !ok || info.Name != "web" {
		t.Fatalf("Peek = %+v, %v", info, ok)
	}
}

func TestRunFollowsEvents(t *testing.T) {
	api := &fakeAPI{known: map[string]container.InspectResponse{"a": inspectOf("a", "web", true)}, events: make(chan events.Message)}
	c := New(api, nil)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	c.now = func() time.Time { return time.Unix(0, clock.Load()) }
	changes := make(chan string, 10)
	c.OnChange(func(info Info, running bool) {
		if running {
			changes <- "start " + info.Name
		} else {
			changes <- "stop " + info.ID
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-changes:
			if got != want {
				t.Fatalf("change %q, want %q", got, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("no change, want %q", want)
		}
	}
	expect("start web") // from the initial list
	api.mu.Lock()
	api.known["b"] = inspectOf("b", "db", true)
	api.mu.Unlock()
	api.events <- events.Message{Type: events.ContainerEventType, Action: events.ActionStart, Actor: events.Actor{ID: "b"}}
	expect("start db")
	if got := c.Running(); len(got) != 2 || got[1].Name != "db" {
		t.Fatalf("Running = %+v", got)
	}
	api.events <- events.Message{Type: events.ContainerEventType, Action: events.ActionDestroy, Actor: events.Actor{ID: "a"}}
	expect("stop a")
	// Still known for its last events, not running.
	if info, ok := c.Peek("a"); !ok || info.Name != "web" || info.Running {
		t.Fatalf("destroyed container just now: Peek = %+v, %v; want it known, not running", info, ok)
	}
	if got := c.Running(); len(got) != 1 || got[0].Name != "db" {
		t.Fatalf("Running after a destroy = %+v", got)
	}
	// Forgotten once goneTTL has passed (pruned at the next destroy).
	clock.Store(time.Now().Add(goneTTL + time.Second).UnixNano())
	api.events <- events.Message{Type: events.ContainerEventType, Action: events.ActionDestroy, Actor: events.Actor{ID: "b"}}
	expect("stop b")
	if _, ok := c.Peek("a"); ok {
		t.Fatal("container destroyed longer than goneTTL ago still cached")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNilAPI(t *testing.T) {
	c := New(nil, nil)
	if info := c.Get(context.Background(), "x"); info.ID != "x" || info.Known {
		t.Fatalf("nil API Get = %+v", info)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestHealthcheckArgv(t *testing.T) {
	tests := []struct {
		name  string
		hc    *container.HealthConfig
		shell []string
		want  []string
	}{
		{"none configured", nil, nil, nil},
		{"NONE", &container.HealthConfig{Test: []string{"NONE"}}, nil, nil},
		{"inherit", &container.HealthConfig{Test: []string{}}, nil, nil},
		{"CMD", &container.HealthConfig{Test: []string{"CMD", "wget", "-q", "http://127.0.0.1/"}}, nil, []string{"wget", "-q", "http://127.0.0.1/"}},
		{"CMD-SHELL", &container.HealthConfig{Test: []string{"CMD-SHELL", "curl -f localhost || exit 1"}}, nil,
			[]string{"/bin/sh", "-c", "curl -f localhost || exit 1"}},
		{"CMD-SHELL with the image's SHELL", &container.HealthConfig{Test: []string{"CMD-SHELL", "true"}}, []string{"/bin/bash", "-eo", "pipefail", "-c"},
			[]string{"/bin/bash", "-eo", "pipefail", "-c", "true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HealthcheckArgv(tt.hc, tt.shell); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

type resolverFunc func(ctx context.Context, id string) (Info, error)

func (f resolverFunc) Resolve(ctx context.Context, id string) (Info, error) { return f(ctx, id) }

// TestResolvers: an id Docker does not know is asked of the resolvers in
// order (one that fails is skipped); the answer is cached like Docker's;
// Docker's answer wins when it knows the id; with no Docker at all the
// resolvers still answer.
func TestResolvers(t *testing.T) {
	var asked atomic.Int32
	failing := resolverFunc(func(context.Context, string) (Info, error) { return Info{}, errors.New("containerd unreachable") })
	ctrd := resolverFunc(func(_ context.Context, id string) (Info, error) {
		asked.Add(1)
		if id != "cri" {
			return Info{}, nil
		}
		return Info{Name: "payments/api/app", Image: "registry/app", Tag: "2", Pid: 77, Running: true, Known: true,
			Labels: map[string]string{"io.kubernetes.pod.name": "api"}}, nil
	})
	api := &fakeAPI{known: map[string]container.InspectResponse{"dock": inspectOf("dock", "web", true)}}
	tests := []struct {
		name  string
		api   API
		id    string
		want  Info
		asked int32 // calls to the containerd resolver
	}{
		{"docker knows it", api, "dock", FromInspect(inspectOf("dock", "web", true)), 0},
		{"containerd knows it", api, "cri", Info{ID: "cri", Name: "payments/api/app", Image: "registry/app", Tag: "2", Pid: 77, Running: true, Known: true,
			Labels: map[string]string{"io.kubernetes.pod.name": "api"}}, 1},
		{"nobody knows it", api, "ghost", Info{ID: "ghost"}, 1},
		{"no docker", nil, "cri", Info{ID: "cri", Name: "payments/api/app", Image: "registry/app", Tag: "2", Pid: 77, Running: true, Known: true,
			Labels: map[string]string{"io.kubernetes.pod.name": "api"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked.Store(0)
			c := New(tt.api, nil, failing, ctrd)
			for range 2 { // the second Get is served from the cache
				if got := c.Get(context.Background(), tt.id); !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("Get(%q) = %+v, want %+v", tt.id, got, tt.want)
				}
			}
			if n := asked.Load(); n != tt.asked {
				t.Fatalf("containerd resolver asked %d times, want %d", n, tt.asked)
			}
		})
	}
}

func TestIsBuildStep(t *testing.T) {
	step := func(mod func(r *container.InspectResponse)) container.InspectResponse {
		r := inspectOf("b", "eager_turing", true)
		r.Config.Image = "sha256:c4abba0d483eacf4fc1cc8f23b00463a6b6436ee6de82605fb1cef5e97a2ed66"
		r.Config.Healthcheck = &container.HealthConfig{Test: []string{"NONE"}}
		r.HostConfig.LogConfig = container.LogConfig{Type: "none"}
		if mod != nil {
			mod(&r)
		}
		return r
	}
	tests := []struct {
		name string
		r    container.InspectResponse
		want bool
	}{
		{"classic builder RUN step", step(nil), true},
		{"run by image id", step(func(r *container.InspectResponse) { r.HostConfig.LogConfig.Type = "json-file" }), false},
		{"health check configured", step(func(r *container.InspectResponse) {
			r.Config.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "true"}}
		}), false},
		{"no health check config", step(func(r *container.InspectResponse) { r.Config.Healthcheck = nil }), false},
		{"image by name", step(func(r *container.InspectResponse) { r.Config.Image = "app:1" }), false},
		{"ordinary container", inspectOf("a", "web", true), false},
		{"no config", container.InspectResponse{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsBuildStep(tt.r); got != tt.want {
				t.Errorf("IsBuildStep = %v, want %v", got, tt.want)
			}
			if got := FromInspect(tt.r).BuildStep; got != tt.want && tt.r.Config != nil {
				t.Errorf("FromInspect(...).BuildStep = %v, want %v", got, tt.want)
			}
		})
	}
}
