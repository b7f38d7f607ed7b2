package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/cgroupctl"
	"github.com/riposte-sec/riposte/internal/guard"
)

// API is the part of the Docker Engine API the responder calls.
// *client.Client implements it.
type API interface {
	ContainerInspectWithRaw(ctx context.Context, container string, getSize bool) (container.InspectResponse, []byte, error)
	ContainerPause(ctx context.Context, container string) error
	ContainerUnpause(ctx context.Context, container string) error
	ContainerStop(ctx context.Context, container string, options container.StopOptions) error
	ContainerKill(ctx context.Context, container, signal string) error
	ContainerWait(ctx context.Context, container string, condition container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerLogs(ctx context.Context, container string, options container.LogsOptions) (io.ReadCloser, error)
	ContainerTop(ctx context.Context, container string, arguments []string) (container.TopResponse, error)
	ContainerDiff(ctx context.Context, container string) ([]container.FilesystemChange, error)
	ContainerExport(ctx context.Context, container string) (io.ReadCloser, error)
	ContainerCommit(ctx context.Context, container string, options container.CommitOptions) (container.CommitResponse, error)
	NetworkConnect(ctx context.Context, network, container string, config *network.EndpointSettings) error
	NetworkDisconnect(ctx context.Context, network, container string, force bool) error
}

var _ API = (*client.Client)(nil)

// Deps are the responder's dependencies.
type Deps struct {
	// Docker is the daemon's API, usually from NewClient. Required; the
	// caller keeps ownership and closes it.
	Docker API
	// Logger receives one line per action; nil discards.
	Logger *slog.Logger
	// ProcSelf is the /proc directory of riposte's own process, read to
	// find the container riposte runs in; "" means /proc/self.
	ProcSelf string
	// Hostname is riposte's hostname, the last clue to its own container;
	// "" means os.Hostname().
	Hostname string
	// Events, when set (usually the same client as Docker), feeds the
	// inspect cache: New starts a goroutine that follows the daemon's
	// container events, and container.pause and container.kill on a
	// container id then skip the inspect before the call (see
	// inspectCache for why that is safe). Close stops it.
	Events Events
}

// Responder runs the container.* actions against one Docker daemon. It is
// safe for concurrent use; actions on the same container are serialised.
type Responder struct {
	cfg   Config
	api   API
	log   *slog.Logger
	self  selfIDs
	label guard.Label
	proc  string // the host's /proc: the freezer path finds cgroups there

	mu    sync.Mutex
	locks map[string]*containerLock

	events  Events
	cache   *inspectCache // nil without Deps.Events
	unwatch context.CancelFunc
	stopped chan struct{}
}

type containerLock struct {
	mu   sync.Mutex
	refs int
}

// New checks cfg, finds the container riposte itself runs in (if any) and
// returns a Responder.
func New(cfg Config, deps Deps) (*Responder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("docker responder config: %w", err)
	}
	if deps.Docker == nil {
		return nil, errors.New("docker responder: no Docker client")
	}
	cfg = cfg.withDefaults()
	var err error
	if cfg.EvidenceDir, err = filepath.Abs(cfg.EvidenceDir); err != nil {
		return nil, fmt.Errorf("docker responder: evidence dir: %w", err)
	}
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("docker responder: data dir: %w", err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	proc := deps.ProcSelf
	if proc == "" {
		proc = "/proc/self"
	}
	host := deps.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	self := detectSelf(readOrEmpty(filepath.Join(proc, "cgroup")), readOrEmpty(filepath.Join(proc, "mountinfo")), host)
	if cfg.Protect.SelfID != "" {
		self.prefixes = append(self.prefixes, cfg.Protect.SelfID)
	}
	r := &Responder{
		cfg:   cfg,
		api:   deps.Docker,
		log:   log.With("responder", "docker"),
		self:  self,
		label: guard.ParseLabel(cfg.Protect.Label),
		proc:  filepath.Dir(proc), // /proc/self's /proc
		locks: map[string]*containerLock{},
	}
	if !self.empty() {
		r.log.Info("riposte's own container is protected", "ids", self.prefixes, "source", self.source)
	}
	if deps.Events != nil {
		r.events = deps.Events
		r.cache = &inspectCache{byID: map[string]*cached{}, pending: map[string]chan struct{}{}}
		var ctx context.Context
		ctx, r.unwatch = context.WithCancel(context.Background())
		r.stopped = make(chan struct{})
		go func() { defer close(r.stopped); r.watch(ctx) }()
	}
	return r, nil
}

// Close stops the inspect cache's event watch, if any, and waits for it.
// It does not close the Docker client. Safe to call more than once.
func (r *Responder) Close() error {
	if r.unwatch != nil {
		r.unwatch()
		<-r.stopped
	}
	return nil
}

// Config returns the configuration in effect, defaults applied.
func (r *Responder) Config() Config { return r.cfg }

// Run runs one container.* action. The target is req.Container, or the
// alert's container.id when that is empty. A protected target is refused
// with an error wrapping actions.ErrProtected before anything runs; a
// missing one gives an error wrapping actions.ErrNotFound; an unreachable or
// failing daemon gives an error marked actions.Retryable.
func (r *Responder) Run(ctx context.Context, req actions.Request) (actions.Result, error) {
	op, ok := operationFor(req.Action)
	if !ok {
		return actions.Result{}, fmt.Errorf("docker responder: unknown action %q", req.Action)
	}
	ref, err := requestRef(req)
	if err != nil {
		return actions.Result{}, fmt.Errorf("%s container: %w", op.verb, err)
	}
	res, c, err := r.runOnce(ctx, req, op, ref, op.cacheable)
	if err != nil && c.cached && !errors.Is(err, actions.ErrProtected) && !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// The cached inspect may be stale (the container restarted or went
		// away and the event is still on its way): drop it and decide
		// again from what the daemon says now. The actions that use the
		// cache are idempotent, so running again is safe. A daemon that
		// did not answer in time is not asked twice.
		r.cache.drop(c.id)
		r.log.Info("retrying without the inspect cache", "action", req.Action, "id", c.short(), "err", err)
		res, _, err = r.runOnce(ctx, req, op, ref, false)
	}
	return res, err
}

// runOnce resolves ref (from the inspect cache when useCache and it holds
// ref), applies the guardrails and runs op.
func (r *Responder) runOnce(ctx context.Context, req actions.Request, op operation, ref string, useCache bool) (actions.Result, target, error) {
	c, err := r.resolve(ctx, ref, useCache)
	if err != nil {
		return actions.Result{}, c, fmt.Errorf("%s container %s: %w", op.verb, ref, err)
	}
	if reason := r.protectedReason(c.info); reason != "" {
		r.log.Warn("refused: container is protected", "action", req.Action, "container", c.name, "id", c.short(), "reason", reason, "actor", req.Actor)
		return actions.Result{}, c, fmt.Errorf("%s container %s: %w: %s", op.verb, c, actions.ErrProtected, reason)
	}
	unlock := r.lock(c.id)
	defer unlock()
	start := time.Now()
	res, err := op.run(r, ctx, req, c)
	if err != nil {
		r.log.Warn("action failed", "action", req.Action, "container", c.name, "id", c.short(), "actor", req.Actor, "cached", c.cached, "err", err)
		return actions.Result{}, c, fmt.Errorf("%s container %s: %w", op.verb, c, err)
	}
	if res.Detail == nil {
		res.Detail = map[string]any{}
	}
	res.Detail["container_id"] = c.id
	res.Detail["container_name"] = c.name
	r.log.Info("action done", "action", req.Action, "container", c.name, "id", c.short(), "actor", req.Actor, "note", res.Note, "cached", c.cached, "took", time.Since(start))
	return res, c, nil
}

// resolve finds the container ref names: in the inspect cache when useCache
// and it answers for ref, else by an inspect.
func (r *Responder) resolve(ctx context.Context, ref string, useCache bool) (target, error) {
	if useCache {
		e, ok := r.cache.get(ref)
		if done := r.cache.inflight(ref); !ok && done != nil {
			select {
			case <-done:
				e, ok = r.cache.get(ref)
			case <-ctx.Done():
			}
		}
		if ok {
			return target{ref: ref, id: e.info.ID, name: containerName(e.info), info: e.info, cg: e.cg, cached: true}, nil
		}
	}
	info, err := r.inspect(ctx, ref)
	if err != nil {
		return target{ref: ref}, err
	}
	return target{ref: ref, id: info.ID, name: containerName(info), info: info}, nil
}

// Protected reports whether the container ref may not be touched, and why.
// The engine and the Slack notifier ask it before offering an action; Run
// asks it again whatever the caller did.
func (r *Responder) Protected(ctx context.Context, ref string) (bool, string, error) {
	if err := checkRef(ref); err != nil {
		return false, "", fmt.Errorf("check container protection: %w", err)
	}
	c, err := r.resolve(ctx, ref, true)
	if err != nil {
		return false, "", fmt.Errorf("check container %s protection: %w", ref, err)
	}
	reason := r.protectedReason(c.info)
	return reason != "", reason, nil
}

type operation struct {
	verb string // for error messages: "pause container web: ..."
	run  func(r *Responder, ctx context.Context, req actions.Request, c target) (actions.Result, error)
	// cacheable: the action may start from the inspect cache. Only the
	// containment actions, which read no mutable state of the inspect
	// beyond "is it running" and handle a daemon that disagrees (409).
	cacheable bool
}

// operationFor returns how to run the action called name.
func operationFor(name string) (operation, bool) {
	switch name {
	case "container.pause":
		return operation{"pause", (*Responder).pause, true}, true
	case "container.unpause":
		return operation{"unpause", (*Responder).unpause, false}, true
	case "container.stop":
		return operation{"stop", (*Responder).stop, false}, true
	case "container.kill":
		return operation{"kill", (*Responder).kill, true}, true
	case "container.quarantine":
		return operation{"quarantine", (*Responder).quarantine, false}, true
	case "container.release":
		return operation{"release", (*Responder).release, false}, true
	case "container.snapshot":
		return operation{"snapshot", (*Responder).snapshot, false}, true
	}
	return operation{}, false
}

// target is the container an action works on, resolved once: every call
// after the first inspect uses the full id, so a name re-used meanwhile
// cannot redirect the action.
//
// A target from the inspect cache (cached) carries the inspect made when
// the container started: its State may be old news, which the actions that
// use the cache allow for.
type target struct {
	ref, id, name string
	info          container.InspectResponse
	cg            cgroupctl.Cgroup // the freezer path's cgroup, when the cache knew it
	cached        bool
}

func (c target) short() string { return shortID(c.id) }

func (c target) String() string {
	if c.name != "" {
		return fmt.Sprintf("%s (%s)", c.name, c.short())
	}
	return c.short()
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func containerName(info container.InspectResponse) string {
	if len(info.Name) > 0 && info.Name[0] == '/' {
		return info.Name[1:]
	}
	return info.Name
}

// refPattern is what Docker accepts as a container id, id prefix or name.
// Anything else is refused before it reaches a URL path.
var refPattern = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func checkRef(ref string) error {
	if ref == "" {
		return errors.New("no container given")
	}
	if len(ref) > 256 || !refPattern.MatchString(ref) {
		return fmt.Errorf("invalid container reference %q (want an id, a short id or a name)", ref)
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

// inspect resolves ref and classifies the failure.
func (r *Responder) inspect(ctx context.Context, ref string) (container.InspectResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.Timeouts.API)
	defer cancel()
	info, _, err := r.api.ContainerInspectWithRaw(cctx, ref, false)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return info, fmt.Errorf("%w on this docker host", actions.ErrNotFound)
		}
		return info, r.classify(ctx, "inspect", err)
	}
	if info.ContainerJSONBase == nil || info.ID == "" {
		return info, errors.New("inspect: the daemon returned no container")
	}
	return info, nil
}

// reinspect reads the state of a resolved container again.
func (r *Responder) reinspect(ctx context.Context, c target) (container.InspectResponse, error) {
	info, err := r.inspect(ctx, c.id)
	if err != nil {
		return info, fmt.Errorf("inspect again: %w", err)
	}
	return info, nil
}

// classify wraps a Docker API error: daemon unreachable, timeouts, 429 and
// 5xx are marked retryable; the rest (404, 409, other 4xx) are permanent.
// ctx is the caller's context: when the caller cancelled it the error is
// not retried; a deadline (the caller's or the per-call one) is.
func (r *Responder) classify(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		// The caller gave up (shutdown, operator ^C): nothing to retry.
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: no permission to use the docker API socket: %w", what, err)
	case client.IsErrConnectionFailed(err):
		return actions.Retryable(fmt.Errorf("%s: docker daemon unreachable: %w", what, err))
	case errors.Is(err, context.DeadlineExceeded):
		return actions.Retryable(fmt.Errorf("%s: docker daemon did not answer in time: %w", what, err))
	case cerrdefs.IsUnavailable(err), cerrdefs.IsInternal(err), cerrdefs.IsResourceExhausted(err),
		cerrdefs.IsUnknown(err), cerrdefs.IsDeadlineExceeded(err):
		return actions.Retryable(fmt.Errorf("%s: docker daemon error: %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// call runs one API call under the API timeout and classifies its error.
func (r *Responder) call(ctx context.Context, what string, timeout time.Duration, f func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := f(cctx); err != nil {
		return r.classify(ctx, what, err)
	}
	return nil
}

// lock serialises actions on one container within this Responder.
func (r *Responder) lock(id string) (unlock func()) {
	r.mu.Lock()
	l := r.locks[id]
	if l == nil {
		l = &containerLock{}
		r.locks[id] = l
	}
	l.refs++
	r.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		r.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(r.locks, id)
		}
		r.mu.Unlock()
	}
}

func readOrEmpty(name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil
	}
	return b
}
