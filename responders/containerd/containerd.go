package containerd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	cerrdefs "github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/responders/contain"
)

// The CRI plugin's labels on the containers it creates; pod labels are
// copied beside them.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
	LabelNerdctlName   = "nerdctl/name"
)

// Deps are the responder's dependencies.
type Deps struct {
	// Client is containerd's API, usually from NewClient. Required; the
	// caller keeps ownership and closes it.
	Client *containerd.Client
	// Logger receives one line per action; nil discards.
	Logger *slog.Logger
	// ProcRoot is the host's /proc, read to find a task's cgroup from its
	// init pid; "" means /proc.
	ProcRoot string
}

// Responder runs the containerd.* actions against one containerd. It is
// safe for concurrent use; actions on the same container are serialised.
type Responder struct {
	cfg     Config
	cli     *containerd.Client
	log     *slog.Logger
	contain *contain.Container
	proc    string
	allow   []netip.Prefix // containerd.quarantine's allow-list

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	refs  map[string]int
}

// NewClient returns a client for cfg.Address. It does not connect: the
// first call does, so riposte starts while containerd is down. The caller
// closes it after the Responder built on it is no longer used.
func NewClient(cfg Config) (*containerd.Client, error) {
	cfg = cfg.withDefaults()
	cli, err := containerd.New(cfg.Address, containerd.WithTimeout(cfg.Timeouts.API))
	if err != nil {
		return nil, fmt.Errorf("containerd client for %s: %w", cfg.Address, err)
	}
	return cli, nil
}

// New checks cfg and returns a Responder.
func New(cfg Config, deps Deps) (*Responder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("containerd responder config: %w", err)
	}
	if deps.Client == nil {
		return nil, errors.New("containerd responder: no containerd client")
	}
	cfg = cfg.withDefaults()
	var err error
	if cfg.EvidenceDir, err = filepath.Abs(cfg.EvidenceDir); err != nil {
		return nil, fmt.Errorf("containerd responder: evidence dir: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("responder", "containerd")
	c, err := contain.New(cfg.guard(), log)
	if err != nil {
		return nil, fmt.Errorf("containerd responder config: %w", err)
	}
	proc := deps.ProcRoot
	if proc == "" {
		proc = "/proc"
	}
	allow, err := parseAllow(cfg.Quarantine.Allow)
	if err != nil {
		return nil, fmt.Errorf("containerd responder config: %w", err)
	}
	return &Responder{cfg: cfg, cli: deps.Client, log: log, contain: c, proc: proc, allow: allow,
		locks: map[string]*sync.Mutex{}, refs: map[string]int{}}, nil
}

// Config returns the configuration in effect, defaults applied.
func (r *Responder) Config() Config { return r.cfg }

// target is a container resolved once: every later call uses its
// namespace and full id, so a name re-used meanwhile cannot redirect the
// action.
type target struct {
	contain.Target
	c      containerd.Container
	info   containers.Container
	task   containerd.Task // nil when the container has none
	status containerd.ProcessStatus
	ctx    context.Context // in the container's namespace
}

// Run runs one containerd.* action. The target is req.Container, or the
// alert's container.id (else container.name). A protected target is
// refused with an error wrapping actions.ErrProtected before anything
// changes; a missing one gives an error wrapping actions.ErrNotFound;
// containerd unreachable or timing out gives an error marked
// actions.Retryable.
func (r *Responder) Run(ctx context.Context, req actions.Request) (actions.Result, error) {
	verb, ok := strings.CutPrefix(req.Action, "containerd.")
	if !ok || !knownVerb[verb] {
		return actions.Result{}, fmt.Errorf("containerd responder: unknown action %q", req.Action)
	}
	ref, err := requestRef(req)
	if err != nil {
		return actions.Result{}, fmt.Errorf("%s container: %w", verb, err)
	}
	t, err := r.resolve(ctx, ref)
	if err != nil {
		return actions.Result{}, fmt.Errorf("%s container %s: %w", verb, ref, err)
	}
	if err := r.contain.Refuse(verb, t.Target); err != nil {
		return actions.Result{}, err
	}
	ctx = namespaces.WithNamespace(ctx, t.Namespace)
	unlock := r.lock(t.Namespace + "/" + t.ID)
	defer unlock()
	start := time.Now()
	var res actions.Result
	switch verb {
	case "pause":
		res, err = r.pause(ctx, t)
	case "unpause":
		res, err = r.unpause(ctx, t)
	case "kill":
		res, err = r.kill(ctx, req, t)
	case "snapshot":
		res, err = r.snapshot(ctx, req, t)
	case "quarantine":
		res, err = r.quarantine(ctx, req, t)
	case "release":
		res, err = r.release(ctx, req, t)
	}
	if err != nil {
		r.log.Warn("action failed", "action", req.Action, "namespace", t.Namespace, "container", t.String(), "actor", req.Actor, "err", err)
		if errors.Is(err, actions.ErrProtected) {
			return actions.Result{}, err
		}
		return actions.Result{}, fmt.Errorf("%s container %s: %w", verb, t, err)
	}
	if res.Detail == nil {
		res.Detail = map[string]any{}
	}
	for k, v := range t.detail() {
		res.Detail[k] = v
	}
	r.log.Info("action done", "action", req.Action, "namespace", t.Namespace, "container", t.String(), "actor", req.Actor, "note", res.Note, "took", time.Since(start))
	return res, nil
}

var knownVerb = map[string]bool{"pause": true, "unpause": true, "kill": true, "snapshot": true, "quarantine": true, "release": true}

// Protected reports whether the container ref may not be touched, and why.
func (r *Responder) Protected(ctx context.Context, ref string) (bool, string, error) {
	if err := checkRef(ref); err != nil {
		return false, "", fmt.Errorf("check container protection: %w", err)
	}
	t, err := r.resolve(ctx, ref)
	if err != nil {
		return false, "", fmt.Errorf("check container %s protection: %w", ref, err)
	}
	reason := r.cfg.guard().Reason(t.Target)
	return reason != "", reason, nil
}

func (r *Responder) kill(ctx context.Context, req actions.Request, t target) (actions.Result, error) {
	name := DefaultSignal
	if v, ok := req.Params["signal"]; ok {
		s, err := actions.AsSignal(v)
		if err != nil {
			return actions.Result{}, fmt.Errorf("parameter signal: %w", err)
		}
		name = s
	}
	sig := unix.SignalNum("SIG" + name)
	if sig == 0 {
		return actions.Result{}, fmt.Errorf("parameter signal: unknown signal %q", name)
	}
	res, err := r.contain.Signal(ctx, t.Target, sig)
	if err != nil || sig != syscall.SIGKILL || !t.Running() {
		return res, err
	}
	// The cgroup is empty; wait for containerd to see the task exit, so
	// that the note (and the next action) tell the truth.
	task := t.task
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Timeouts.API)
	defer cancel()
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		st, err := task.Status(wctx)
		if err != nil || st.Status == containerd.Stopped {
			if err == nil {
				res.Detail["exit_status"] = st.ExitStatus
			}
			return res, nil
		}
		select {
		case <-wctx.Done():
			r.log.Warn("containerd did not report the task stopped in time", "container", t.String())
			return res, nil
		case <-time.After(delay):
		}
	}
}

// refPattern is what a container reference may look like: a containerd id
// (CRI's 64 hex, or any id made by other clients), a prefix of one, a name
// namespace/pod/container, or "<containerd namespace>:<ref>".
var refPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.:/-]*$`)

func checkRef(ref string) error {
	if ref == "" {
		return errors.New("no container given")
	}
	if len(ref) > 256 || !refPattern.MatchString(ref) {
		return fmt.Errorf("invalid container reference %q (want an id, a short id, a name or namespace:id)", ref)
	}
	return nil
}

// requestRef picks the target of req: its Container, else the alert's
// container.id, else its container.name.
func requestRef(req actions.Request) (string, error) {
	ref, err := req.ContainerRef()
	if err != nil {
		return "", err
	}
	return ref, checkRef(ref)
}

var hexPrefix = regexp.MustCompile(`^[0-9a-f]{12,64}$`)

// resolve finds ref in the configured namespaces: by exact id first, then
// (a hex prefix of 12 or more) by unique id prefix, then by name. A ref
// that matches in two places is refused as ambiguous: acting on the wrong
// container is worse than not acting.
func (r *Responder) resolve(ctx context.Context, ref string) (target, error) {
	spaces := r.cfg.Namespaces
	if ns, id, ok := strings.Cut(ref, ":"); ok {
		if !namespacePattern.MatchString(ns) || !containsString(spaces, ns) {
			return target{}, fmt.Errorf("namespace %q is not one riposte searches (containerd.namespaces: %v)", ns, spaces)
		}
		spaces, ref = []string{ns}, id
	}
	var found []target
	for _, ns := range spaces {
		nctx := namespaces.WithNamespace(ctx, ns)
		c, err := call(r, ctx, "load container", func(cctx context.Context) (containerd.Container, error) {
			return r.cli.LoadContainer(namespaces.WithNamespace(cctx, ns), ref)
		})
		if err == nil {
			t, err := r.describe(nctx, ns, c)
			if err != nil {
				return target{}, err
			}
			found = append(found, t)
			continue
		}
		if !cerrdefs.IsNotFound(err) {
			return target{}, err
		}
	}
	if len(found) == 0 {
		var err error
		found, err = r.search(ctx, spaces, ref)
		if err != nil {
			return target{}, err
		}
	}
	switch len(found) {
	case 0:
		return target{}, fmt.Errorf("%w in containerd namespaces %s", actions.ErrNotFound, strings.Join(spaces, ", "))
	case 1:
		return found[0], nil
	}
	var where []string
	for _, t := range found {
		where = append(where, t.Namespace+":"+t.ID)
	}
	sort.Strings(where)
	return target{}, fmt.Errorf("ambiguous reference: it matches %s", strings.Join(where, ", "))
}

// search lists the namespaces' containers for an id prefix or a name.
func (r *Responder) search(ctx context.Context, spaces []string, ref string) ([]target, error) {
	var found []target
	for _, ns := range spaces {
		nctx := namespaces.WithNamespace(ctx, ns)
		list, err := call(r, ctx, "list containers", func(cctx context.Context) ([]containers.Container, error) {
			return r.cli.ContainerService().List(namespaces.WithNamespace(cctx, ns))
		})
		if err != nil {
			return nil, err
		}
		for _, info := range list {
			byID := hexPrefix.MatchString(ref) && strings.HasPrefix(info.ID, ref)
			if !byID && (ref == "" || nameOf(info.Labels) != ref) {
				continue
			}
			c, err := call(r, ctx, "load container", func(cctx context.Context) (containerd.Container, error) {
				return r.cli.LoadContainer(namespaces.WithNamespace(cctx, ns), info.ID)
			})
			if cerrdefs.IsNotFound(err) {
				continue // removed meanwhile
			}
			if err != nil {
				return nil, err
			}
			t, err := r.describe(nctx, ns, c)
			if err != nil {
				return nil, err
			}
			found = append(found, t)
		}
	}
	return found, nil
}

// describe reads what the guard and the journal need: labels, image, name,
// and the task's cgroup when it runs.
func (r *Responder) describe(ctx context.Context, ns string, c containerd.Container) (target, error) {
	info, err := call(r, ctx, "read container", func(cctx context.Context) (containers.Container, error) {
		return c.Info(cctx, containerd.WithoutRefreshedMetadata)
	})
	if err != nil {
		return target{}, err
	}
	t := target{c: c, info: info, ctx: ctx, Target: contain.Target{
		Runtime: "containerd", Namespace: ns, ID: info.ID, Name: nameOf(info.Labels), Image: info.Image, Labels: info.Labels,
	}}
	task, err := call(r, ctx, "load task", func(cctx context.Context) (containerd.Task, error) { return c.Task(cctx, nil) })
	if cerrdefs.IsNotFound(err) {
		return t, nil // created, never started or deleted: no cgroup
	}
	if err != nil {
		return target{}, err
	}
	st, err := call(r, ctx, "task status", func(cctx context.Context) (containerd.Status, error) { return task.Status(cctx) })
	if err != nil && !cerrdefs.IsNotFound(err) {
		return target{}, err
	}
	if err != nil {
		return t, nil
	}
	t.task, t.status = task, st.Status
	if st.Status == containerd.Stopped || st.Status == containerd.Created || task.Pid() == 0 {
		return t, nil
	}
	cg, err := contain.CgroupOf(r.proc, int(task.Pid()))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// The task ended between the status and the read of /proc, or
			// riposte does not see the host's pids (no hostPID).
			return target{}, fmt.Errorf("find the cgroup of task pid %d (does riposte see the host's /proc?): %w", task.Pid(), err)
		}
		return target{}, err
	}
	t.Cgroup = cg
	return t, nil
}

// nameOf is a container's human name from its labels: namespace/pod/
// container for a CRI container, nerdctl's name, or "".
func nameOf(labels map[string]string) string {
	pod, podNS, ctr := labels[LabelPodName], labels[LabelPodNamespace], labels[LabelContainerName]
	switch {
	case pod != "" && podNS != "" && ctr != "":
		return podNS + "/" + pod + "/" + ctr
	case pod != "" && podNS != "":
		return podNS + "/" + pod // the pod's sandbox (pause) container
	}
	return labels[LabelNerdctlName]
}

// detail is what the journal records about the target.
func (t target) detail() map[string]any {
	d := map[string]any{"container_id": t.ID, "containerd_namespace": t.Namespace, "image": t.Image}
	if t.Name != "" {
		d["container_name"] = t.Name
	}
	for label, key := range map[string]string{LabelPodName: "pod_name", LabelPodNamespace: "pod_namespace", LabelPodUID: "pod_uid"} {
		if v := t.Labels[label]; v != "" {
			d[key] = v
		}
	}
	return d
}

// call runs one API call under the API timeout and classifies its error.
func call[T any](r *Responder, ctx context.Context, what string, f func(ctx context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.Timeouts.API)
	defer cancel()
	v, err := f(cctx)
	if err != nil {
		return v, r.classify(ctx, what, err)
	}
	return v, nil
}

// classify wraps a containerd error: unreachable, timeouts and
// unavailable are retryable; not found keeps errdefs' class; the rest are
// permanent.
func (r *Responder) classify(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Errorf("%s: %w", what, err)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, fs.ErrPermission), cerrdefs.IsPermissionDenied(err):
		return fmt.Errorf("%s: no permission to use containerd's socket %s: %w", what, r.cfg.Address, err)
	case errors.Is(err, context.DeadlineExceeded), cerrdefs.IsDeadlineExceeded(err):
		return actions.Retryable(fmt.Errorf("%s: containerd did not answer in time: %w", what, err))
	case cerrdefs.IsUnavailable(err), cerrdefs.IsInternal(err), cerrdefs.IsUnknown(err), cerrdefs.IsResourceExhausted(err):
		return actions.Retryable(fmt.Errorf("%s: containerd at %s unavailable: %w", what, r.cfg.Address, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// lock serialises actions on one container within this Responder.
func (r *Responder) lock(key string) (unlock func()) {
	r.mu.Lock()
	l := r.locks[key]
	if l == nil {
		l = &sync.Mutex{}
		r.locks[key] = l
	}
	r.refs[key]++
	r.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		r.mu.Lock()
		if r.refs[key]--; r.refs[key] == 0 {
			delete(r.refs, key)
			delete(r.locks, key)
		}
		r.mu.Unlock()
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
