package slack

import (
	"context"
	"sync"
)

// Thread is where the messages of one incident live. Channel and TS locate
// the first message (for the store's own queries and for people reading
// it); State is opaque to the store: the notifier's record of what the
// messages show (alert summary, steps, delivered requests) and of every
// message (one per channel the incident was notified to), so that a later
// update can re-render them: chat.update replaces a whole message.
type Thread struct {
	Channel string // channel id returned by chat.postMessage
	TS      string // message ts; replies go to this thread
	State   []byte
}

// Threads keeps the Slack message of each incident so that a second notify,
// a retried notify and later steps update that message and reply in its
// thread instead of posting new ones. The engine backs it with its store;
// MemoryThreads serves tests and single-shot runs.
type Threads interface {
	// Get returns the thread of an incident; ok is false when there is none.
	Get(ctx context.Context, incident string) (t Thread, ok bool, err error)
	// Put records (or replaces) the thread of an incident.
	Put(ctx context.Context, incident string, t Thread) error
}

// MemoryThreads is an in-memory Threads, safe for concurrent use. The zero
// value is ready.
type MemoryThreads struct {
	mu sync.Mutex
	m  map[string]Thread
}

// Get implements Threads.
func (m *MemoryThreads) Get(_ context.Context, incident string) (Thread, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.m[incident]
	t.State = append([]byte(nil), t.State...)
	return t, ok, nil
}

// Put implements Threads.
func (m *MemoryThreads) Put(_ context.Context, incident string, t Thread) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string]Thread)
	}
	t.State = append([]byte(nil), t.State...)
	m.m[incident] = t
	return nil
}

// keyedMutex serialises work per key (incident) inside one process, so that
// two steps reported at once do not lose each other's update.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedEntry)
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
