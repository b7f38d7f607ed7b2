package docker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/cgroupctl"
	"github.com/riposte-sec/riposte/responders/contain"
)

// stateNote describes a container that is not running.
func stateNote(s *container.State) string {
	if s == nil {
		return "not running"
	}
	switch s.Status {
	case "created":
		return "never started"
	case "exited", "dead":
		return fmt.Sprintf("%s, exit code %d", s.Status, s.ExitCode)
	}
	return s.Status
}

// state returns info's State, nil when the daemon gave none.
func state(info container.InspectResponse) *container.State {
	if info.ContainerJSONBase == nil {
		return nil
	}
	return info.State
}

func running(info container.InspectResponse) bool {
	s := state(info)
	return s != nil && s.Running
}

func paused(info container.InspectResponse) bool {
	s := state(info)
	return s != nil && s.Paused
}

func restarting(info container.InspectResponse) bool {
	s := state(info)
	return s != nil && s.Restarting
}

var errRestarting = errors.New("container is restarting; try again once it runs")

func (r *Responder) pause(ctx context.Context, _ actions.Request, c target) (actions.Result, error) {
	settled := func(info container.InspectResponse) (actions.Result, bool) {
		switch {
		case paused(info):
			return actions.Result{Note: "already paused"}, true
		case !running(info) && !restarting(info):
			return actions.Result{Note: "not running (" + stateNote(state(info)) + "); nothing to pause"}, true
		}
		return actions.Result{}, false
	}
	if res, ok := settled(c.info); ok {
		return res, nil
	}
	if restarting(c.info) {
		return actions.Result{}, actions.Retryable(errRestarting)
	}
	if r.cfg.Pause == PauseFreezer {
		return r.freeze(ctx, c)
	}
	err := r.call(ctx, "pause", r.cfg.Timeouts.API, func(ctx context.Context) error { return r.api.ContainerPause(ctx, c.id) })
	if err != nil {
		return r.afterConflict(ctx, c, err, settled)
	}
	// The daemon answers once runc has frozen the cgroup: the container is
	// contained from here on (Unix ns, for the journal; settle comes after).
	pausedAt := time.Now()
	r.settle(ctx, c, paused)
	return actions.Result{Note: "paused", Detail: map[string]any{"frozen_at_ns": pausedAt.UnixNano()}}, nil
}

// settle waits, briefly, until the daemon's view of the container agrees
// with what an action just did. Docker applies containerd's pause and
// resume events to its state asynchronously, so an inspect right after the
// call can still show the old state (and a late event can briefly show it
// again); waiting here keeps the next action's idempotency checks (is it
// already paused?) truthful. Not reaching it is not an error: the call
// succeeded.
func (r *Responder) settle(ctx context.Context, c target, want func(container.InspectResponse) bool) {
	deadline := time.Now().Add(time.Second)
	for delay := time.Millisecond; time.Now().Before(deadline); delay = min(2*delay, 50*time.Millisecond) {
		info, err := r.reinspect(ctx, c)
		if err != nil || want(info) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
	r.log.Warn("docker state did not follow the action within 1s", "container", c.short())
}

func (r *Responder) unpause(ctx context.Context, _ actions.Request, c target) (actions.Result, error) {
	settled := func(info container.InspectResponse) (actions.Result, bool) {
		if !paused(info) {
			return actions.Result{Note: "not paused"}, true
		}
		return actions.Result{}, false
	}
	if !paused(c.info) && running(c.info) {
		// Frozen by the freezer path, which the daemon does not see (a
		// container's cgroup is frozen by nothing else but docker pause).
		if res, ok, err := r.thaw(ctx, c); ok || err != nil {
			return res, err
		}
	}
	if res, ok := settled(c.info); ok {
		return res, nil
	}
	err := r.call(ctx, "unpause", r.cfg.Timeouts.API, func(ctx context.Context) error { return r.api.ContainerUnpause(ctx, c.id) })
	if err != nil {
		return r.afterConflict(ctx, c, err, settled)
	}
	r.settle(ctx, c, func(info container.InspectResponse) bool { return !paused(info) })
	return actions.Result{Note: "unpaused"}, nil
}

func (r *Responder) stop(ctx context.Context, req actions.Request, c target) (actions.Result, error) {
	grace, err := req.Params.Duration("grace", DefaultGrace)
	if err != nil {
		return actions.Result{}, err
	}
	// Docker counts whole seconds; round up so a grace is never shortened.
	secs := int(math.Ceil(grace.Seconds()))
	settled := func(info container.InspectResponse) (actions.Result, bool) {
		if !running(info) && !restarting(info) {
			return actions.Result{Note: "already stopped (" + stateNote(state(info)) + ")"}, true
		}
		return actions.Result{}, false
	}
	if res, ok := settled(c.info); ok {
		return res, nil
	}
	timeout := time.Duration(secs)*time.Second + r.cfg.Timeouts.API
	err = r.call(ctx, "stop", timeout, func(ctx context.Context) error {
		return r.api.ContainerStop(ctx, c.id, container.StopOptions{Timeout: &secs})
	})
	if err != nil {
		return r.afterConflict(ctx, c, err, settled)
	}
	info, err := r.reinspect(ctx, c)
	if err != nil {
		return actions.Result{}, err
	}
	return actions.Result{
		Note:   fmt.Sprintf("stopped (%s)", stateNote(state(info))),
		Detail: map[string]any{"grace": (time.Duration(secs) * time.Second).String(), "exit_code": exitCode(info)},
	}, nil
}

func (r *Responder) kill(ctx context.Context, req actions.Request, c target) (actions.Result, error) {
	sig := DefaultSignal
	if v, ok := req.Params["signal"]; ok {
		s, err := actions.AsSignal(v)
		if err != nil {
			return actions.Result{}, fmt.Errorf("parameter signal: %w", err)
		}
		sig = s
	}
	settled := func(info container.InspectResponse) (actions.Result, bool) {
		if !running(info) && !restarting(info) {
			return actions.Result{Note: "already exited (" + stateNote(state(info)) + ")"}, true
		}
		return actions.Result{}, false
	}
	if res, ok := settled(c.info); ok {
		return res, nil
	}
	err := r.call(ctx, "send SIG"+sig, r.cfg.Timeouts.API, func(ctx context.Context) error { return r.api.ContainerKill(ctx, c.id, sig) })
	if err != nil {
		return r.afterConflict(ctx, c, err, settled)
	}
	detail := map[string]any{"signal": sig}
	if sig != "KILL" {
		// The process may handle or ignore the signal: report what was done.
		return actions.Result{Note: "sent SIG" + sig, Detail: detail}, nil
	}
	// SIGKILL cannot be caught: wait for the exit so the note is the truth.
	info, err := r.waitExit(ctx, c)
	if err != nil {
		return actions.Result{}, err
	}
	detail["exit_code"] = exitCode(info)
	if running(info) {
		return actions.Result{Note: "sent SIGKILL; still running (restart policy?)", Detail: detail}, nil
	}
	return actions.Result{Note: fmt.Sprintf("killed (%s)", stateNote(state(info))), Detail: detail}, nil
}

// waitExit waits (API timeout at most) until c is no longer running.
func (r *Responder) waitExit(ctx context.Context, c target) (container.InspectResponse, error) {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Timeouts.API)
	defer cancel()
	okC, errC := r.api.ContainerWait(wctx, c.id, container.WaitConditionNotRunning)
	select {
	case <-okC:
	case err := <-errC:
		if err != nil && !cerrdefs.IsNotFound(err) && ctx.Err() == nil && wctx.Err() == nil {
			return container.InspectResponse{}, r.classify(ctx, "wait for exit", err)
		}
	}
	info, err := r.reinspect(ctx, c)
	if errors.Is(err, actions.ErrNotFound) {
		// Removed on exit (--rm): killed all the same.
		return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{State: &container.State{Status: "removed"}}}, nil
	}
	return info, err
}

// afterConflict handles an action refused because the container changed
// state between the inspect and the call (exited, paused by someone else):
// when the container is now where the action wanted it, that is success.
func (r *Responder) afterConflict(ctx context.Context, c target, err error, settled func(container.InspectResponse) (actions.Result, bool)) (actions.Result, error) {
	if !cerrdefs.IsConflict(err) && !cerrdefs.IsNotFound(err) {
		return actions.Result{}, err
	}
	info, ierr := r.reinspect(ctx, c)
	if ierr != nil {
		return actions.Result{}, errors.Join(err, ierr)
	}
	if res, ok := settled(info); ok {
		return res, nil
	}
	return actions.Result{}, err
}

func exitCode(info container.InspectResponse) int {
	if s := state(info); s != nil {
		return s.ExitCode
	}
	return 0
}

// cgroupOf finds the cgroup to freeze a container by, from its init pid,
// the way the runtime-agnostic containment (responders/contain) finds it.
func (r *Responder) cgroupOf(c target) (cgroupctl.Cgroup, error) {
	s := state(c.info)
	if s == nil || s.Pid <= 0 {
		return cgroupctl.Cgroup{}, fmt.Errorf("find cgroup of %s: the daemon reports no process", c)
	}
	cg, err := contain.CgroupOf(r.proc, s.Pid)
	if err != nil {
		return cgroupctl.Cgroup{}, fmt.Errorf("find cgroup of %s: %w", c, err)
	}
	// The pid is the daemon's word from the inspect: if the container
	// exited since and the pid was reused, it names someone else's cgroup.
	// Docker's cgroups carry the full id (/docker/<id>, docker-<id>.scope).
	if !strings.Contains(cg.Path, c.id) {
		return cgroupctl.Cgroup{}, fmt.Errorf("find cgroup of %s: pid %d is in %s, not the container's cgroup (exited?)", c, s.Pid, cg)
	}
	if path.Base(cg.Path) == holdCgroup {
		// Parked by tellDocker (or left there by an interrupted one).
		cg.Path = path.Dir(cg.Path)
	}
	return cg, nil
}

// holdCgroup is the child cgroup (v1 freezer) in which the freezer path
// keeps a frozen container's processes while it tells the daemon.
const holdCgroup = "riposte-hold"

// freeze is container.pause's freezer path (Config.Pause): the container's
// cgroup frozen by this process, waited on until the kernel reports every
// task frozen. The cgroup is found again from the pid the guardrails'
// inspect returned, so it is the container they approved. Then, the
// container contained, the daemon is told (tellDocker), so that docker ps
// shows it paused and docker unpause resumes it.
//
// From the inspect cache the cgroup is known already (found when the
// container started); it is /docker/<id> for the container's whole life,
// restarts included, and the write fails if the directory went away, in
// which case Run starts again from a fresh inspect.
func (r *Responder) freeze(ctx context.Context, c target) (actions.Result, error) {
	cg := c.cg
	if cg.Mount == "" {
		var err error
		if cg, err = r.cgroupOf(c); err != nil {
			return actions.Result{}, err
		}
		r.cache.setCgroup(c.id, cg)
	}
	if frozen, err := cg.Frozen(); err == nil && frozen {
		return actions.Result{Note: "already frozen (cgroup freezer)", Detail: map[string]any{"via": "cgroup freezer", "cgroup": cg.String()}}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeouts.API)
	defer cancel()
	start := time.Now()
	if err := cg.Freeze(ctx); err != nil {
		return actions.Result{}, actions.Retryable(fmt.Errorf("pause %s: %w", c, err))
	}
	frozenAt := time.Now()
	res := actions.Result{Note: "frozen (cgroup freezer)", Detail: map[string]any{
		"via": "cgroup freezer", "cgroup": cg.String(), "frozen_us": frozenAt.Sub(start).Microseconds(),
		// When the kernel reported the cgroup frozen (Unix ns), for the
		// journal: exec -> frozen is measured from it.
		"frozen_at_ns": frozenAt.UnixNano(),
	}}
	if err := r.tellDocker(ctx, c, cg); err != nil {
		r.log.Warn("frozen, but the daemon was not told", "container", c.short(), "err", err)
		res.Note += "; the daemon was not told (docker ps shows it running; container.unpause thaws it)"
		res.Detail["docker"] = err.Error()
	} else {
		res.Note += "; paused in docker"
		res.Detail["docker"] = "paused"
	}
	return res, nil
}

// tellDocker makes the daemon pause a container whose cgroup the freezer
// path froze, without letting it run in between.
//
// runc (1.1) refuses to pause a container whose freezer cgroup reads
// FROZEN with freezer.self_freezing 1, and reads a cgroup frozen only
// through an ancestor as THAWED; but a v1 cgroup's state says nothing of
// its children. So: the frozen processes move into a child cgroup frozen
// itself (riposte-hold; they stay frozen), the container's cgroup is
// thawed (empty now, it reads THAWED), the daemon pauses it (runc freezes
// it, and the child with it), and the processes move back into it (frozen
// by runc now, so they stay frozen) before the child is removed. The
// processes never run; what could run in the gap between the thaw and
// runc's freeze is a process that joins the container's cgroup then (a
// docker exec), until runc's freeze stops it too. On any failure the
// container's cgroup is frozen again and the processes moved back: frozen
// as before, the daemon not told. Only on cgroup v1, and only when the
// container has no child cgroups of its own (thawing its cgroup would thaw
// them).
func (r *Responder) tellDocker(ctx context.Context, c target, cg cgroupctl.Cgroup) (err error) {
	if cg.V2 {
		return errors.New("not done on cgroup v2 (runc reads cgroup.freeze there)")
	}
	kids, err := cg.Children()
	if err != nil {
		return err
	}
	if kids = slices.DeleteFunc(kids, func(k string) bool { return k == holdCgroup }); len(kids) > 0 {
		return fmt.Errorf("the container's cgroup has child cgroups %v, which thawing it would thaw", kids)
	}
	hold := cg.Child(holdCgroup)
	if err := hold.Create(); err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		// Back to where the freeze left it: frozen itself, processes in it.
		err = errors.Join(err, cg.Freeze(ctx), hold.MoveProcs(ctx, cg), hold.Remove())
	}()
	if err := hold.Freeze(ctx); err != nil {
		return err
	}
	if err := cg.MoveProcs(ctx, hold); err != nil {
		return err
	}
	if err := cg.Thaw(ctx); err != nil {
		return err
	}
	err = r.call(ctx, "pause", r.cfg.Timeouts.API, func(ctx context.Context) error { return r.api.ContainerPause(ctx, c.id) })
	if err != nil && !cerrdefs.IsConflict(err) { // conflict: paused already
		return err
	}
	// From here the daemon's word stands: the daemon answers once runc has
	// frozen the cgroup, and should someone have unpaused it since (docker
	// unpause), the processes moving back are thawed with it, as they
	// asked; freezing it again here would overrule them.
	if err := hold.MoveProcs(ctx, cg); err != nil {
		return err
	}
	if err := hold.Remove(); err != nil {
		return err
	}
	r.settle(ctx, c, paused)
	return nil
}

// thaw undoes freeze when the daemon was not told (it reports the
// container running). ok is false when there is nothing of the freezer
// path to undo. Processes left in the hold cgroup (riposte stopped in the
// middle of tellDocker) move back into the container's cgroup and thaw
// with it.
func (r *Responder) thaw(ctx context.Context, c target) (actions.Result, bool, error) {
	cg, err := r.cgroupOf(c)
	if err != nil {
		return actions.Result{}, false, nil // nothing of ours to undo
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeouts.API)
	defer cancel()
	held := false
	if kids, err := cg.Children(); err == nil && slices.Contains(kids, holdCgroup) {
		hold := cg.Child(holdCgroup)
		if err := errors.Join(hold.MoveProcs(ctx, cg), hold.Remove()); err != nil {
			return actions.Result{}, false, actions.Retryable(fmt.Errorf("unpause %s: %w", c, err))
		}
		held = true
	}
	if frozen, err := cg.Frozen(); err != nil || !frozen {
		if held {
			return actions.Result{Note: "thawed (cgroup freezer)", Detail: map[string]any{"via": "cgroup freezer", "cgroup": cg.String()}}, true, nil
		}
		return actions.Result{}, false, nil
	}
	if err := cg.Thaw(ctx); err != nil {
		return actions.Result{}, false, actions.Retryable(fmt.Errorf("unpause %s: %w", c, err))
	}
	return actions.Result{Note: "thawed (cgroup freezer)", Detail: map[string]any{"via": "cgroup freezer", "cgroup": cg.String()}}, true, nil
}
