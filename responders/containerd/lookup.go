package containerd

import (
	"context"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	cerrdefs "github.com/containerd/errdefs"
)

// Found is what containerd says about one container, for the detector's
// enrichment of containers Docker does not know.
type Found struct {
	Namespace string
	ID        string
	Name      string // namespace/pod/container, nerdctl's name, or ""
	Image     string
	Labels    map[string]string
	Pid       int // the task's init pid; 0 when it has no running task
	Running   bool
}

// Lookup finds the container with full id id in the configured
// namespaces, in order. found is false when none has it. It reads
// containerd only: no cgroup, no /proc.
func (r *Responder) Lookup(ctx context.Context, id string) (f Found, found bool, err error) {
	if err := checkRef(id); err != nil {
		return Found{}, false, fmt.Errorf("look up container: %w", err)
	}
	for _, ns := range r.cfg.Namespaces {
		nctx := namespaces.WithNamespace(ctx, ns)
		c, err := call(r, nctx, "load container", func(cctx context.Context) (containerd.Container, error) { return r.cli.LoadContainer(cctx, id) })
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return Found{}, false, fmt.Errorf("look up container %s in %s: %w", id, ns, err)
		}
		info, err := call(r, nctx, "read container", func(cctx context.Context) (containers.Container, error) {
			return c.Info(cctx, containerd.WithoutRefreshedMetadata)
		})
		if err != nil {
			return Found{}, false, fmt.Errorf("look up container %s in %s: %w", id, ns, err)
		}
		f := Found{Namespace: ns, ID: info.ID, Name: nameOf(info.Labels), Image: info.Image, Labels: info.Labels}
		task, err := call(r, nctx, "load task", func(cctx context.Context) (containerd.Task, error) { return c.Task(cctx, nil) })
		if err == nil {
			st, err := call(r, nctx, "task status", func(cctx context.Context) (containerd.Status, error) { return task.Status(cctx) })
			if err == nil && (st.Status == containerd.Running || st.Status == containerd.Paused || st.Status == containerd.Pausing) {
				f.Pid, f.Running = int(task.Pid()), true
			}
		}
		return f, true, nil
	}
	return Found{}, false, nil
}
