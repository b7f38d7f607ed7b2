package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/cgroupctl"
	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// pausedSoon waits (2s at most) until Docker reports the container paused
// or not: dockerd applies containerd's pause/resume events to its state
// asynchronously, and under load a late event shows the old state briefly.
func pausedSoon(t *testing.T, cli interface {
	ContainerInspect(context.Context, string) (container.InspectResponse, error)
}, id string, want bool) bool {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		info, err := cli.ContainerInspect(context.Background(), id)
		if err == nil && info.State != nil && info.State.Paused == want {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPauseUnpause(t *testing.T) {
	cli := testutil.DockerClient(t)
	r := testResponder(t, cli, nil)
	id, name := startContainer(t, cli, "pause", nil)

	// Every way of naming the container reaches the same one.
	refs := []struct{ kind, ref string }{{"name", name}, {"short id", id[:12]}, {"full id", id}}
	for _, tc := range refs {
		t.Run(tc.kind, func(t *testing.T) {
			res := mustRun(t, r, "container.pause", tc.ref, nil)
			if res.Note != "paused" || !pausedSoon(t, cli, id, true) {
				t.Fatalf("pause by %s: note %q, paused %v", tc.kind, res.Note, inspect(t, cli, id).State.Paused)
			}
			if res.Detail["container_id"] != id || res.Detail["container_name"] != name {
				t.Errorf("detail %v does not name the container", res.Detail)
			}
			res = mustRun(t, r, "container.pause", tc.ref, nil)
			if res.Note != "already paused" || !pausedSoon(t, cli, id, true) {
				t.Fatalf("pause again: note %q", res.Note)
			}
			res = mustRun(t, r, "container.unpause", tc.ref, nil)
			if res.Note != "unpaused" || !pausedSoon(t, cli, id, false) || !inspect(t, cli, id).State.Running {
				t.Fatalf("unpause: note %q, state %+v", res.Note, inspect(t, cli, id).State)
			}
			res = mustRun(t, r, "container.unpause", tc.ref, nil)
			if res.Note != "not paused" {
				t.Fatalf("unpause again: note %q", res.Note)
			}
		})
	}

	t.Run("container from the alert", func(t *testing.T) {
		// Falco gives the 12-character id in output_fields.
		a := alert.Alert{ID: "a1", Rule: "Terminal shell in container", OutputFields: map[string]any{"container.id": id[:12], "container.name": name}}
		res, err := r.Run(context.Background(), actions.Request{Action: "container.pause", Alert: a})
		if err != nil || res.Note != "paused" || !inspect(t, cli, id).State.Paused {
			t.Fatalf("pause from alert: %v %q", err, res.Note)
		}
		mustRun(t, r, "container.unpause", id, nil)
		// An alert with a name and no id (a hand-written one).
		a = alert.Alert{ID: "a2", OutputFields: map[string]any{"container.name": name}}
		res, err = r.Run(context.Background(), actions.Request{Action: "container.pause", Alert: a})
		if err != nil || res.Note != "paused" || res.Detail["container_id"] != id {
			t.Fatalf("pause from alert by name: %v %q", err, res.Note)
		}
		mustRun(t, r, "container.unpause", id, nil)
	})

	t.Run("concurrent", func(t *testing.T) {
		// Ten callers at once (engine, Slack button, riposte act...): one
		// pauses, the others find it paused; nobody gets an error.
		notes := make(chan string, 10)
		errs := make(chan error, 10)
		for range 10 {
			go func() {
				res, err := r.Run(context.Background(), actions.Request{Action: "container.pause", Container: id})
				notes <- res.Note
				errs <- err
			}()
		}
		count := map[string]int{}
		for range 10 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
			count[<-notes]++
		}
		if count["paused"] != 1 || count["already paused"] != 9 {
			t.Errorf("notes %v, want one paused and nine already paused", count)
		}
		mustRun(t, r, "container.unpause", id, nil)
	})

	t.Run("exited container", func(t *testing.T) {
		done, _ := startContainer(t, cli, "pause-exited", nil, "true")
		waitExited(t, cli, done, 30*time.Second)
		res := mustRun(t, r, "container.pause", done, nil)
		if !strings.Contains(res.Note, "not running (exited, exit code 0)") {
			t.Errorf("pause exited: note %q", res.Note)
		}
	})
}

func TestStop(t *testing.T) {
	cli := testutil.DockerClient(t)
	r := testResponder(t, cli, nil)

	t.Run("grace then SIGKILL", func(t *testing.T) {
		// sleep as PID 1 has no SIGTERM handler, so the kernel ignores
		// SIGTERM: only the SIGKILL after the grace period stops it.
		id := startReady(t, cli, "stop-kill", "touch /tmp/ready; exec sleep 3600")
		start := time.Now()
		res := mustRun(t, r, "container.stop", id, actions.Params{"grace": "1s"})
		took := time.Since(start)
		st := inspect(t, cli, id).State
		if st.Running || st.ExitCode != 137 {
			t.Fatalf("after stop: running %v, exit code %d", st.Running, st.ExitCode)
		}
		if took < time.Second || took > 8*time.Second {
			t.Errorf("stop with grace 1s took %s (default grace is 10s)", took)
		}
		if res.Note != "stopped (exited, exit code 137)" || res.Detail["grace"] != "1s" {
			t.Errorf("note %q, detail %v", res.Note, res.Detail)
		}
		res = mustRun(t, r, "container.stop", id, nil)
		if res.Note != "already stopped (exited, exit code 137)" {
			t.Errorf("stop again: note %q", res.Note)
		}
	})

	t.Run("graceful", func(t *testing.T) {
		id := startTrapping(t, cli, "stop-term", 3)
		start := time.Now()
		mustRun(t, r, "container.stop", id, actions.Params{"grace": "20s"})
		st := inspect(t, cli, id).State
		if st.Running || st.ExitCode != 3 {
			t.Fatalf("after stop: running %v, exit code %d (want 3 from the TERM trap)", st.Running, st.ExitCode)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("graceful stop took %s", took)
		}
	})

	t.Run("paused container", func(t *testing.T) {
		id, _ := startContainer(t, cli, "stop-paused", nil)
		mustRun(t, r, "container.pause", id, nil)
		mustRun(t, r, "container.stop", id, actions.Params{"grace": "0s"})
		if st := inspect(t, cli, id).State; st.Running || st.Paused {
			t.Fatalf("after stop: %+v", st)
		}
	})

	t.Run("bad grace", func(t *testing.T) {
		id, _ := startContainer(t, cli, "stop-bad", nil)
		_, err := run(t, r, "container.stop", id, actions.Params{"grace": "soon"})
		if err == nil || !strings.Contains(err.Error(), "parameter grace") {
			t.Fatalf("got %v", err)
		}
		if !inspect(t, cli, id).State.Running {
			t.Error("stopped despite a bad parameter")
		}
	})
}

func TestKill(t *testing.T) {
	cli := testutil.DockerClient(t)
	r := testResponder(t, cli, nil)

	t.Run("default KILL", func(t *testing.T) {
		id, _ := startContainer(t, cli, "kill", nil)
		res := mustRun(t, r, "container.kill", id, nil)
		st := inspect(t, cli, id).State
		if st.Running || st.ExitCode != 137 {
			t.Fatalf("after kill: running %v, exit code %d", st.Running, st.ExitCode)
		}
		if res.Note != "killed (exited, exit code 137)" || res.Detail["signal"] != "KILL" {
			t.Errorf("note %q, detail %v", res.Note, res.Detail)
		}
		res = mustRun(t, r, "container.kill", id, nil)
		if res.Note != "already exited (exited, exit code 137)" {
			t.Errorf("kill again: note %q", res.Note)
		}
	})

	for _, sig := range []any{"TERM", "SIGTERM", 15} {
		t.Run(fmt.Sprintf("signal %v", sig), func(t *testing.T) {
			id := startTrapping(t, cli, "kill-term", 42)
			res := mustRun(t, r, "container.kill", id, actions.Params{"signal": sig})
			if res.Note != "sent SIGTERM" {
				t.Errorf("note %q", res.Note)
			}
			if st := waitExited(t, cli, id, 10*time.Second).State; st.ExitCode != 42 {
				t.Fatalf("exit code %d, want 42 from the TERM trap", st.ExitCode)
			}
		})
	}

	t.Run("paused container", func(t *testing.T) {
		id, _ := startContainer(t, cli, "kill-paused", nil)
		mustRun(t, r, "container.pause", id, nil)
		res := mustRun(t, r, "container.kill", id, nil)
		if st := inspect(t, cli, id).State; st.Running || st.Paused || st.ExitCode != 137 {
			t.Fatalf("after kill: %+v (note %q)", st, res.Note)
		}
	})

	t.Run("bad signal", func(t *testing.T) {
		id, _ := startContainer(t, cli, "kill-bad", nil)
		_, err := run(t, r, "container.kill", id, actions.Params{"signal": "NOPE"})
		if err == nil || !strings.Contains(err.Error(), "parameter signal") {
			t.Fatalf("got %v", err)
		}
		if !inspect(t, cli, id).State.Running {
			t.Error("killed despite a bad parameter")
		}
	})
}

func TestMissingContainer(t *testing.T) {
	cli := testutil.DockerClient(t)
	r := testResponder(t, cli, nil)
	ref := "dkr-no-such-" + randSuffix()
	for _, action := range allActions() {
		t.Run(action, func(t *testing.T) {
			_, err := run(t, r, action, ref, nil)
			if !errors.Is(err, actions.ErrNotFound) {
				t.Fatalf("got %v, want an error wrapping ErrNotFound", err)
			}
			if !strings.Contains(err.Error(), ref) || actions.IsRetryable(err) {
				t.Errorf("error %q: should name %s and not be retryable", err, ref)
			}
		})
	}
	if _, _, err := r.Protected(context.Background(), ref); !errors.Is(err, actions.ErrNotFound) {
		t.Errorf("Protected: got %v", err)
	}
}

// Protected containers: every action is refused with ErrProtected and
// nothing changes — still running, not paused, still on its network, no
// evidence written, no quarantine state.
func TestProtectedContainersUntouched(t *testing.T) {
	cli := testutil.DockerClient(t)
	ctx := context.Background()

	// An image of its own, so an image glob protects it and nothing else.
	guardedImage := "dkr-guarded/app:" + randSuffix()
	if err := cli.ImageTag(ctx, testutil.TestImage, guardedImage); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), guardedImage, image.RemoveOptions{}) })
	runImage := func(t *testing.T, img, name string) string {
		created, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Cmd: []string{"sleep", "3600"}}, nil, nil, nil, name)
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

	tests := []struct {
		name   string
		start  func(t *testing.T) string // returns the id
		config func(c *Config)
		deps   func(t *testing.T, id string, d *Deps)
		reason string
	}{
		{name: "label",
			start: func(t *testing.T) string {
				id, _ := startContainer(t, cli, "prot-label", map[string]string{"riposte.protect": "true"})
				return id
			},
			reason: "label riposte.protect=true"},
		{name: "custom label",
			start: func(t *testing.T) string {
				id, _ := startContainer(t, cli, "prot-custom", map[string]string{"example.com/tier": "db"})
				return id
			},
			config: func(c *Config) { c.Protect.Label = "example.com/tier=db" },
			reason: "label example.com/tier=db"},
		{name: "name glob",
			start: func(t *testing.T) string {
				id, _ := startContainer(t, cli, "prot-name", nil)
				return id
			},
			config: func(c *Config) { c.Protect.Names = []string{"db", "dkr-prot-name-*"} },
			reason: `matches protected name "dkr-prot-name-*"`},
		{name: "image glob",
			start:  func(t *testing.T) string { return runImage(t, guardedImage, "dkr-prot-image-"+randSuffix()) },
			config: func(c *Config) { c.Protect.Images = []string{"dkr-guarded/*"} },
			reason: `matches protected image "dkr-guarded/*"`},
		{name: "own container from its /proc",
			// Point the self-detection at the container's own init process:
			// this is what riposte reads when it runs in that container.
			start: func(t *testing.T) string {
				id, _ := startContainer(t, cli, "prot-self", nil)
				return id
			},
			deps: func(t *testing.T, id string, d *Deps) {
				d.ProcSelf = fmt.Sprintf("/proc/%d", inspect(t, cli, id).State.Pid)
				d.Hostname = "not-an-id"
			},
			reason: "riposte's own container (found in /proc/self/cgroup"},
		{name: "own container from its hostname",
			start: func(t *testing.T) string {
				id, _ := startContainer(t, cli, "prot-host", nil)
				return id
			},
			deps: func(t *testing.T, id string, d *Deps) {
				d.ProcSelf = t.TempDir() // no cgroup, no mountinfo
				d.Hostname = inspect(t, cli, id).Config.Hostname
			},
			reason: "riposte's own container (found in the hostname)"},
		{name: "self_id in config",
			start: func(t *testing.T) string {
				id, _ := startContainer(t, cli, "prot-selfid", nil)
				return id
			},
			deps:   func(t *testing.T, id string, d *Deps) { d.ProcSelf = t.TempDir() },
			reason: "riposte's own container",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.start(t)
			control, _ := startContainer(t, cli, "prot-control", nil)
			cfg := Config{DataDir: t.TempDir()}
			if tc.config != nil {
				tc.config(&cfg)
			}
			if tc.name == "self_id in config" {
				cfg.Protect.SelfID = id[:12]
			}
			deps := Deps{Docker: cli, ProcSelf: t.TempDir(), Hostname: "not-an-id"}
			if tc.deps != nil {
				tc.deps(t, id, &deps)
			}
			r, err := New(cfg, deps)
			if err != nil {
				t.Fatal(err)
			}
			before := inspect(t, cli, id)

			prot, reason, err := r.Protected(ctx, id[:12])
			if err != nil || !prot || !strings.Contains(reason, tc.reason) {
				t.Fatalf("Protected = %v, %q, %v; want true with %q", prot, reason, err, tc.reason)
			}
			for _, action := range allActions() {
				res, err := run(t, r, action, id, actions.Params{"commit": true})
				if !errors.Is(err, actions.ErrProtected) {
					t.Fatalf("%s: got %v (%q), want ErrProtected", action, err, res.Note)
				}
				if !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("%s: error %q does not give the reason %q", action, err, tc.reason)
				}
			}
			after := inspect(t, cli, id)
			if !after.State.Running || after.State.Paused || after.State.StartedAt != before.State.StartedAt {
				t.Errorf("state changed: %+v", after.State)
			}
			if len(after.NetworkSettings.Networks) != len(before.NetworkSettings.Networks) || after.NetworkSettings.Networks["bridge"] == nil {
				t.Errorf("networks changed: %v", after.NetworkSettings.Networks)
			}
			for _, dir := range []string{r.Config().EvidenceDir, r.quarantineDir()} {
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("%s exists: something was written for a protected container", dir)
				}
			}

			// The same responder does act on an unprotected container.
			if prot, reason, err := r.Protected(ctx, control); err != nil || prot {
				t.Fatalf("control container: protected %v (%q), %v", prot, reason, err)
			}
			if res := mustRun(t, r, "container.pause", control, nil); res.Note != "paused" {
				t.Fatalf("control container: %q", res.Note)
			}
		})
	}
}

// TestPauseFreezer: with pause: freezer, container.pause freezes the
// container's cgroup itself (the kernel reports it frozen when the action
// returns) and then has the daemon pause it, so that docker sees it paused
// and docker unpause resumes it; the hold cgroup it passes through is gone
// afterwards. When the daemon cannot be told (the container has a child
// cgroup of its own), it stays frozen, the note says so, and
// container.unpause thaws it; processes left in the hold cgroup by an
// interrupted run are thawed by container.unpause too.
func TestPauseFreezer(t *testing.T) {
	cli := testutil.DockerClient(t)
	cgroupctltest.Freezer(t)
	r := testResponder(t, cli, func(c *Config) { c.Pause = PauseFreezer })
	start := func(t *testing.T, base string) (string, string, cgroupctl.Cgroup, func() bool) {
		id, name := startContainer(t, cli, base, nil)
		paths, err := cgroupctl.PathsOf("/proc", inspect(t, cli, id).State.Pid)
		if err != nil {
			t.Fatal(err)
		}
		cg, err := paths.Container()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { // removable even if the test fails frozen
			hold := cg.Child(holdCgroup)
			_ = hold.MoveProcs(context.Background(), cg)
			_ = hold.Remove()
			_ = cg.Thaw(context.Background())
		})
		return id, name, cg, func() bool {
			t.Helper()
			f, err := cg.Frozen()
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}

	t.Run("the daemon is told", func(t *testing.T) {
		id, name, cg, frozen := start(t, "freeze")
		for _, step := range []struct {
			action, note string
			frozen       bool
		}{
			{"container.pause", "frozen (cgroup freezer); paused in docker", true},
			{"container.pause", "already paused", true},
			{"container.unpause", "unpaused", false},
			{"container.unpause", "not paused", false},
			{"container.pause", "frozen (cgroup freezer); paused in docker", true},
			{ActionRelease, "unpaused", false},
			{"container.pause", "frozen (cgroup freezer); paused in docker", true},
		} {
			res := mustRun(t, r, step.action, name, nil)
			if !strings.Contains(res.Note, step.note) || frozen() != step.frozen {
				t.Fatalf("%s: note %q, frozen %v; want %q, %v", step.action, res.Note, frozen(), step.note, step.frozen)
			}
			if !pausedSoon(t, cli, id, step.frozen) {
				t.Fatalf("%s: docker's paused state is not %v", step.action, step.frozen)
			}
			if kids, err := cg.Children(); err != nil || len(kids) > 0 {
				t.Fatalf("%s: child cgroups %v left (%v)", step.action, kids, err)
			}
			if strings.HasPrefix(step.note, "frozen") && res.Detail["cgroup"] != cg.String() {
				t.Errorf("detail %v does not name the cgroup %s", res.Detail, cg)
			}
		}
		// docker unpause itself resumes it.
		if err := cli.ContainerUnpause(context.Background(), id); err != nil {
			t.Fatalf("docker unpause after the freezer path: %v", err)
		}
		if frozen() {
			t.Fatal("still frozen after docker unpause")
		}
	})

	t.Run("the daemon cannot be told", func(t *testing.T) {
		id, name, cg, frozen := start(t, "freeze-nested")
		nested := cg.Child("nested")
		if err := nested.Create(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nested.Remove() })
		res := mustRun(t, r, "container.pause", name, nil)
		if !strings.Contains(res.Note, "the daemon was not told") || !frozen() {
			t.Fatalf("note %q, frozen %v", res.Note, frozen())
		}
		if self, err := cg.SelfFrozen(); err != nil || !self {
			t.Fatalf("the container's cgroup is not frozen itself after the fallback: %v %v", self, err)
		}
		if inspect(t, cli, id).State.Paused {
			t.Fatal("docker says paused")
		}
		if res := mustRun(t, r, "container.unpause", name, nil); res.Note != "thawed (cgroup freezer)" || frozen() {
			t.Fatalf("unpause: %q, frozen %v", res.Note, frozen())
		}
	})

	t.Run("processes left in the hold cgroup", func(t *testing.T) {
		_, name, cg, frozen := start(t, "freeze-held")
		hold := cg.Child(holdCgroup)
		ctx := context.Background()
		if err := hold.Create(); err != nil {
			t.Fatal(err)
		}
		if err := hold.Freeze(ctx); err != nil {
			t.Fatal(err)
		}
		if err := cg.MoveProcs(ctx, hold); err != nil {
			t.Fatal(err)
		}
		if pids, err := hold.Procs(); err != nil || len(pids) == 0 {
			t.Fatalf("nothing held: %v %v", pids, err)
		}
		if res := mustRun(t, r, "container.unpause", name, nil); res.Note != "thawed (cgroup freezer)" {
			t.Fatalf("unpause: %q", res.Note)
		}
		if kids, _ := cg.Children(); len(kids) > 0 || frozen() {
			t.Fatalf("after unpause: children %v, frozen %v", kids, frozen())
		}
		if pids, err := cg.OwnProcs(); err != nil || len(pids) == 0 {
			t.Fatalf("processes not back in the container's cgroup: %v %v", pids, err)
		}
	})
}
