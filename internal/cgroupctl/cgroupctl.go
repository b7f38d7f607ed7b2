package cgroupctl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Cgroup is one cgroup directory in one hierarchy.
type Cgroup struct {
	Mount string // mount point of the hierarchy, e.g. /sys/fs/cgroup/freezer
	Path  string // path inside it as /proc/<pid>/cgroup writes it, e.g. /docker/<id>
	V2    bool   // unified hierarchy; false: a v1 hierarchy with the freezer controller
}

// Dir is the cgroup's directory.
func (c Cgroup) Dir() string { return filepath.Join(c.Mount, c.Path) }

func (c Cgroup) String() string {
	if c.V2 {
		return "v2:" + c.Path
	}
	return "v1 freezer:" + c.Path
}

// check refuses the zero Cgroup and a hierarchy's root.
func (c Cgroup) check(action string) error {
	if c.Mount == "" {
		return fmt.Errorf("%s cgroup: no hierarchy mount point", action)
	}
	if p := filepath.Clean("/" + c.Path); p == "/" {
		return fmt.Errorf("%s cgroup %s: refusing the root cgroup (it holds the host)", action, c)
	}
	return nil
}

// Freeze stops every process of the cgroup and its descendants and waits
// until the kernel reports them frozen.
func (c Cgroup) Freeze(ctx context.Context) error { return c.setFrozen(ctx, true) }

// Thaw resumes the cgroup's processes and waits until the kernel reports it
// thawed.
func (c Cgroup) Thaw(ctx context.Context) error { return c.setFrozen(ctx, false) }

func (c Cgroup) setFrozen(ctx context.Context, frozen bool) error {
	action := map[bool]string{true: "freeze", false: "thaw"}[frozen]
	if err := c.check(action); err != nil {
		return err
	}
	var file, value string
	switch {
	case c.V2:
		file, value = "cgroup.freeze", map[bool]string{true: "1", false: "0"}[frozen]
	default:
		file, value = "freezer.state", map[bool]string{true: "FROZEN", false: "THAWED"}[frozen]
	}
	write := func() error {
		if err := os.WriteFile(filepath.Join(c.Dir(), file), []byte(value), 0); err != nil {
			return fmt.Errorf("%s cgroup %s: %w", action, c, err)
		}
		return nil
	}
	if err := write(); err != nil {
		return err
	}
	err := poll(ctx, func() (bool, error) {
		got, err := c.Frozen()
		if err != nil || got == frozen {
			return got == frozen, err
		}
		if !c.V2 && frozen {
			// A v1 freezer can stay FREEZING when a task was busy; the
			// kernel documentation says to write FROZEN again.
			return false, write()
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%s cgroup %s: wait for the kernel: %w", action, c, err)
	}
	return nil
}

// Frozen reports whether the kernel has finished freezing the cgroup (v2
// "frozen 1" in cgroup.events, v1 freezer.state FROZEN).
func (c Cgroup) Frozen() (bool, error) {
	if c.V2 {
		ev, err := c.events()
		return ev["frozen"] == "1", err
	}
	b, err := os.ReadFile(filepath.Join(c.Dir(), "freezer.state"))
	if err != nil {
		return false, fmt.Errorf("read freezer state of %s: %w", c, err)
	}
	return strings.TrimSpace(string(b)) == "FROZEN", nil
}

func (c Cgroup) events() (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir(), "cgroup.events"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup.events of %s: %w", c, err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			out[k] = v
		}
	}
	return out, nil
}

// Procs lists the processes of the cgroup and of its descendants.
func (c Cgroup) Procs() ([]int, error) {
	var pids []int
	err := filepath.WalkDir(c.Dir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != c.Dir() {
				return nil // a child cgroup removed while walking
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != c.Dir() {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid <= 0 {
				return fmt.Errorf("parse %s/cgroup.procs: bad pid %q", path, f)
			}
			pids = append(pids, pid)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list processes of cgroup %s: %w", c, err)
	}
	return pids, nil
}

// Kill kills every process of the cgroup and its descendants and waits until
// none is left: one write to cgroup.kill on a v2 kernel that has it (5.14+),
// else SIGKILL to every pid of cgroup.procs, again until the cgroup is
// empty (a fork can race a signal). A frozen v1 cgroup is thawed after the
// signals are sent, since its tasks cannot die frozen; a frozen v2 cgroup's
// tasks die without thawing.
func (c Cgroup) Kill(ctx context.Context) error {
	if err := c.check("kill"); err != nil {
		return err
	}
	if c.V2 {
		err := os.WriteFile(filepath.Join(c.Dir(), "cgroup.kill"), []byte("1"), 0)
		if err == nil {
			if err := poll(ctx, func() (bool, error) {
				ev, err := c.events()
				return err == nil && ev["populated"] == "0", err
			}); err != nil {
				return fmt.Errorf("kill cgroup %s: wait for it to empty: %w", c, err)
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("kill cgroup %s: %w", c, err)
		}
	}
	err := poll(ctx, func() (bool, error) {
		pids, err := c.Procs()
		if err != nil || len(pids) == 0 {
			return len(pids) == 0, err
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return false, fmt.Errorf("signal pid %d: %w", pid, err)
			}
		}
		if !c.V2 {
			if frozen, err := c.Frozen(); err == nil && frozen {
				if err := os.WriteFile(filepath.Join(c.Dir(), "freezer.state"), []byte("THAWED"), 0); err != nil {
					return false, fmt.Errorf("thaw to let signals land: %w", err)
				}
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("kill cgroup %s: %w", c, err)
	}
	return nil
}

// poll calls done until it reports true or fails, until ctx ends. A
// freeze is usually reported done within a scheduling round of the frozen
// tasks (tens of µs), so the first checks come soon. The Go runtime's
// timers cannot: its poller sleeps in whole milliseconds, so a 50µs timer
// fires after about 1.1ms when the process is otherwise idle, which put a
// millisecond on most freezes. So for the first millisecond poll naps the
// thread itself (nap: nanosleep, 50µs, then up to 200µs), leaving the CPU
// to the tasks being frozen; then it backs off with timers from 1ms to
// 50ms.
func poll(ctx context.Context, done func() (bool, error)) error {
	start := time.Now()
	short := 50 * time.Microsecond
	wait := time.Millisecond
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Since(start) < napFor {
			nap(short)
			short = min(short*2, 200*time.Microsecond)
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, 50*time.Millisecond)
	}
}

// napFor is how long poll naps before it sleeps on timers.
const napFor = time.Millisecond

// Paths are a process's cgroups in the hierarchies containment uses; a zero
// Cgroup (Mount "") means that hierarchy is not mounted or lists no path.
type Paths struct {
	Freezer Cgroup // v1 freezer hierarchy
	Unified Cgroup // v2 hierarchy
}

// Container picks the cgroup to contain a process by: the v1 freezer cgroup
// when the process is in a non-root one (Docker on a v1 or hybrid host),
// else its non-root v2 cgroup. It errs when both are roots: the process is
// a host process.
func (p Paths) Container() (Cgroup, error) {
	for _, c := range []Cgroup{p.Freezer, p.Unified} {
		if c.check("pick") == nil {
			return c, nil
		}
	}
	return Cgroup{}, errors.New("pick cgroup: the process is in no container cgroup (root of every hierarchy)")
}

// PathsOf reads /proc/<pid>/cgroup and /proc/self/mountinfo under procRoot
// ("/proc" normally).
func PathsOf(procRoot string, pid int) (Paths, error) {
	cg, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return Paths{}, fmt.Errorf("find cgroups of pid %d: %w", pid, err)
	}
	mi, err := os.ReadFile(filepath.Join(procRoot, "self", "mountinfo"))
	if err != nil {
		return Paths{}, fmt.Errorf("find cgroups of pid %d: %w", pid, err)
	}
	p, err := ParsePaths(cg, mi)
	if err != nil {
		return Paths{}, fmt.Errorf("find cgroups of pid %d: %w", pid, err)
	}
	return p, nil
}

// ParsePaths combines /proc/<pid>/cgroup content with /proc/self/mountinfo
// content. A hierarchy mounted with a non-root root (inside a cgroup
// namespace or a bind mount) is used only when the process's path lies
// under it.
func ParsePaths(procCgroup, mountinfo []byte) (Paths, error) {
	var freezerPath, v2Path string
	var haveFreezer, haveV2 bool
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, path, ok2 := strings.Cut(rest, ":")
		if _, err := strconv.Atoi(id); !ok1 || !ok2 || err != nil || !strings.HasPrefix(path, "/") {
			return Paths{}, fmt.Errorf("parse cgroup line %d: want ID:CONTROLLERS:/PATH, got %q", n, line)
		}
		if id == "0" && ctrls == "" {
			v2Path, haveV2 = path, true
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			if c == "freezer" {
				freezerPath, haveFreezer = path, true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Paths{}, fmt.Errorf("read cgroup file: %w", err)
	}
	var out Paths
	sc = bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		left, right, ok := strings.Cut(sc.Text(), " - ")
		lf, rf := strings.Fields(left), strings.Fields(right)
		if !ok || len(lf) < 5 || len(rf) < 3 {
			continue
		}
		root, mount := unescape(lf[3]), unescape(lf[4])
		switch {
		case rf[0] == "cgroup2" && haveV2 && out.Unified.Mount == "":
			if rel, ok := under(v2Path, root); ok {
				out.Unified = Cgroup{Mount: mount, Path: rel, V2: true}
			}
		case rf[0] == "cgroup" && haveFreezer && out.Freezer.Mount == "" && hasOpt(rf[2], "freezer"):
			if rel, ok := under(freezerPath, root); ok {
				out.Freezer = Cgroup{Mount: mount, Path: rel}
			}
		}
	}
	return out, sc.Err()
}

// under returns path relative to a mount whose root is root.
func under(path, root string) (string, bool) {
	if root == "/" {
		return path, true
	}
	if path == root {
		return "/", true
	}
	if rest, ok := strings.CutPrefix(path, root+"/"); ok {
		return "/" + rest, true
	}
	return "", false
}

func hasOpt(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Child is the cgroup name directly under c in the same hierarchy.
func (c Cgroup) Child(name string) Cgroup {
	return Cgroup{Mount: c.Mount, Path: filepath.Join(c.Path, name), V2: c.V2}
}

// Create makes the cgroup's directory; one that exists already is fine.
func (c Cgroup) Create() error {
	if err := c.check("create"); err != nil {
		return err
	}
	if err := os.Mkdir(c.Dir(), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create cgroup %s: %w", c, err)
	}
	return nil
}

// Remove removes the cgroup's directory, which must hold no process and no
// child cgroup; one that is gone already is fine.
func (c Cgroup) Remove() error {
	if err := c.check("remove"); err != nil {
		return err
	}
	if err := os.Remove(c.Dir()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove cgroup %s: %w", c, err)
	}
	return nil
}

// Children lists the names of the cgroups directly under c.
func (c Cgroup) Children() ([]string, error) {
	ents, err := os.ReadDir(c.Dir())
	if err != nil {
		return nil, fmt.Errorf("list child cgroups of %s: %w", c, err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// OwnProcs lists the processes of the cgroup itself, not of its children.
func (c Cgroup) OwnProcs() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir(), "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("list processes of cgroup %s: %w", c, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("parse %s/cgroup.procs: bad pid %q", c.Dir(), f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// MoveProcs moves every process of c itself (not of its children) into to,
// again until c holds none (a process may fork meanwhile), or ctx ends. A
// process that exits meanwhile is skipped. A process moved into a frozen
// cgroup is frozen; into a thawed one, thawed (v1 freezer semantics).
func (c Cgroup) MoveProcs(ctx context.Context, to Cgroup) error {
	if err := c.check("move processes of"); err != nil {
		return err
	}
	if err := to.check("move processes into"); err != nil {
		return err
	}
	target := filepath.Join(to.Dir(), "cgroup.procs")
	err := poll(ctx, func() (bool, error) {
		pids, err := c.OwnProcs()
		if err != nil || len(pids) == 0 {
			return len(pids) == 0, err
		}
		for _, pid := range pids {
			err := os.WriteFile(target, []byte(strconv.Itoa(pid)), 0)
			if err != nil && !errors.Is(err, syscall.ESRCH) {
				return false, fmt.Errorf("move pid %d: %w", pid, err)
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("move processes of cgroup %s into %s: %w", c, to, err)
	}
	return nil
}

// SelfFrozen reports, for a v1 freezer cgroup, whether it was frozen itself
// (freezer.self_freezing) rather than only through an ancestor.
func (c Cgroup) SelfFrozen() (bool, error) {
	if c.V2 {
		b, err := os.ReadFile(filepath.Join(c.Dir(), "cgroup.freeze"))
		if err != nil {
			return false, fmt.Errorf("read cgroup.freeze of %s: %w", c, err)
		}
		return strings.TrimSpace(string(b)) == "1", nil
	}
	b, err := os.ReadFile(filepath.Join(c.Dir(), "freezer.self_freezing"))
	if err != nil {
		return false, fmt.Errorf("read freezer.self_freezing of %s: %w", c, err)
	}
	return strings.TrimSpace(string(b)) == "1", nil
}
