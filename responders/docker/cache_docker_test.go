package docker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/cgroupctl"
	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// heldEvents relays the daemon's events to the responder but withholds
// those of the containers in held: a watcher that has not seen them yet.
type heldEvents struct {
	src  Events
	mu   sync.Mutex
	held map[string]bool
}

func (h *heldEvents) hold(id string) {
	h.mu.Lock()
	h.held[id] = true
	h.mu.Unlock()
}

func (h *heldEvents) Events(ctx context.Context, o events.ListOptions) (<-chan events.Message, <-chan error) {
	in, errs := h.src.Events(ctx, o)
	out := make(chan events.Message)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-in:
				h.mu.Lock()
				held := h.held[m.Actor.ID]
				h.mu.Unlock()
				if held {
					continue
				}
				select {
				case out <- m:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, errs
}

func (h *heldEvents) ContainerList(ctx context.Context, o container.ListOptions) ([]container.Summary, error) {
	return h.src.ContainerList(ctx, o)
}

// TestInspectCacheDocker runs the containment actions from the inspect
// cache against the real daemon: a container is cached when it starts and
// paused (Docker path) or frozen (freezer path) without an inspect before
// the call; a rename to a protected name, a restart whose events are late,
// and a name taken over by a protected container after a removal whose
// events are late never make the cache act on the wrong container or a
// protected one.
func TestInspectCacheDocker(t *testing.T) {
	cli := testutil.DockerClient(t)
	ev := &heldEvents{src: cli, held: map[string]bool{}}
	newResponder := func(t *testing.T, pause PauseVia) *Responder {
		r, err := New(Config{DataDir: t.TempDir(), Pause: pause, Protect: ProtectConfig{Names: []string{"guarded-*"}}},
			Deps{Docker: cli, Events: ev, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	ctx := context.Background()

	t.Run("docker path", func(t *testing.T) {
		r := newResponder(t, PauseDocker)
		id, name := startContainer(t, cli, "cache", nil)
		waitFor(t, "the container is cached", func() bool { return r.holds(id) })
		res := mustRun(t, r, "container.pause", id[:12], nil)
		if res.Note != "paused" || !inspect(t, cli, id).State.Paused {
			t.Fatalf("pause from the cache: %q", res.Note)
		}
		if res := mustRun(t, r, "container.pause", id[:12], nil); res.Note != "already paused" {
			t.Fatalf("pause again (the cached state says running): %q", res.Note)
		}
		if err := cli.ContainerUnpause(ctx, id); err != nil {
			t.Fatal(err)
		}

		// Renamed to a protected name: the rename event drops the entry,
		// and the inspect that follows sees the new name.
		if err := cli.ContainerRename(ctx, id, "guarded-"+name); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the renamed container is dropped", func() bool { return !r.holds(id) })
		if _, err := run(t, r, "container.pause", id[:12], nil); !errors.Is(err, actions.ErrProtected) {
			t.Fatalf("pause after rename: %v, want protected", err)
		}

		// Removed, its events withheld, and its name taken by a protected
		// container: neither the name nor the old id reach the newcomer.
		other, otherName := startContainer(t, cli, "cache-reuse", nil)
		waitFor(t, "the second container is cached", func() bool { return r.holds(other) })
		ev.hold(other)
		if err := cli.ContainerRemove(ctx, other, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		successor := runNamed(t, otherName, map[string]string{"riposte.protect": "true"})
		if !r.holds(other) {
			t.Fatal("the removed container's entry is gone; the test proves nothing")
		}
		if _, err := run(t, r, "container.pause", otherName, nil); !errors.Is(err, actions.ErrProtected) {
			t.Fatalf("pause by the reused name: %v, want protected", err)
		}
		if _, err := run(t, r, "container.pause", other[:12], nil); !errors.Is(err, actions.ErrNotFound) {
			t.Fatalf("pause by the removed container's id: %v, want not found", err)
		}
		if inspect(t, cli, successor).State.Paused {
			t.Fatal("the protected successor was paused")
		}
	})

	t.Run("freezer path, restart with late events", func(t *testing.T) {
		cgroupctltest.Freezer(t)
		r := newResponder(t, PauseFreezer)
		id, _ := startContainer(t, cli, "cache-freeze", nil)
		waitFor(t, "the container is cached with its cgroup", func() bool {
			e, ok := r.cache.get(id)
			return ok && e.cg.Mount != ""
		})
		ev.hold(id)
		oldPid := inspect(t, cli, id).State.Pid
		timeout := 1
		if err := cli.ContainerRestart(ctx, id, container.StopOptions{Timeout: &timeout}); err != nil {
			t.Fatal(err)
		}
		pid := inspect(t, cli, id).State.Pid
		if pid == oldPid || !r.holds(id) {
			t.Fatalf("restart: pid %d -> %d, cached %v; the test needs a stale entry", oldPid, pid, r.holds(id))
		}
		paths, err := cgroupctl.PathsOf("/proc", pid)
		if err != nil {
			t.Fatal(err)
		}
		cg, err := paths.Container()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cg.Thaw(context.Background()) })
		res := mustRun(t, r, "container.pause", id[:12], nil)
		frozen, err := cg.Frozen()
		if err != nil || !frozen || !strings.Contains(res.Note, "frozen") {
			t.Fatalf("freeze after a restart the cache missed: note %q, frozen %v (%v)", res.Note, frozen, err)
		}
		if !strings.Contains(res.Note, "paused in docker") || !pausedSoon(t, cli, id, true) {
			t.Fatalf("the daemon was not told: %q", res.Note)
		}
		if res := mustRun(t, r, "container.unpause", id[:12], nil); res.Note != "unpaused" {
			t.Fatalf("thaw: %q", res.Note)
		}
	})
}

// runNamed starts a container called name, removed when t ends.
func runNamed(t *testing.T, name string, labels map[string]string) string {
	t.Helper()
	cli := testutil.DockerClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: testutil.TestImage, Cmd: []string{"sleep", "3600"}, Labels: labels}, nil, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	return created.ID
}
