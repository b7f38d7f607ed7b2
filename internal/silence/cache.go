package silence

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

// Cache answers which silence mutes an alert from the store's silences,
// reloaded at most every TTL (and at once after Invalidate), so that the
// hot path does not query the store per alert while a silence created on
// another replica applies within TTL.
type Cache struct {
	st  store.Silences
	ttl time.Duration
	now func() time.Time
	log *slog.Logger

	mu     sync.Mutex
	set    *Set
	loaded time.Time
}

// DefaultTTL is how stale a replica's view of the silences may be.
const DefaultTTL = 2 * time.Second

// lookback keeps silences that ended this long ago in the cache: an alert
// received just before a silence ended and processed after is still
// silenced (the silence in force at its reception applies).
const lookback = time.Hour

// NewCache reads silences from st. ttl 0: DefaultTTL; now nil: time.Now;
// log nil: discard.
func NewCache(st store.Silences, ttl time.Duration, now func() time.Time, log *slog.Logger) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Cache{st: st, ttl: ttl, now: now, log: log}
}

// Invalidate makes the next Match reload (a silence was just created or
// ended here).
func (c *Cache) Invalidate() {
	c.mu.Lock()
	c.set = nil
	c.mu.Unlock()
}

// Match returns the silence that mutes a (received at at), if any. When the
// store cannot be read and nothing was loaded yet, the error says so and
// nothing is silenced: a silence must never hide an alert by accident.
func (c *Cache) Match(ctx context.Context, a *alert.Alert, at time.Time) (store.Silence, bool, error) {
	set, err := c.current(ctx)
	if set == nil {
		return store.Silence{}, false, err
	}
	s, ok := set.Match(a, at)
	return s, ok, nil
}

func (c *Cache) current(ctx context.Context) (*Set, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.set != nil && now.Sub(c.loaded) < c.ttl {
		return c.set, nil
	}
	list, err := c.st.ListSilences(ctx, store.SilenceFilter{EndsAfter: now.Add(-lookback)})
	if err != nil {
		c.log.Error("load silences", "err", err)
		return c.set, err // the last set loaded, if any
	}
	set, err := NewSet(list)
	if err != nil {
		c.log.Warn("silences left out", "err", err)
	}
	c.set, c.loaded = set, now
	return set, nil
}

// Run journals the natural end of silences every interval (and reloads
// the cache when one ended) until ctx ends. Replicas may all run it: the
// store journals each end once.
func (c *Cache) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ended, err := c.st.CloseEndedSilences(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.Error("close ended silences", "err", err)
		case len(ended) > 0:
			c.Invalidate()
			for _, s := range ended {
				c.log.Info("silence ended", "silence", s.ID)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
