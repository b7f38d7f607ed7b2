package cgroupctl_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/cgroupctl"
	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/internal/testutil"
)

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A frozen v2 task waits in get_signal (the cgroup v2 freezer's trap,
// do_freezer_trap, is inlined there); /proc/<pid>/status still says S.
func inFreezerTrap(pid int, want bool) func() (bool, string) {
	return func() (bool, string) {
		w, err := cgroupctltest.Wchan(pid)
		if err != nil {
			return false, err.Error()
		}
		return (w == "get_signal") == want, w
	}
}

func TestIntegrationV2FreezeThawKill(t *testing.T) {
	t.Parallel()
	v2 := cgroupctltest.V2(t)
	ctx := timeout(t)
	c := cgroupctltest.Create(t, v2, "/riposte-test-"+cgroupctltest.RandomID(t)[:12], true)
	child := cgroupctltest.Create(t, v2, c.Path+"/init.scope", true)
	a, b := cgroupctltest.Sleep(t, c), cgroupctltest.Sleep(t, child)

	got, err := cgroupctl.PathsOf("/proc", b.Pid)
	if err != nil || got.Unified != child {
		t.Fatalf("PathsOf(%d) = %+v, %v; want unified %+v", b.Pid, got, err, child)
	}
	pids, err := c.Procs()
	if err != nil || len(pids) != 2 {
		t.Fatalf("Procs() = %v, %v; want pids %d and %d", pids, err, a.Pid, b.Pid)
	}

	if err := c.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*cgroupctltest.Proc{a, b} {
		cgroupctltest.Eventually(t, "frozen task in the freezer trap", inFreezerTrap(p.Pid, true))
	}
	if frozen, err := child.Frozen(); !frozen || err != nil {
		t.Fatalf("child cgroup frozen = %v, %v; want true", frozen, err)
	}
	if err := c.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*cgroupctltest.Proc{a, b} {
		cgroupctltest.Eventually(t, "thawed task out of the freezer trap", inFreezerTrap(p.Pid, false))
	}

	// Kill a frozen cgroup: v2 delivers SIGKILL without thawing.
	if err := c.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*cgroupctltest.Proc{a, b} {
		cgroupctltest.Eventually(t, "killed process reaped", cgroupctltest.Exited(p))
		if ws, ok := p.State().Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("pid %d ended with %v, want SIGKILL", p.Pid, p.State())
		}
	}
	if pids, err := c.Procs(); err != nil || len(pids) != 0 {
		t.Fatalf("after kill: Procs() = %v, %v", pids, err)
	}
}

func TestIntegrationV1FreezeThawKill(t *testing.T) {
	t.Parallel()
	fz := cgroupctltest.Freezer(t)
	ctx := timeout(t)
	c := cgroupctltest.Create(t, fz, "/riposte-test-"+cgroupctltest.RandomID(t)[:12], false)
	p := cgroupctltest.Sleep(t, c)
	got, err := cgroupctl.PathsOf("/proc", p.Pid)
	if err != nil || got.Freezer != c {
		t.Fatalf("PathsOf(%d) = %+v, %v; want freezer %+v", p.Pid, got, err, c)
	}
	if err := c.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	cgroupctltest.Eventually(t, "frozen task in D state", cgroupctltest.StateIs(p.Pid, "D"))
	if err := c.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	cgroupctltest.Eventually(t, "thawed task sleeping", cgroupctltest.StateIs(p.Pid, "S"))

	// A frozen v1 task cannot die: Kill signals, then thaws.
	if err := c.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	cgroupctltest.Eventually(t, "killed process reaped", cgroupctltest.Exited(p))
	if pids, err := c.Procs(); err != nil || len(pids) != 0 {
		t.Fatalf("after kill: Procs() = %v, %v", pids, err)
	}
}

// A real Docker container on this hybrid host lives in the v1 freezer at
// /docker/<id>; PathsOf finds it from the container's init pid.
func TestIntegrationDockerV1Freezer(t *testing.T) {
	t.Parallel()
	cli := testutil.DockerClient(t)
	cgroupctltest.Freezer(t)
	ctx := timeout(t)
	id := testutil.RunContainer(t, cli, "riposte-cgroupctl-"+cgroupctltest.RandomID(t)[:8], nil)
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	pid := info.State.Pid
	paths, err := cgroupctl.PathsOf("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	c, err := paths.Container()
	if err != nil {
		t.Fatal(err)
	}
	if c.V2 || filepath.Base(c.Path) != id {
		t.Fatalf("container cgroup = %v, want the v1 freezer cgroup named %s", c, id)
	}
	t.Cleanup(func() {
		// Leave the container removable even when the test fails frozen.
		if err := c.Thaw(context.Background()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Logf("cleanup: %v", err)
		}
	})
	if err := c.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	cgroupctltest.Eventually(t, "container init frozen", cgroupctltest.StateIs(pid, "D"))
	if err := c.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	cgroupctltest.Eventually(t, "container init sleeping again", cgroupctltest.StateIs(pid, "S"))
	if _, err := os.Stat(c.Dir()); err != nil {
		t.Fatal(err)
	}
}

// A v1 cgroup frozen only through a child: its processes moved into a
// frozen child stay frozen while the cgroup itself reads THAWED and not
// self-frozen (what runc takes for a running container); freezing the
// cgroup itself and moving them back keeps them frozen; moving them into a
// thawed cgroup thaws them; the empty child is removed.
func TestIntegrationV1FreezeThroughChild(t *testing.T) {
	t.Parallel()
	fz := cgroupctltest.Freezer(t)
	ctx := timeout(t)
	c := cgroupctltest.Create(t, fz, "/riposte-test-"+cgroupctltest.RandomID(t)[:12], false)
	p, q := cgroupctltest.Sleep(t, c), cgroupctltest.Sleep(t, c)
	hold := c.Child("hold")
	if err := hold.Create(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hold.MoveProcs(context.Background(), c); _ = hold.Remove() })
	if err := hold.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.MoveProcs(ctx, hold); err != nil {
		t.Fatal(err)
	}
	if own, err := c.OwnProcs(); err != nil || len(own) != 0 {
		t.Fatalf("after the move the cgroup holds %v (%v)", own, err)
	}
	if kids, err := c.Children(); err != nil || len(kids) != 1 || kids[0] != "hold" {
		t.Fatalf("Children() = %v, %v", kids, err)
	}
	for _, pid := range []int{p.Pid, q.Pid} {
		cgroupctltest.Eventually(t, "moved task frozen", cgroupctltest.StateIs(pid, "D"))
	}
	frozen, err := c.Frozen()
	self, serr := c.SelfFrozen()
	if err != nil || serr != nil || frozen || self {
		t.Fatalf("parent: frozen %v (%v), self-frozen %v (%v); want neither", frozen, err, self, serr)
	}
	if err := c.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	if self, err := c.SelfFrozen(); err != nil || !self {
		t.Fatalf("after Freeze: self-frozen %v, %v", self, err)
	}
	if err := hold.MoveProcs(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := hold.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{p.Pid, q.Pid} {
		cgroupctltest.Eventually(t, "task still frozen back in its cgroup", cgroupctltest.StateIs(pid, "D"))
	}
	if err := c.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{p.Pid, q.Pid} {
		cgroupctltest.Eventually(t, "thawed task sleeping", cgroupctltest.StateIs(pid, "S"))
	}
	if err := hold.Remove(); err != nil {
		t.Fatalf("removing a removed cgroup: %v", err)
	}
}
