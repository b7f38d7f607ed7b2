package detector

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riposte-sec/riposte/detector/containers"
	"github.com/riposte-sec/riposte/detector/event"
)

// AllContainers subscribes to the events of every container (not the
// host's): what `riposte top` shows.
const AllContainers = "*"

// Subscribe returns every decoded event of one container (a full id, an id
// prefix of at least 12 characters, "host", or AllContainers), in kernel order, with
// process detail and — when already known — container metadata. Events that
// do not fit in the channel's buffer of buf are dropped and counted
// (riposte_detector_subscriber_dropped_total): a slow subscriber never
// blocks the detector. While any subscription exists the kernel sends
// every event, also of the types no rule needs (which it otherwise drops
// and counts, Stats.KernelFilteredByType).
//
// The returned function cancels the subscription and closes the channel; it
// may be called more than once. When Run returns, every subscription's
// channel is closed too. Subscribing before Run is allowed.
func (d *Detector) Subscribe(containerID string, buf int) (<-chan Event, func()) {
	if buf <= 0 {
		buf = 1024
	}
	ch, cancel := d.subs.add(containerID, buf)
	// A subscriber sees every event: the kernel sends the types no rule
	// needs while it is there, and stops when the last one leaves.
	d.applyWanted()
	return ch, func() {
		cancel()
		d.applyWanted()
	}
}

type subscriber struct {
	id     string
	ch     chan Event
	closed bool
}

type subscribers struct {
	mu      sync.RWMutex
	set     map[*subscriber]struct{}
	n       atomic.Int32
	drops   *atomic.Uint64
	dropped prometheus.Counter
}

func (s *subscribers) init(drops *atomic.Uint64, c prometheus.Counter) {
	s.set = map[*subscriber]struct{}{}
	s.drops, s.dropped = drops, c
}

func (s *subscribers) add(id string, buf int) (<-chan Event, func()) {
	sub := &subscriber{id: id, ch: make(chan Event, buf)}
	s.mu.Lock()
	s.set[sub] = struct{}{}
	s.n.Store(int32(len(s.set)))
	s.mu.Unlock()
	return sub.ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.set[sub]; ok {
			delete(s.set, sub)
			s.n.Store(int32(len(s.set)))
		}
		if !sub.closed {
			sub.closed = true
			close(sub.ch)
		}
	}
}

func (s *subscribers) active() bool { return s.n.Load() > 0 }

func (s *subscribers) dispatch(ev *Event) {
	if !s.active() {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for sub := range s.set {
		if sub.closed || !subscribed(sub.id, ev) {
			continue
		}
		select {
		case sub.ch <- *ev:
		default:
			s.drops.Add(1)
			s.dropped.Inc()
		}
	}
}

func subscribed(id string, ev *Event) bool {
	if id == AllContainers {
		return !ev.Container.IsHost()
	}
	return ev.Container.MatchesID(id)
}

func (s *subscribers) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.set {
		if !sub.closed {
			sub.closed = true
			close(sub.ch)
		}
		delete(s.set, sub)
	}
	s.n.Store(0)
}

// applyInfo copies the runtime's metadata (Docker's, or a resolver's)
// into the event.
func applyInfo(ev *event.Event, info containers.Info) {
	if !info.Known {
		return
	}
	c := &ev.Container
	c.Name, c.Image, c.Tag, c.Digest = info.Name, info.Image, info.Tag, info.Digest
	c.Labels, c.Ports, c.Healthcheck, c.BuildStep = info.Labels, info.Ports, info.Healthcheck, info.BuildStep
	switch {
	case c.Runtime != "":
	case info.Runtime != "":
		c.Runtime = info.Runtime
	default:
		c.Runtime = "docker"
	}
}
