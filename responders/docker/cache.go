package docker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/riposte-sec/riposte/internal/cgroupctl"
)

// Events is the part of the Engine API the inspect cache watches.
// *client.Client implements it.
type Events interface {
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
}

// inspectCache holds the inspect of every running container, so that
// container.pause and container.kill, the containment actions, go to the
// daemon with one call instead of an inspect and then the call.
//
// Why a cached inspect cannot make riposte act on a protected container:
//
//   - The guardrails read only what Docker never changes during a
//     container's life: its id, labels, image (as given and its id) — and
//     its name, which `docker rename` changes: a rename event drops the
//     entry. Protected is evaluated on every Run against the current
//     configuration; only the inspect is cached, not the verdict.
//   - The cache answers only for a reference that is an id or an id prefix
//     (what an alert carries), never for a name: a name can be taken by
//     another container as soon as its holder is removed. A prefix that is
//     also a cached container's name misses (the daemon resolves names
//     before prefixes).
//   - Every call after the lookup uses the full id, and ids are never
//     reused: a stale entry for a removed container makes the call fail
//     (404), never reach another container. A failure on a cached entry
//     drops it and runs the action again from a fresh inspect.
//   - Entries are added only from an inspect made after the container's
//     start event, and events are applied in the daemon's order on one
//     goroutine, so a die, destroy or rename that follows a start removes
//     what that start added. The cache answers only while its event stream
//     is connected; a broken stream empties it until the watch is back and
//     the running containers are inspected again.
//   - The init pid (the freezer path's way to the cgroup) changes when a
//     container restarts: die drops the entry; should a die be missed, the
//     cgroup found from a stale pid does not carry the container's id, the
//     freeze fails and is run again from a fresh inspect.
type inspectCache struct {
	mu   sync.Mutex
	live bool // the event stream is connected and the running containers are in
	byID map[string]*cached
	// pending are the containers whose start the watcher is inspecting
	// now, closed when that inspect is done: an action on a container that
	// has just started (a shell as its entrypoint) waits for it rather
	// than making a second, later inspect of its own.
	pending map[string]chan struct{}
}

type cached struct {
	info container.InspectResponse
	cg   cgroupctl.Cgroup // the freezer path's cgroup once found; zero until then
}

// get returns the entry for an id or id prefix of 12 or more hex digits,
// when exactly one container matches and none is named ref.
func (c *inspectCache) get(ref string) (*cached, bool) {
	if c == nil || !isHexID(ref, 12, 64) {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return nil, false
	}
	var hit *cached
	for id, e := range c.byID {
		if containerName(e.info) == ref {
			return nil, false
		}
		if len(id) >= len(ref) && id[:len(ref)] == ref {
			if hit != nil {
				return nil, false // ambiguous: let the daemon say so
			}
			hit = e
		}
	}
	if hit == nil {
		return nil, false
	}
	cp := *hit
	return &cp, true
}

// inflight returns, when the watcher is inspecting exactly one container
// that ref (an id or id prefix) names, a channel closed when it is done.
func (c *inspectCache) inflight(ref string) <-chan struct{} {
	if c == nil || !isHexID(ref, 12, 64) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		return nil
	}
	var hit chan struct{}
	for id, ch := range c.pending {
		if len(id) >= len(ref) && id[:len(ref)] == ref {
			if hit != nil {
				return nil
			}
			hit = ch
		}
	}
	return hit
}

func (c *inspectCache) begin(id string) chan struct{} {
	ch := make(chan struct{})
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	return ch
}

func (c *inspectCache) end(id string, ch chan struct{}) {
	c.mu.Lock()
	if c.pending[id] == ch {
		delete(c.pending, id)
	}
	c.mu.Unlock()
	close(ch)
}

func (c *inspectCache) put(e *cached) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.byID[e.info.ID] = e
	c.mu.Unlock()
}

// setCgroup records the cgroup found for id, if id is still cached.
func (c *inspectCache) setCgroup(id string, cg cgroupctl.Cgroup) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if e := c.byID[id]; e != nil {
		e.cg = cg
	}
	c.mu.Unlock()
}

func (c *inspectCache) drop(id string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.byID, id)
	c.mu.Unlock()
}

// reset empties the cache and says whether it may answer.
func (c *inspectCache) reset(live bool) {
	c.mu.Lock()
	c.byID = map[string]*cached{}
	c.pending = map[string]chan struct{}{}
	c.live = live
	c.mu.Unlock()
}

func (c *inspectCache) setLive() {
	c.mu.Lock()
	c.live = true
	c.mu.Unlock()
}

// Cached reports how many running containers the inspect cache holds and
// whether it answers (its event stream is connected); 0, false without
// Deps.Events.
func (r *Responder) Cached() (int, bool) {
	if r.cache == nil {
		return 0, false
	}
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	return len(r.cache.byID), r.cache.live
}

// watch keeps the inspect cache in step with the daemon until ctx ends,
// reconnecting with backoff when the event stream breaks.
func (r *Responder) watch(ctx context.Context) {
	wait := 100 * time.Millisecond
	for {
		began := time.Now()
		err := r.watchOnce(ctx)
		r.cache.reset(false)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			wait = 100 * time.Millisecond
		}
		r.log.Warn("docker event stream broken; inspect cache off until it is back", "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// watchOnce subscribes to the container events, inspects the running
// containers and applies events until the stream or ctx ends. The
// subscription replays events from just before the list, so a container
// that starts or dies in between is not missed; replayed events are
// applied again in order, which lands on the same state.
func (r *Responder) watchOnce(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	since := time.Now().Add(-time.Second)
	msgs, errs := r.events.Events(ctx, events.ListOptions{
		Since: fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("event", string(events.ActionStart)), filters.Arg("event", string(events.ActionDie)),
			filters.Arg("event", string(events.ActionDestroy)), filters.Arg("event", string(events.ActionRename))),
	})
	lctx, lcancel := context.WithTimeout(ctx, r.cfg.Timeouts.API)
	list, err := r.events.ContainerList(lctx, container.ListOptions{})
	lcancel()
	if err != nil {
		return fmt.Errorf("list running containers: %w", err)
	}
	for _, s := range list {
		r.cacheInspect(ctx, s.ID)
	}
	r.cache.setLive()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			if err == nil {
				err = fmt.Errorf("the daemon closed the event stream")
			}
			return err
		case m := <-msgs:
			switch m.Action {
			case events.ActionStart:
				done := r.cache.begin(m.Actor.ID)
				r.cacheInspect(ctx, m.Actor.ID)
				r.cache.end(m.Actor.ID, done)
			case events.ActionDie, events.ActionDestroy, events.ActionRename:
				r.cache.drop(m.Actor.ID)
			}
		}
	}
}

// cacheInspect inspects a container that started and caches it while it
// runs. A failed inspect leaves it out: Run inspects it then.
func (r *Responder) cacheInspect(ctx context.Context, id string) {
	info, err := r.inspect(ctx, id)
	if err != nil || !running(info) || info.ID != id {
		r.cache.drop(id)
		return
	}
	e := &cached{info: info}
	if r.cfg.Pause == PauseFreezer {
		// Found ahead, so the first freeze reads no /proc file.
		if cg, err := r.cgroupOf(target{ref: id, id: id, name: containerName(info), info: info}); err == nil {
			e.cg = cg
		}
	}
	r.cache.put(e)
}
