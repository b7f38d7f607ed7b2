package contain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/cgroupctl"
	"github.com/riposte-sec/riposte/internal/guard"
)

// Target is a container as its runtime describes it, and the cgroup its
// processes live in.
type Target struct {
	Runtime   string // "containerd", for messages
	Namespace string // the runtime's namespace ("k8s.io", "moby"); "" when it has none
	ID        string
	Name      string // a human name (pod/container for Kubernetes); "" when the runtime has none
	Image     string
	Labels    map[string]string
	// Cgroup is where the container's processes live (CgroupOf finds it
	// from the init pid); a zero Cgroup when the container is not running.
	Cgroup cgroupctl.Cgroup
}

func (t Target) String() string {
	id := t.ID
	if len(id) > 12 {
		id = id[:12]
	}
	if t.Name != "" {
		return fmt.Sprintf("%s (%s)", t.Name, id)
	}
	return id
}

// Running reports whether the target has a cgroup to act on.
func (t Target) Running() bool { return t.Cgroup.Mount != "" }

// CgroupOf finds the cgroup to contain a container by, from its init
// process: the v1 freezer cgroup when there is one, else the v2 cgroup.
// procRoot is "/proc" normally.
func CgroupOf(procRoot string, pid int) (cgroupctl.Cgroup, error) {
	if pid <= 0 {
		return cgroupctl.Cgroup{}, fmt.Errorf("find cgroup: bad pid %d", pid)
	}
	p, err := cgroupctl.PathsOf(procRoot, pid)
	if err != nil {
		return cgroupctl.Cgroup{}, err
	}
	c, err := p.Container()
	if err != nil {
		return cgroupctl.Cgroup{}, fmt.Errorf("find cgroup of pid %d: %w", pid, err)
	}
	return c, nil
}

// Guard says which containers may not be touched.
type Guard struct {
	// Label is the protect label ("riposte.protect=true"); "" protects
	// nothing by label.
	Label string
	// Names are glob patterns (path.Match) over Target.Name.
	Names []string
	// Images are glob patterns over Target.Image, as given and without its
	// tag or digest.
	Images []string
	// Self are riposte's own cgroups: a target whose cgroup holds them is
	// riposte's own container (or a pod around it), and freezing it would
	// freeze riposte. New reads them from /proc/self when left zero.
	Self cgroupctl.Paths
}

// Check reports every bad pattern in g, joined.
func (g Guard) Check() error {
	var errs []error
	if g.Label != "" {
		if k, _, _ := strings.Cut(g.Label, "="); strings.TrimSpace(k) == "" {
			errs = append(errs, fmt.Errorf("protect.label: want key=value or key, got %q", g.Label))
		}
	}
	for i, p := range g.Names {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			errs = append(errs, fmt.Errorf("protect.names[%d]: bad glob pattern %q", i, p))
		}
	}
	for i, p := range g.Images {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			errs = append(errs, fmt.Errorf("protect.images[%d]: bad glob pattern %q", i, p))
		}
	}
	return errors.Join(errs...)
}

// Reason says why t may not be touched, or "" when it may.
func (g Guard) Reason(t Target) string {
	for _, own := range []cgroupctl.Cgroup{g.Self.Freezer, g.Self.Unified} {
		if own.Mount == "" || own.Mount != t.Cgroup.Mount || own.V2 != t.Cgroup.V2 {
			continue
		}
		tp := strings.TrimSuffix(t.Cgroup.Path, "/")
		if own.Path == t.Cgroup.Path || strings.HasPrefix(own.Path, tp+"/") {
			return "its cgroup " + t.Cgroup.String() + " holds riposte itself"
		}
	}
	if guard.ParseLabel(g.Label).Matches(t.Labels) {
		return "label " + g.Label
	}
	for _, p := range g.Names {
		if ok, _ := path.Match(p, t.Name); ok && t.Name != "" {
			return fmt.Sprintf("name %q matches protected name %q", t.Name, p)
		}
	}
	if t.Image != "" {
		repo := imageRepo(t.Image)
		for _, p := range g.Images {
			for _, c := range []string{t.Image, repo} {
				if ok, _ := path.Match(p, c); ok {
					return fmt.Sprintf("image %q matches protected image %q", t.Image, p)
				}
			}
		}
	}
	return ""
}

// imageRepo is an image reference without its tag or digest:
// docker.io/library/postgres:15 → docker.io/library/postgres.
func imageRepo(image string) string {
	rest, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		return rest[:i]
	}
	return rest
}

// Container acts on targets through their cgroups.
type Container struct {
	guard Guard
	log   *slog.Logger
}

// New returns a Container that refuses what g protects; a nil logger
// discards.
func New(g Guard, log *slog.Logger) (*Container, error) {
	if err := g.Check(); err != nil {
		return nil, fmt.Errorf("container guard: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if g.Self == (cgroupctl.Paths{}) {
		// Unreadable (no /proc): no cgroup to recognise; the runtime's own
		// checks still apply.
		g.Self, _ = cgroupctl.PathsOf("/proc", os.Getpid())
	}
	return &Container{guard: g, log: log}, nil
}

// Refuse returns an error wrapping actions.ErrProtected when t is
// protected, nil when it may be acted on. verb names the action for the
// message ("pause").
func (c *Container) Refuse(verb string, t Target) error {
	if reason := c.guard.Reason(t); reason != "" {
		c.log.Warn("refused: container is protected", "runtime", t.Runtime, "namespace", t.Namespace, "container", t.String(), "action", verb, "reason", reason)
		return fmt.Errorf("%s container %s: %w: %s", verb, t, actions.ErrProtected, reason)
	}
	return nil
}

// Pause freezes every process of t and waits until the kernel reports the
// cgroup frozen. A frozen container is left as it is, a stopped one has
// nothing to pause: both succeed with a note saying so.
func (c *Container) Pause(ctx context.Context, t Target) (actions.Result, error) {
	if err := c.Refuse("pause", t); err != nil {
		return actions.Result{}, err
	}
	if !t.Running() {
		return actions.Result{Note: "not running; nothing to pause"}, nil
	}
	if frozen, err := t.Cgroup.Frozen(); err == nil && frozen {
		return c.done(t, "pause", actions.Result{Note: "already paused"}), nil
	}
	if err := t.Cgroup.Freeze(ctx); err != nil {
		return actions.Result{}, fmt.Errorf("pause container %s: %w", t, err)
	}
	return c.done(t, "pause", actions.Result{Note: "paused (cgroup frozen)"}), nil
}

// Unpause thaws t's cgroup.
func (c *Container) Unpause(ctx context.Context, t Target) (actions.Result, error) {
	if err := c.Refuse("unpause", t); err != nil {
		return actions.Result{}, err
	}
	if !t.Running() {
		return actions.Result{Note: "not running; nothing to unpause"}, nil
	}
	if frozen, err := t.Cgroup.Frozen(); err == nil && !frozen {
		return c.done(t, "unpause", actions.Result{Note: "not paused"}), nil
	}
	if err := t.Cgroup.Thaw(ctx); err != nil {
		return actions.Result{}, fmt.Errorf("unpause container %s: %w", t, err)
	}
	return c.done(t, "unpause", actions.Result{Note: "unpaused (cgroup thawed)"}), nil
}

// Signal sends sig to every process of t's cgroup. SIGKILL kills them all
// and waits until the cgroup is empty (a fork racing the signal is killed
// too, and a frozen cgroup's processes die); any other signal is sent once
// to each process, which may handle or ignore it.
func (c *Container) Signal(ctx context.Context, t Target, sig syscall.Signal) (actions.Result, error) {
	if err := c.Refuse("kill", t); err != nil {
		return actions.Result{}, err
	}
	detail := map[string]any{"signal": sig.String()}
	if !t.Running() {
		return actions.Result{Note: "not running; nothing to kill", Detail: detail}, nil
	}
	pids, err := t.Cgroup.Procs()
	if err != nil {
		return actions.Result{}, fmt.Errorf("kill container %s: %w", t, err)
	}
	detail["pids"] = pids
	if sig == syscall.SIGKILL {
		if err := t.Cgroup.Kill(ctx); err != nil {
			return actions.Result{}, fmt.Errorf("kill container %s: %w", t, err)
		}
		return c.done(t, "kill", actions.Result{Note: fmt.Sprintf("killed %d processes; the cgroup is empty", len(pids)), Detail: detail}), nil
	}
	var errs []error
	sent := 0
	for _, pid := range pids {
		switch err := syscall.Kill(pid, sig); {
		case err == nil:
			sent++
		case !errors.Is(err, syscall.ESRCH): // one that exited meanwhile is fine
			errs = append(errs, fmt.Errorf("signal pid %d: %w", pid, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return actions.Result{}, fmt.Errorf("kill container %s: %w", t, err)
	}
	return c.done(t, "kill", actions.Result{Note: fmt.Sprintf("sent %s to %d processes", sig, sent), Detail: detail}), nil
}

func (c *Container) done(t Target, verb string, res actions.Result) actions.Result {
	if res.Detail == nil {
		res.Detail = map[string]any{}
	}
	res.Detail["cgroup"] = t.Cgroup.String()
	c.log.Info("action done", "runtime", t.Runtime, "namespace", t.Namespace, "container", t.String(), "action", verb, "note", res.Note)
	return res
}
