package cgroupctltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/cgroupctl"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// Mounts returns the mount points of the v2 hierarchy and of the v1 freezer
// (either "" when not mounted), from this process's own cgroups.
func Mounts(t testing.TB) (v2, freezer string) {
	t.Helper()
	testutil.Integration(t, testutil.Root)
	p, err := cgroupctl.PathsOf("/proc", os.Getpid())
	if err != nil {
		t.Fatalf("find cgroup mounts: %v", err)
	}
	return p.Unified.Mount, p.Freezer.Mount
}

// V2 returns the v2 hierarchy's mount point, failing (CI) or skipping the
// test when there is none.
func V2(t testing.TB) string {
	t.Helper()
	v2, _ := Mounts(t)
	if v2 == "" {
		need(t, "needs a cgroup2 mount")
	}
	return v2
}

// Freezer returns the v1 freezer's mount point, failing (CI) or skipping
// the test when there is none.
func Freezer(t testing.TB) string {
	t.Helper()
	_, f := Mounts(t)
	if f == "" {
		need(t, "needs the cgroup v1 freezer")
	}
	return f
}

func need(t testing.TB, reason string) {
	t.Helper()
	if testutil.Required() {
		t.Fatalf("integration test cannot run: %s (%s=1 forbids skipping)", reason, testutil.RequireEnv)
	}
	t.Skipf("skipping integration test: %s", reason)
}

// RandomID returns 64 lowercase hex characters, the form of a container id.
func RandomID(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// Create makes the cgroup path (and its missing parents) under mount. At
// cleanup it kills whatever is left in it and removes the directories it
// made. Parallel tests that share a parent should create it first from
// their common parent test: a directory is removed by the test that made
// it, and only once empty.
func Create(t testing.TB, mount, path string, v2 bool) cgroupctl.Cgroup {
	t.Helper()
	c := cgroupctl.Cgroup{Mount: mount, Path: path, V2: v2}
	var made []string
	for dir := c.Dir(); dir != mount && dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		made = append(made, dir)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := os.Stat(c.Dir()); err == nil {
			if err := c.Kill(ctx); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		for _, dir := range made { // deepest first
			if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) &&
				!errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.ENOTEMPTY) {
				t.Errorf("cleanup: remove cgroup %s: %v", dir, err)
			}
		}
	})
	if err := os.MkdirAll(c.Dir(), 0o755); err != nil {
		t.Fatalf("create cgroup %s: %v", c.Dir(), err)
	}
	return c
}

// Proc is a test process.
type Proc struct {
	Pid  int
	Done <-chan struct{} // closed when the process has exited and been reaped
	cmd  *exec.Cmd
}

// State returns how the process ended; valid once Done is closed.
func (p *Proc) State() *os.ProcessState { return p.cmd.ProcessState }

// Sleep starts `sleep 3600` and moves it into c. It is killed and reaped at
// cleanup.
func Sleep(t testing.TB, c cgroupctl.Cgroup) *Proc {
	t.Helper()
	cmd := exec.Command("sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	Move(t, c, cmd.Process.Pid)
	return &Proc{Pid: cmd.Process.Pid, Done: done, cmd: cmd}
}

// Move puts process pid into c.
func Move(t testing.TB, c cgroupctl.Cgroup, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.Dir(), "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatalf("move pid %d into %s: %v", pid, c.Dir(), err)
	}
}

// Status returns a field of /proc/<pid>/status ("State" gives e.g.
// "S (sleeping)").
func Status(pid int, field string) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("no " + field + " in /proc/" + strconv.Itoa(pid) + "/status")
}

// Wchan returns the kernel function the process sleeps in.
func Wchan(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/wchan")
	return string(b), err
}

// Eventually waits up to 10s for cond, failing t with what when it never
// holds.
func Eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	wait := time.Millisecond
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10s (last: %s)", what, last)
		}
		time.Sleep(wait) // polling a condition with a deadline, not synchronising on time
		wait = min(wait*2, 50*time.Millisecond)
	}
}

// StateIs is a condition for waiting (ok, and what was seen) that holds
// once pid's /proc status State starts with want ("T", "S", "D", ...).
func StateIs(pid int, want string) func() (bool, string) {
	return func() (bool, string) {
		s, err := Status(pid, "State")
		if err != nil {
			return false, err.Error()
		}
		return strings.HasPrefix(s, want), s
	}
}

// Exited is a condition for waiting that holds once p has exited.
func Exited(p *Proc) func() (bool, string) {
	return func() (bool, string) {
		select {
		case <-p.Done:
			return true, ""
		default:
			return false, "still running"
		}
	}
}
