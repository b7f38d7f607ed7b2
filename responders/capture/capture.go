package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

// ActionStart is the action this responder runs.
const ActionStart = "capture.start"

// Events is where syscall events come from: the detector's per-container
// subscription. *detector.Detector implements it; a nil *detector.Detector
// must not be passed (leave Events nil when the detector is off).
type Events interface {
	Subscribe(containerID string, buf int) (<-chan event.Event, func())
}

// LossCounter is optionally implemented by Events: the detector's counters
// of lost events, whose growth while a capture runs goes into its trailer.
// *detector.Detector implements it.
type LossCounter interface {
	Losses() (queue, subscriber, kernel uint64)
}

// Docker resolves a container reference. *client.Client implements it.
type Docker interface {
	ContainerInspect(ctx context.Context, container string) (container.InspectResponse, error)
}

// Guard says whether a container may not be touched, and why.
// *docker.Responder (responders/docker) implements it.
type Guard interface {
	Protected(ctx context.Context, ref string) (bool, string, error)
}

var (
	_ Docker = (*client.Client)(nil)
)

// Finished is delivered once per capture, when its files are closed and
// hashed: the final Result (SHA256 of the manifest, Evidence with every
// file's hash) for the journal.
type Finished struct {
	CaptureID string
	Request   actions.Request // the capture.start request that started it
	Result    actions.Result
	Err       error // set when the capture could not be sealed (no manifest)
}

// Deps are the responder's collaborators.
type Deps struct {
	// Events delivers the container's syscall events (the detector); nil
	// refuses syscall captures (network-only captures still work).
	Events Events
	// Docker resolves containers (pid, name, image, networks). Required;
	// the caller keeps ownership and closes it.
	Docker Docker
	// Guard refuses protected containers. Required: wire the docker
	// responder, so that captures obey the same protect rules as every
	// other container action.
	Guard Guard
	// Logger receives a line when a capture starts and when it ends; nil
	// discards.
	Logger *slog.Logger
	// OnFinish, when set, is called once per capture (from the capture's
	// goroutine) with its final result; use it to journal the hashes of
	// background captures. It must not block for long.
	OnFinish func(Finished)
	// Hostname goes into the files' headers; "" means os.Hostname().
	Hostname string
}

// Capture runs capture.start. It is safe for concurrent use. Create it with
// New and Close it at shutdown: Close stops the running captures and seals
// their files.
type Capture struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	hostname string
	procRoot string

	ctx    context.Context // ends with Close
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	running  map[string]*session // by full container id
	byID     map[string]*session // running and recently finished, by capture id
	finished []string            // capture ids of finished sessions, oldest first
	wg       sync.WaitGroup
}

// keepFinished is how many finished captures Wait still knows about.
const keepFinished = 256

// New checks cfg and returns a Capture.
func New(cfg Config, deps Deps) (*Capture, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("capture responder config: %w", err)
	}
	if deps.Docker == nil {
		return nil, errors.New("capture responder: no Docker client")
	}
	if deps.Guard == nil {
		return nil, errors.New("capture responder: no protected-container guard (wire the docker responder)")
	}
	cfg = cfg.withDefaults()
	dir, err := filepath.Abs(cfg.EvidenceDir)
	if err != nil {
		return nil, fmt.Errorf("capture responder: evidence dir: %w", err)
	}
	cfg.EvidenceDir = dir
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host := deps.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Capture{cfg: cfg, deps: deps, log: log.With("responder", "capture"), hostname: host, procRoot: "/proc",
		ctx: ctx, cancel: cancel, running: map[string]*session{}, byID: map[string]*session{}}, nil
}

// Config returns the configuration in effect, defaults applied.
func (c *Capture) Config() Config { return c.cfg }

// params are capture.start's parameters, checked.
type params struct {
	duration time.Duration
	maxBytes int64
	network  bool
	syscalls bool
	wait     bool
	notes    []string
}

func (c *Capture) params(p actions.Params) (params, error) {
	var out params
	var err error
	if out.duration, err = p.Duration("duration", DefaultDuration); err != nil {
		return out, err
	}
	if out.duration <= 0 {
		return out, errors.New("parameter duration: must be more than 0")
	}
	if out.duration > c.cfg.MaxDuration {
		out.notes = append(out.notes, fmt.Sprintf("duration %s lowered to capture.max_duration %s", out.duration, c.cfg.MaxDuration))
		out.duration = c.cfg.MaxDuration
	}
	def := min(DefaultParamBytes, c.cfg.MaxBytes)
	if out.maxBytes, err = p.Bytes("max_bytes", int64(def)); err != nil {
		return out, err
	}
	if out.maxBytes < int64(MinBytes) {
		return out, fmt.Errorf("parameter max_bytes: must be at least %s, got %d", MinBytes, out.maxBytes)
	}
	if out.maxBytes > int64(c.cfg.MaxBytes) {
		out.notes = append(out.notes, fmt.Sprintf("max_bytes %s lowered to capture.max_bytes %s", ByteSize(out.maxBytes), c.cfg.MaxBytes))
		out.maxBytes = int64(c.cfg.MaxBytes)
	}
	if out.network, err = p.Bool("network", DefaultNetwork); err != nil {
		return out, err
	}
	if out.syscalls, err = p.Bool("syscalls", DefaultSyscalls); err != nil {
		return out, err
	}
	if out.wait, err = p.Bool("wait", DefaultWait); err != nil {
		return out, err
	}
	if !out.network && !out.syscalls {
		return out, errors.New("parameters network and syscalls are both false: nothing to capture")
	}
	if out.syscalls && c.deps.Events == nil {
		return out, errors.New("syscall capture needs the eBPF detector (detector.enabled: true), or set syscalls: false")
	}
	return out, nil
}

var refPattern = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// requestRef picks the target of req: its Container, else the alert's
// container.id, else its container.name.
func requestRef(req actions.Request) (string, error) {
	ref, err := req.ContainerRef()
	if err != nil {
		return "", err
	}
	if len(ref) > 256 || !refPattern.MatchString(ref) {
		return "", fmt.Errorf("invalid container reference %q (want an id, a short id or a name)", ref)
	}
	return ref, nil
}

// Run starts a capture of the request's container (req.Container, else the
// alert's container.id or container.name) and, unless the wait parameter
// is true, returns as soon as it records: the Result holds the capture
// directory, the files and when it ends; the final hashes come later
// through Deps.OnFinish and Wait. With wait: true, Run returns the final
// Result when the capture ends (ctx ending stops it early, cleanly).
//
// A capture of a container that is already being captured starts nothing
// and succeeds with a note saying when the running one ends (with wait:
// true it waits for the running one). A protected container is refused
// with an error wrapping actions.ErrProtected, a missing one with
// actions.ErrNotFound; an unreachable daemon is actions.Retryable.
func (c *Capture) Run(ctx context.Context, req actions.Request) (actions.Result, error) {
	if req.Action != ActionStart {
		return actions.Result{}, fmt.Errorf("capture responder: unknown action %q", req.Action)
	}
	ref, err := requestRef(req)
	if err != nil {
		return actions.Result{}, fmt.Errorf("start capture: %w", err)
	}
	p, err := c.params(req.Params)
	if err != nil {
		return actions.Result{}, fmt.Errorf("start capture of %s: %w", ref, err)
	}
	protected, reason, err := c.deps.Guard.Protected(ctx, ref)
	if err != nil {
		return actions.Result{}, fmt.Errorf("start capture of %s: %w", ref, err)
	}
	if protected {
		c.log.Warn("refused: container is protected", "container", ref, "reason", reason, "actor", req.Actor)
		return actions.Result{}, fmt.Errorf("start capture of %s: %w: %s", ref, actions.ErrProtected, reason)
	}
	info, err := c.inspect(ctx, ref)
	if err != nil {
		return actions.Result{}, fmt.Errorf("start capture of %s: %w", ref, err)
	}
	if info.State == nil || !info.State.Running || info.State.Pid <= 0 {
		return actions.Result{}, fmt.Errorf("start capture of %s: the container is not running", ref)
	}
	if info.State.Paused && p.network {
		p.notes = append(p.notes, "the container is paused: packets are recorded when it runs again")
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return actions.Result{}, fmt.Errorf("start capture of %s: the capture responder is shut down", ref)
	}
	if s := c.running[info.ID]; s != nil {
		c.mu.Unlock()
		if p.wait {
			return s.wait(ctx)
		}
		return s.alreadyRunning(), nil
	}
	if len(c.running) >= c.cfg.MaxRunning {
		c.mu.Unlock()
		return actions.Result{}, actions.Retryable(fmt.Errorf("start capture of %s: %d captures already running (capture.max_running)", ref, len(c.running)))
	}
	s := newSession(c, req, info, p)
	c.running[info.ID] = s // claimed: a concurrent Run sees it running
	c.byID[s.id] = s
	c.wg.Add(1) // Close waits for it from now on
	c.mu.Unlock()

	res, err := s.start()
	if err != nil {
		c.mu.Lock()
		delete(c.running, info.ID)
		delete(c.byID, s.id)
		c.mu.Unlock()
		err = fmt.Errorf("start capture of %s: %w", s.containerLabel(), err)
		s.abort(err)
		c.wg.Done()
		return actions.Result{}, err
	}
	go func() {
		defer c.wg.Done()
		s.run() // ends with c.unlist(s), before its waiters wake
		if c.deps.OnFinish != nil {
			c.deps.OnFinish(Finished{CaptureID: s.id, Request: req, Result: s.result, Err: s.err})
		}
	}()
	c.log.Info("capture started", "capture", s.id, "container", s.name, "id", shortID(info.ID), "ends_at", s.endsAt,
		"max_bytes", p.maxBytes, "syscalls", p.syscalls, "network", p.network, "actor", req.Actor)
	if p.wait {
		return s.wait(ctx)
	}
	return res, nil
}

func (c *Capture) inspect(ctx context.Context, ref string) (container.InspectResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := c.deps.Docker.ContainerInspect(cctx, ref)
	switch {
	case err == nil:
	case cerrdefs.IsNotFound(err):
		return info, fmt.Errorf("%w on this docker host", actions.ErrNotFound)
	case errors.Is(ctx.Err(), context.Canceled):
		return info, fmt.Errorf("inspect: %w", err)
	case client.IsErrConnectionFailed(err), errors.Is(err, context.DeadlineExceeded),
		cerrdefs.IsUnavailable(err), cerrdefs.IsInternal(err), cerrdefs.IsResourceExhausted(err):
		return info, actions.Retryable(fmt.Errorf("inspect: %w", err))
	default:
		return info, fmt.Errorf("inspect: %w", err)
	}
	if info.ContainerJSONBase == nil || info.ID == "" {
		return info, errors.New("inspect: the daemon returned no container")
	}
	return info, nil
}

// Wait waits until the capture called id (Result.Detail["capture_id"])
// ends and returns its final Result. It returns at once for a capture that
// already ended (the last 256 are remembered); an unknown id is
// actions.ErrNotFound. ctx ending returns ctx's error, the capture goes on.
func (c *Capture) Wait(ctx context.Context, id string) (actions.Result, error) {
	c.mu.Lock()
	s := c.byID[id]
	c.mu.Unlock()
	if s == nil {
		return actions.Result{}, fmt.Errorf("wait for capture %s: %w", id, actions.ErrNotFound)
	}
	select {
	case <-s.done:
		return s.result, s.err
	case <-ctx.Done():
		return actions.Result{}, fmt.Errorf("wait for capture %s: %w", id, ctx.Err())
	}
}

// unlist takes an ended session off the running list (the last
// keepFinished stay known to Wait). The session calls it before closing
// done, so whoever waited on it finds the container free: a second Stop
// is ErrNotFound, a new Run starts.
func (c *Capture) unlist(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running[s.info.ID] == s {
		delete(c.running, s.info.ID)
	}
	c.finished = append(c.finished, s.id)
	if len(c.finished) > keepFinished {
		delete(c.byID, c.finished[0])
		c.finished = c.finished[1:]
	}
}

// Stop ends the running capture of a container (full id, id prefix or
// name) cleanly and returns its final Result; actions.ErrNotFound when no
// capture of it runs.
func (c *Capture) Stop(ctx context.Context, ref string) (actions.Result, error) {
	c.mu.Lock()
	var s *session
	for id, cand := range c.running {
		if id == ref || (len(ref) >= 12 && strings.HasPrefix(id, ref)) || cand.name == strings.TrimPrefix(ref, "/") {
			s = cand
			break
		}
	}
	c.mu.Unlock()
	if s == nil {
		return actions.Result{}, fmt.Errorf("stop capture of %s: %w: no capture of it is running", ref, actions.ErrNotFound)
	}
	s.stop(capfile.ReasonStopped)
	return s.wait(ctx)
}

// Status describes a running capture.
type Status struct {
	CaptureID   string    `json:"capture_id"`
	ContainerID string    `json:"container_id"`
	Name        string    `json:"container_name"`
	Dir         string    `json:"dir"`
	Started     time.Time `json:"started"`
	EndsAt      time.Time `json:"ends_at"`
}

// Running lists the running captures, oldest first.
func (c *Capture) Running() []Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Status, 0, len(c.running))
	for id, s := range c.running {
		out = append(out, Status{CaptureID: s.id, ContainerID: id, Name: s.name, Dir: s.dir, Started: s.started, EndsAt: s.endsAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}

// Close stops every running capture, waits until their files are sealed
// (manifests written, OnFinish called) and refuses new ones.
func (c *Capture) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
