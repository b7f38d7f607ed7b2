package silence_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
)

// BenchmarkSetMatch is the cost a silence set adds to every alert the
// engine processes: n silences in force, none matching (the common case:
// the alert goes on to its playbooks), or the last one matching.
func BenchmarkSetMatch(b *testing.B) {
	now := time.Now()
	a := testAlert()
	for _, n := range []int{10, 100, 1000} {
		list := make([]store.Silence, n)
		for i := range list {
			list[i] = store.Silence{ID: fmt.Sprint(i), Scope: store.ScopeNotify, State: store.SilenceStateActive, StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour),
				Matcher: store.SilenceMatcher{Rules: []string{fmt.Sprintf("Rule %d *", i)}, Namespaces: []string{"ops"}}}
		}
		miss, err := silence.NewSet(list)
		if err != nil {
			b.Fatal(err)
		}
		list[n-1].Matcher.Rules = []string{"Read sensitive file*"}
		hit, _ := silence.NewSet(list)
		for _, c := range []struct {
			name string
			set  *silence.Set
			want bool
		}{{"none", miss, false}, {"last", hit, true}} {
			b.Run(fmt.Sprintf("silences=%d/match=%s", n, c.name), func(b *testing.B) {
				for b.Loop() {
					if _, ok := c.set.Match(a, now); ok != c.want {
						b.Fatalf("match %v", ok)
					}
				}
			})
		}
	}
}

// BenchmarkCacheMatch is the engine's per-alert lookup through the cache
// (lock, TTL check, set) with 100 silences stored, none matching.
func BenchmarkCacheMatch(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(b.TempDir()+"/r.db", store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	for i := range 100 {
		if _, err := st.AddSilence(ctx, store.Silence{Scope: store.ScopeNotify, StartsAt: now, EndsAt: now.Add(time.Hour), CreatedBy: "op:b",
			Matcher: store.SilenceMatcher{Rules: []string{fmt.Sprintf("Rule %d *", i)}}}); err != nil {
			b.Fatal(err)
		}
	}
	c := silence.NewCache(st, time.Hour, nil, nil)
	a := testAlert()
	for b.Loop() {
		if _, ok, err := c.Match(ctx, a, now); ok || err != nil {
			b.Fatalf("match %v %v", ok, err)
		}
	}
}
