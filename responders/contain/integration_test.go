package contain_test

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/cgroupctl"
	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/responders/contain"
)

// TestIntegrationCgroupActions: a container is only its cgroup here (a v1
// freezer cgroup holding two sleeps, as a runtime on this host makes one);
// pause, unpause, a TERM and a KILL go through the cgroup, found from the
// init pid as a runtime responder finds it.
func TestIntegrationCgroupActions(t *testing.T) {
	fz := cgroupctltest.Freezer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cg := cgroupctltest.Create(t, fz, "/riposte-test-"+cgroupctltest.RandomID(t)[:12], false)
	a, b := cgroupctltest.Sleep(t, cg), cgroupctltest.Sleep(t, cg)
	found, err := contain.CgroupOf("/proc", a.Pid)
	if err != nil || found != cg {
		t.Fatalf("CgroupOf(%d) = %v, %v; want %v", a.Pid, found, err, cg)
	}
	c, err := contain.New(contain.Guard{Label: "riposte.protect=true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg := contain.Target{Runtime: "test", ID: "x", Cgroup: found}

	res, err := c.Pause(ctx, tg)
	if err != nil || res.Note != "paused (cgroup frozen)" {
		t.Fatalf("pause: %+v, %v", res, err)
	}
	assertFreezer(t, cg, "FROZEN")
	for _, p := range []*cgroupctltest.Proc{a, b} {
		cgroupctltest.Eventually(t, "frozen task in D state", cgroupctltest.StateIs(p.Pid, "D"))
	}
	if res, err := c.Pause(ctx, tg); err != nil || res.Note != "already paused" {
		t.Fatalf("second pause: %+v, %v", res, err)
	}
	if res, err := c.Unpause(ctx, tg); err != nil || res.Note != "unpaused (cgroup thawed)" {
		t.Fatalf("unpause: %+v, %v", res, err)
	}
	assertFreezer(t, cg, "THAWED")
	if res, err := c.Unpause(ctx, tg); err != nil || res.Note != "not paused" {
		t.Fatalf("second unpause: %+v, %v", res, err)
	}

	// TERM reaches every process (sleep dies of it).
	res, err = c.Signal(ctx, tg, syscall.SIGTERM)
	if err != nil || res.Note != "sent terminated to 2 processes" {
		t.Fatalf("TERM: %+v, %v", res, err)
	}
	for _, p := range []*cgroupctltest.Proc{a, b} {
		cgroupctltest.Eventually(t, "TERMed process reaped", cgroupctltest.Exited(p))
		if ws, ok := p.State().Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGTERM {
			t.Fatalf("pid %d ended with %v, want SIGTERM", p.Pid, p.State())
		}
	}

	// KILL of a frozen cgroup empties it.
	d := cgroupctltest.Sleep(t, cg)
	if _, err := c.Pause(ctx, tg); err != nil {
		t.Fatal(err)
	}
	res, err = c.Signal(ctx, tg, syscall.SIGKILL)
	if err != nil || res.Note != "killed 1 processes; the cgroup is empty" {
		t.Fatalf("KILL: %+v, %v", res, err)
	}
	cgroupctltest.Eventually(t, "killed process reaped", cgroupctltest.Exited(d))
	if pids, err := cg.Procs(); err != nil || len(pids) != 0 {
		t.Fatalf("after kill: %v, %v", pids, err)
	}

	// The protect label stops everything: the freezer is never written.
	e := cgroupctltest.Sleep(t, cg)
	prot := tg
	prot.Labels = map[string]string{"riposte.protect": "true"}
	if _, err := c.Pause(ctx, prot); err == nil {
		t.Fatal("paused a protected container")
	}
	if _, err := c.Signal(ctx, prot, syscall.SIGKILL); err == nil {
		t.Fatal("killed a protected container")
	}
	assertFreezer(t, cg, "THAWED")
	cgroupctltest.Eventually(t, "protected process still sleeping", cgroupctltest.StateIs(e.Pid, "S"))
}

func assertFreezer(t *testing.T, c cgroupctl.Cgroup, want string) {
	t.Helper()
	b, err := os.ReadFile(c.Dir() + "/freezer.state")
	if err != nil || strings.TrimSpace(string(b)) != want {
		t.Fatalf("freezer.state = %q, %v; want %s", b, err, want)
	}
}
