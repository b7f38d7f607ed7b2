package containerd

import (
	"context"
	"errors"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/riposte-sec/riposte/internal/actions"
)

// pause freezes the container through containerd's task API (unless the
// config says pause: freezer), so that
// containerd (and the kubelet, and Docker for namespace moby) know it is
// paused and can resume it; runc freezes the same cgroup. When containerd
// cannot (its shim refuses, an old runtime), the cgroup is frozen
// directly: containment first, bookkeeping second.
func (r *Responder) pause(ctx context.Context, t target) (actions.Result, error) {
	if t.task == nil || !t.Running() {
		return actions.Result{Note: "not running (" + stateOf(t) + "); nothing to pause"}, nil
	}
	if t.status == containerd.Paused {
		return actions.Result{Note: "already paused"}, nil
	}
	if frozen, err := t.Cgroup.Frozen(); err == nil && frozen {
		return actions.Result{Note: "already paused (cgroup frozen outside containerd)", Detail: map[string]any{"cgroup": t.Cgroup.String()}}, nil
	}
	if r.cfg.Pause == PauseFreezer {
		res, err := r.contain.Pause(ctx, t.Target)
		if err == nil {
			res.Detail["via"] = "cgroup"
		}
		return res, err
	}
	_, err := call(r, ctx, "pause task", func(cctx context.Context) (struct{}, error) { return struct{}{}, t.task.Pause(cctx) })
	if err == nil {
		frozen, ferr := t.Cgroup.Frozen()
		if ferr != nil || !frozen {
			return actions.Result{}, fmt.Errorf("containerd paused the task but its cgroup %s is not frozen (%v)", t.Cgroup, ferr)
		}
		return actions.Result{Note: "paused", Detail: map[string]any{"cgroup": t.Cgroup.String(), "via": "containerd"}}, nil
	}
	if actions.IsRetryable(err) || ctx.Err() != nil {
		return actions.Result{}, err
	}
	r.log.Warn("containerd did not pause the task; freezing its cgroup directly", "container", t.String(), "err", err)
	res, cerr := r.contain.Pause(ctx, t.Target)
	if cerr != nil {
		return actions.Result{}, errors.Join(err, cerr)
	}
	res.Note += fmt.Sprintf("; containerd refused (%v), so it still reports the task %s", err, t.status)
	res.Detail["via"] = "cgroup"
	return res, nil
}

// unpause resumes a task containerd paused, or thaws a cgroup frozen
// outside containerd (by pause's fallback or another tool).
func (r *Responder) unpause(ctx context.Context, t target) (actions.Result, error) {
	if t.task == nil || !t.Running() {
		return actions.Result{Note: "not running (" + stateOf(t) + "); nothing to unpause"}, nil
	}
	if t.status == containerd.Paused || t.status == containerd.Pausing {
		_, err := call(r, ctx, "resume task", func(cctx context.Context) (struct{}, error) { return struct{}{}, t.task.Resume(cctx) })
		if err != nil {
			return actions.Result{}, err
		}
		return actions.Result{Note: "unpaused", Detail: map[string]any{"cgroup": t.Cgroup.String(), "via": "containerd"}}, nil
	}
	if frozen, err := t.Cgroup.Frozen(); err == nil && frozen {
		res, err := r.contain.Unpause(ctx, t.Target)
		if err == nil {
			res.Detail["via"] = "cgroup"
		}
		return res, err
	}
	return actions.Result{Note: "not paused"}, nil
}

func stateOf(t target) string {
	if t.task == nil {
		return "no task"
	}
	return string(t.status)
}
