package store

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFirstUse(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	path := PathIn(filepath.Join(t.TempDir(), "data"))
	s, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	expires := clk.Now().Add(10 * time.Minute)
	first := func(s *Store, key string, exp time.Time) bool {
		t.Helper()
		ok, err := s.FirstUse(ctx, "slack", key, exp)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !first(s, "k1", expires) {
		t.Fatal("a new key is not first")
	}
	if first(s, "k1", expires) {
		t.Fatal("a key used twice is first again")
	}
	if !first(s, "k2", expires) {
		t.Fatal("another key is not first")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart does not forget.
	s, err = Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if first(s, "k1", expires) {
		t.Fatal("a key used before the restart is first again")
	}
	// Other namespaces and notifier state are apart.
	if ok, err := s.FirstUse(ctx, "other", "k1", expires); err != nil || !ok {
		t.Fatalf("same key in another namespace: first=%v err=%v", ok, err)
	}
	if _, ok, _ := s.Get(ctx, "slack", "k1"); ok {
		t.Fatal("a one-time key is visible as notifier state")
	}

	// Once expired, the key is usable again, and expired keys are deleted.
	clk.Add(11 * time.Minute)
	if !first(s, "k1", clk.Now().Add(10*time.Minute)) {
		t.Fatal("an expired key is not first")
	}
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM kv WHERE ns = ?`, nonceNSPrefix+"slack").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d keys kept in the namespace, want 1 (k2 expired)", n)
	}

	// Concurrent uses of one key: exactly one is first.
	var wg sync.WaitGroup
	var firsts atomic.Int32
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.FirstUse(ctx, "slack", "race", clk.Now().Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if ok {
				firsts.Add(1)
			}
		}()
	}
	wg.Wait()
	if firsts.Load() != 1 {
		t.Errorf("%d concurrent uses were first, want 1", firsts.Load())
	}
}

func TestFirstUseRefusesBadKeys(t *testing.T) {
	s := openTest(t, Options{})
	for _, tt := range []struct{ ns, key string }{{"", "k"}, {"slack", ""}, {"slack", "a\x00b"}} {
		if _, err := s.FirstUse(context.Background(), tt.ns, tt.key, time.Now().Add(time.Minute)); err == nil {
			t.Errorf("FirstUse(%q, %q) accepted", tt.ns, tt.key)
		}
	}
}
