package containers

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// API is the part of the Docker client the cache uses
// (*client.Client implements it).
type API interface {
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
	Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error)
}

// Resolver describes containers another runtime knows (containerd's
// Kubernetes containers, which Docker does not see). Resolve returns an
// Info with Known false when it does not know id; an error is a failure to
// ask, logged and treated as unknown.
type Resolver interface {
	Resolve(ctx context.Context, id string) (Info, error)
}

// Info is what the cache knows about one container.
type Info struct {
	ID     string
	Name   string // without the leading "/"
	Image  string // repository
	Tag    string
	Digest string
	Labels map[string]string
	Ports  []uint16 // EXPOSEd and published container ports
	// Healthcheck is the argv of the container's health check as the
	// runtime starts it: ["/bin/sh", "-c", cmd] for CMD-SHELL (the
	// container's shell), the command itself for CMD; nil without one.
	Healthcheck []string
	Pid         int // main process, 0 when not running
	Running     bool
	Known       bool // false: the runtime does not know the id (or no API)
	// Runtime is the runtime a Resolver found it in ("containerd"); ""
	// for Docker's.
	Runtime string
	// BuildStep: the container runs a RUN step of a `docker build` (the
	// classic builder; see IsBuildStep).
	BuildStep bool
}

// negativeTTL is how long an unknown id is remembered as unknown.
const negativeTTL = 5 * time.Second

// goneTTL is how long a destroyed container stays known (not running):
// the events of its last moments may be evaluated after Docker removed
// it — a build step's container is removed as soon as its layer is
// committed, a `docker run --rm` one as soon as it exits.
const goneTTL = 30 * time.Second

// Cache maps container ids to Info.
type Cache struct {
	api       API
	resolvers []Resolver
	log       *slog.Logger
	timeout   time.Duration

	now      func() time.Time // time.Now; a fake in tests
	mu       sync.RWMutex
	byID     map[string]*entry
	inflight map[string]chan struct{}
	onChange []func(Info, bool)
}

type entry struct {
	info    Info
	fetched time.Time
	gone    time.Time // when Docker destroyed it; zero while it exists
}

// New returns a cache over api (nil: no Docker enrichment) that asks
// resolvers, in order, about the ids Docker does not know. log may be nil.
func New(api API, log *slog.Logger, resolvers ...Resolver) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{api: api, resolvers: resolvers, log: log, timeout: 3 * time.Second, now: time.Now, byID: map[string]*entry{},
		inflight: map[string]chan struct{}{}}
}

// OnChange registers fn to be called (from Run's goroutine) when a container
// starts (running=true) or is destroyed (running=false). Register before Run.
func (c *Cache) OnChange(fn func(info Info, running bool)) { c.onChange = append(c.onChange, fn) }

// Get returns the container with full id id, inspecting it on a miss.
func (c *Cache) Get(ctx context.Context, id string) Info {
	if c.api == nil && len(c.resolvers) == 0 {
		return Info{ID: id}
	}
	for {
		c.mu.RLock()
		e, ok := c.byID[id]
		wait := c.inflight[id]
		c.mu.RUnlock()
		if ok && (e.info.Known || time.Since(e.fetched) < negativeTTL) {
			return e.info
		}
		if wait != nil {
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return Info{ID: id}
			}
		}
		c.mu.Lock()
		if c.inflight[id] != nil {
			c.mu.Unlock()
			continue
		}
		done := make(chan struct{})
		c.inflight[id] = done
		c.mu.Unlock()

		info := c.inspect(ctx, id)
		c.mu.Lock()
		c.byID[id] = &entry{info: info, fetched: time.Now()}
		delete(c.inflight, id)
		c.mu.Unlock()
		close(done)
		return info
	}
}

// Running lists the running containers the cache knows, by id.
func (c *Cache) Running() []Info {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []Info
	for _, e := range c.byID {
		if e.info.Known && e.info.Running {
			out = append(out, e.info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (c *Cache) inspect(ctx context.Context, id string) Info {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.api != nil {
		resp, err := c.api.ContainerInspect(ctx, id)
		if err == nil {
			return FromInspect(resp)
		}
		c.log.Debug("inspect container", "id", id, "err", err)
	}
	for _, r := range c.resolvers {
		info, err := r.Resolve(ctx, id)
		if err != nil {
			c.log.Debug("resolve container", "id", id, "err", err)
			continue
		}
		if info.Known {
			info.ID = id
			return info
		}
	}
	return Info{ID: id}
}

// FromInspect converts Docker's inspect answer.
func FromInspect(r container.InspectResponse) Info {
	info := Info{Known: true}
	if r.ContainerJSONBase != nil {
		info.ID = r.ID
		info.Name = strings.TrimPrefix(r.Name, "/")
		if r.State != nil {
			info.Pid = r.State.Pid
			info.Running = r.State.Running
		}
	}
	ports := map[uint16]bool{}
	if r.Config != nil {
		info.Image, info.Tag, info.Digest = SplitImage(r.Config.Image)
		info.Labels = r.Config.Labels
		info.Healthcheck = HealthcheckArgv(r.Config.Healthcheck, r.Config.Shell)
		for p := range r.Config.ExposedPorts {
			if n, err := strconv.ParseUint(p.Port(), 10, 16); err == nil {
				ports[uint16(n)] = true
			}
		}
	}
	info.BuildStep = IsBuildStep(r)
	if r.ContainerJSONBase != nil && r.HostConfig != nil {
		for p := range r.HostConfig.PortBindings {
			if n, err := strconv.ParseUint(p.Port(), 10, 16); err == nil {
				ports[uint16(n)] = true
			}
		}
	}
	for p := range ports {
		info.Ports = append(info.Ports, p)
	}
	sort.Slice(info.Ports, func(i, j int) bool { return info.Ports[i] < info.Ports[j] })
	return info
}

// IsBuildStep reports whether Docker made the container to run a RUN
// step of `docker build` with the classic builder. Docker marks such
// containers three ways at once: created from the previous layer's image
// by id ("sha256:..."), with health checks off (["NONE"]) and with the
// "none" log driver (moby's builder/dockerfile: withoutHealthcheck,
// defaultLogConfig). A container someone runs by image id lacks the other
// two. BuildKit's steps are not Docker containers and are not seen here.
func IsBuildStep(r container.InspectResponse) bool {
	if r.Config == nil || r.ContainerJSONBase == nil || r.HostConfig == nil {
		return false
	}
	hc := r.Config.Healthcheck
	return strings.HasPrefix(r.Config.Image, "sha256:") && hc != nil && len(hc.Test) == 1 && hc.Test[0] == "NONE" &&
		r.HostConfig.LogConfig.Type == "none"
}

// HealthcheckArgv is the argv Docker runs for health check hc (as it
// runs it: an exec in the container), nil for none or NONE. A CMD-SHELL
// check runs in shell, the container's SHELL (["/bin/sh", "-c"] when
// empty).
func HealthcheckArgv(hc *container.HealthConfig, shell []string) []string {
	if hc == nil || len(hc.Test) < 2 {
		return nil
	}
	switch hc.Test[0] {
	case "CMD":
		return append([]string(nil), hc.Test[1:]...)
	case "CMD-SHELL":
		if len(shell) == 0 {
			shell = []string{"/bin/sh", "-c"}
		}
		return append(append([]string(nil), shell...), strings.Join(hc.Test[1:], " "))
	}
	return nil
}

// SplitImage splits an image reference as written in a container's config
// ("nginx", "registry:5000/team/app:1.2", "app@sha256:...") into repository,
// tag ("latest" when neither tag nor digest is given) and digest.
func SplitImage(ref string) (repo, tag, digest string) {
	repo = ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo, digest = repo[:i], repo[i+1:]
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	if tag == "" && digest == "" && !strings.HasPrefix(ref, "sha256:") {
		tag = "latest"
	}
	if strings.HasPrefix(ref, "sha256:") {
		repo, tag = ref, ""
	}
	return repo, tag, digest
}

// Run lists the running containers, then follows Docker's events until ctx
// ends, reconnecting with backoff when the stream fails.
func (c *Cache) Run(ctx context.Context) error {
	if c.api == nil {
		<-ctx.Done()
		return nil
	}
	backoff := time.Second
	for ctx.Err() == nil {
		started := time.Now()
		err := c.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("docker event stream ended; reconnecting", "err", err, "in", backoff)
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
	return nil
}

func (c *Cache) follow(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := c.api.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)))})
	list, err := c.api.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, s := range list {
		c.refresh(ctx, s.ID)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case m := <-msgs:
			switch m.Action {
			case events.ActionCreate, events.ActionStart, events.ActionRename, events.ActionUnPause:
				// From create on: a short-lived container (a build step) may
				// be gone again before its start is handled.
				c.refresh(ctx, m.Actor.ID)
			case events.ActionDie:
				c.refresh(ctx, m.Actor.ID)
			case events.ActionDestroy:
				c.forget(m.Actor.ID)
			}
		}
	}
}

func (c *Cache) refresh(ctx context.Context, id string) {
	info := c.inspect(ctx, id)
	c.mu.Lock()
	c.byID[id] = &entry{info: info, fetched: time.Now()}
	c.mu.Unlock()
	for _, fn := range c.onChange {
		fn(info, info.Running)
	}
}

// forget marks a destroyed container gone: it stays known, not running,
// for goneTTL, and containers gone longer are dropped.
func (c *Cache) forget(id string) {
	now := c.now()
	c.mu.Lock()
	var info Info
	e := c.byID[id]
	if e != nil {
		e.info.Running, e.info.Pid = false, 0
		e.gone = now
		info = e.info
	}
	for k, old := range c.byID {
		if !old.gone.IsZero() && now.Sub(old.gone) > goneTTL {
			delete(c.byID, k)
		}
	}
	c.mu.Unlock()
	if e != nil {
		for _, fn := range c.onChange {
			fn(info, false)
		}
	}
}

// Peek returns the cached container without calling the API.
func (c *Cache) Peek(id string) (Info, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.byID[id]
	if !ok {
		return Info{}, false
	}
	return e.info, e.info.Known
}
