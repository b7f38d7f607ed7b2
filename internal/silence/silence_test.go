package silence_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

func testAlert() *alert.Alert {
	return &alert.Alert{
		ID: "a-1", Rule: "Read sensitive file untrusted", Priority: alert.PriorityWarning, Source: "syscall",
		Tags: []string{"filesystem", "mitre_credential_access"},
		OutputFields: map[string]any{
			"container.id": "3f9a1c2b4d5e", "container.name": "backup-7d9f", "container.image.repository": "registry/backup",
			"container.image.tag": "1.4", "k8s.pod.name": "backup-29384", "k8s.ns.name": "ops", "fd.name": "/etc/shadow",
		},
	}
}

func TestMatcher(t *testing.T) {
	a := testAlert()
	host := &alert.Alert{ID: "h", Rule: "Read sensitive file untrusted", Priority: alert.PriorityWarning, OutputFields: map[string]any{"container.id": "host"}}
	tests := []struct {
		name     string
		m        store.SilenceMatcher
		want     bool
		wantHost bool
	}{
		{"rule glob", store.SilenceMatcher{Rules: []string{"Read sensitive file*"}}, true, true},
		{"rule exact other", store.SilenceMatcher{Rules: []string{"Terminal shell in container"}}, false, false},
		{"any of rules", store.SilenceMatcher{Rules: []string{"x", "Read sensitive file untrusted"}}, true, true},
		{"priority holds", store.SilenceMatcher{Priority: "<=warning"}, true, true},
		{"priority fails", store.SilenceMatcher{Priority: ">=critical"}, false, false},
		{"all tags", store.SilenceMatcher{Tags: []string{"filesystem", "mitre_credential_access"}}, true, false},
		{"a tag missing", store.SilenceMatcher{Tags: []string{"filesystem", "shell"}}, false, false},
		{"container name glob", store.SilenceMatcher{Containers: []string{"backup-*"}}, true, false},
		{"container id", store.SilenceMatcher{Containers: []string{"3f9a1c2b4d5e"}}, true, false},
		{"container other", store.SilenceMatcher{Containers: []string{"api-*"}}, false, false},
		{"image repository", store.SilenceMatcher{Images: []string{"registry/backup"}}, true, false},
		{"image with tag", store.SilenceMatcher{Images: []string{"registry/backup:1.*"}}, true, false},
		{"image other tag", store.SilenceMatcher{Images: []string{"registry/backup:2.*"}}, false, false},
		{"pod", store.SilenceMatcher{Pods: []string{"backup-*"}}, true, false},
		{"namespace", store.SilenceMatcher{Namespaces: []string{"ops"}}, true, false},
		{"namespace other", store.SilenceMatcher{Namespaces: []string{"prod"}}, false, false},
		{"when", store.SilenceMatcher{When: `fields["fd.name"] startsWith "/etc/"`}, true, false},
		{"when false", store.SilenceMatcher{When: `container.name == "api"`}, false, false},
		{"every criterion must hold", store.SilenceMatcher{Rules: []string{"Read*"}, Namespaces: []string{"prod"}}, false, false},
		{"all hold", store.SilenceMatcher{Rules: []string{"Read*"}, Priority: "warning", Containers: []string{"backup-*"}, When: `priority <= Warning`}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := silence.Compile(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Match(a); got != tt.want {
				t.Errorf("container alert: match %v, want %v", got, tt.want)
			}
			if got := m.Match(host); got != tt.wantHost {
				t.Errorf("host alert: match %v, want %v", got, tt.wantHost)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		name string
		m    store.SilenceMatcher
		want []string
	}{
		{"empty", store.SilenceMatcher{}, []string{"no criterion set"}},
		{"bad priority", store.SilenceMatcher{Priority: ">=loud"}, []string{"priority:"}},
		{"bad when", store.SilenceMatcher{When: `rulee == "x"`}, []string{"when: invalid expression"}},
		{"when not bool", store.SilenceMatcher{When: `rule`}, []string{"when: invalid expression"}},
		{"empty pattern", store.SilenceMatcher{Rules: []string{" "}}, []string{"rules[0]: empty"}},
		{"control character", store.SilenceMatcher{Containers: []string{"a\nb"}}, []string{"containers[0]: control or format character"}},
		{"long pattern", store.SilenceMatcher{Images: []string{long}}, []string{"images[0]: longer than 256 bytes"}},
		{"every error named", store.SilenceMatcher{Priority: "x", Pods: []string{""}}, []string{"priority:", "pods[0]: empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := silence.Compile(tt.m)
			if err == nil {
				t.Fatal("compiled")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestMutes(t *testing.T) {
	notify := actions.Spec{Name: "slack.notify", Notification: true}
	pause := actions.Spec{Name: "container.pause", Container: true, Destructive: true}
	tests := []struct {
		scope store.SilenceScope
		spec  actions.Spec
		want  bool
	}{
		{store.ScopeNotify, notify, true},
		{store.ScopeNotify, pause, false},
		{store.ScopeAll, notify, true},
		{store.ScopeAll, pause, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.scope)+"/"+tt.spec.Name, func(t *testing.T) {
			if got := silence.Mutes(store.Silence{Scope: tt.scope}, tt.spec); got != tt.want {
				t.Errorf("mutes %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSetMatch(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	rule := store.SilenceMatcher{Rules: []string{"Read sensitive file*"}}
	mk := func(id string, scope store.SilenceScope, state store.SilenceState, from, to time.Duration, m store.SilenceMatcher) store.Silence {
		return store.Silence{ID: id, Matcher: m, Scope: scope, State: state, StartsAt: t0.Add(from), EndsAt: t0.Add(to)}
	}
	set, err := silence.NewSet([]store.Silence{
		mk("notify", store.ScopeNotify, store.SilenceStateActive, 0, time.Hour, rule),
		mk("all-later", store.ScopeAll, store.SilenceStateActive, 30*time.Minute, time.Hour, rule),
		mk("pending", store.ScopeAll, store.SilenceStatePending, 0, time.Hour, rule),
		mk("deleted", store.ScopeAll, store.SilenceStateDeleted, 0, 2*time.Hour, rule),
		mk("other", store.ScopeAll, store.SilenceStateActive, 0, 2*time.Hour, store.SilenceMatcher{Rules: []string{"Terminal*"}}),
		mk("broken", store.ScopeAll, store.SilenceStateActive, 0, 2*time.Hour, store.SilenceMatcher{When: "nope("}),
	})
	if err == nil || !strings.Contains(err.Error(), "silence broken") || set.Len() != 5 {
		t.Fatalf("NewSet kept %d, err %v; want 5 and the broken one named", set.Len(), err)
	}
	a := testAlert()
	tests := []struct {
		at     time.Duration
		want   string
		wantOK bool
	}{
		{-time.Minute, "", false},
		{0, "notify", true},
		{45 * time.Minute, "all-later", true}, // scope all wins
		{time.Hour, "", false},                // end is exclusive; deleted never applies
	}
	for _, tt := range tests {
		t.Run(tt.at.String(), func(t *testing.T) {
			s, ok := set.Match(a, t0.Add(tt.at))
			if ok != tt.wantOK || s.ID != tt.want {
				t.Errorf("match %q %v, want %q %v", s.ID, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestRequest(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, body string
		want       string // error part; "" for success
		check      func(t *testing.T, s store.Silence)
	}{
		{"duration", `{"matcher":{"rules":["Read sensitive file*"]},"duration":"1h","comment":"backup job"}`, "", func(t *testing.T, s store.Silence) {
			if !s.StartsAt.Equal(now) || !s.EndsAt.Equal(now.Add(time.Hour)) || s.Scope != store.ScopeNotify || s.CreatedBy != "op:ops" || s.Comment != "backup job" {
				t.Errorf("silence %+v", s)
			}
		}},
		{"ends_at and scope all", `{"matcher":{"namespaces":["ops"]},"ends_at":"2026-01-01T14:00:00Z","scope":"all"}`, "", func(t *testing.T, s store.Silence) {
			if s.Scope != store.ScopeAll || !s.EndsAt.Equal(now.Add(2*time.Hour)) {
				t.Errorf("silence %+v", s)
			}
		}},
		{"unknown field", `{"matcher":{"rules":["x"]},"duration":"1h","approved_by":"me"}`, `unknown field "approved_by"`, nil},
		{"unknown matcher field", `{"matcher":{"rule":["x"]},"duration":"1h"}`, `unknown field "rule"`, nil},
		{"trailing data", `{"matcher":{"rules":["x"]},"duration":"1h"} {}`, "data after the JSON object", nil},
		{"no end", `{"matcher":{"rules":["x"]}}`, "ends_at or duration: one is required", nil},
		{"both ends", `{"matcher":{"rules":["x"]},"duration":"1h","ends_at":"2026-01-01T14:00:00Z"}`, "give one of them", nil},
		{"bad duration", `{"matcher":{"rules":["x"]},"duration":"soon"}`, "duration: time: invalid duration", nil},
		{"negative duration", `{"matcher":{"rules":["x"]},"duration":"-1h"}`, "end: must be after the start", nil},
		{"too long", `{"matcher":{"rules":["x"]},"duration":"800h"}`, "end: at most 720h0m0s", nil},
		{"ended", `{"matcher":{"rules":["x"]},"starts_at":"2025-01-01T00:00:00Z","ends_at":"2025-01-02T00:00:00Z"}`, "end: already passed", nil},
		{"bad scope", `{"matcher":{"rules":["x"]},"duration":"1h","scope":"some"}`, `scope: must be notify or all, got "some"`, nil},
		{"empty matcher", `{"duration":"1h"}`, "no criterion set", nil},
		{"bad comment", `{"matcher":{"rules":["x"]},"duration":"1h","comment":"a\u202eb"}`, "comment: control or format character U+202E", nil},
		{"not an object", `[1]`, "decode silence request", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := silence.DecodeRequest(strings.NewReader(tt.body))
			var s store.Silence
			if err == nil {
				s, err = req.Silence(now, "op:ops")
			}
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, s)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func TestCacheAndService(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Now().UTC()}
	st, err := store.Open(filepath.Join(t.TempDir(), "r.db"), store.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := silence.NewCache(st, time.Minute, clock.Now, nil)
	a := testAlert()
	if _, ok, err := c.Match(ctx, a, clock.t); ok || err != nil {
		t.Fatalf("match without silences: %v %v", ok, err)
	}
	s, err := silence.Add(ctx, st, store.Silence{Matcher: store.SilenceMatcher{Rules: []string{"Read*"}}, Scope: store.ScopeNotify,
		StartsAt: clock.t, EndsAt: clock.t.Add(time.Hour), CreatedBy: "op:ops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Match(ctx, a, clock.t); ok {
		t.Fatal("a cached empty set answered with a silence before its TTL")
	}
	c.Invalidate()
	if got, ok, _ := c.Match(ctx, a, clock.t); !ok || got.ID != s.ID {
		t.Fatalf("after invalidate: %q %v", got.ID, ok)
	}
	if _, err := silence.End(ctx, st, s.ID, "op:ops", false); err != nil {
		t.Fatal(err)
	}
	if _, err := silence.End(ctx, st, s.ID, "op:ops", false); err == nil || !strings.Contains(err.Error(), "already ended") {
		t.Fatalf("second expire: %v", err)
	}
	clock.t = clock.t.Add(2 * time.Minute) // past the TTL: reloaded
	if _, ok, _ := c.Match(ctx, a, clock.t); ok {
		t.Fatal("an expired silence still applies")
	}
	pend, err := silence.Add(ctx, st, store.Silence{Matcher: store.SilenceMatcher{Rules: []string{"Read*"}}, Scope: store.ScopeAll,
		StartsAt: clock.t, EndsAt: clock.t.Add(time.Hour), CreatedBy: "op:ops"})
	if err != nil || pend.State != store.SilenceStatePending {
		t.Fatalf("scope all: %+v, %v", pend, err)
	}
	for _, by := range []string{"op:ops", "op:ops via socket"} {
		if _, err := silence.Approve(ctx, st, pend.ID, by); err == nil {
			t.Fatalf("the creator approved its own silence as %s", by)
		}
	}
	if _, err := silence.Approve(ctx, st, pend.ID, "op:lead"); err != nil {
		t.Fatal(err)
	}
	c.Invalidate()
	if got, ok, _ := c.Match(ctx, a, clock.t); !ok || got.ID != pend.ID || got.Scope != store.ScopeAll {
		t.Fatalf("approved: %q %v", got.ID, ok)
	}
	es, _ := st.Entries(ctx, store.Filter{Types: []store.EntryType{store.SilenceCreated, store.SilenceExpired, store.SilenceApproved}})
	if len(es) != 4 || es[0].Actor != "op:ops" || es[0].Detail["scope"] != "notify" || es[3].Type != store.SilenceApproved || es[3].Actor != "op:lead" {
		t.Fatalf("journal %+v", es)
	}
}

// TestCacheRunJournalsEnds: Run journals a silence's natural end once, and
// the cache stops applying it.
func TestCacheRunJournalsEnds(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "r.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	s, err := silence.Add(context.Background(), st, store.Silence{Matcher: store.SilenceMatcher{Rules: []string{"Read*"}}, Scope: store.ScopeNotify,
		StartsAt: now, EndsAt: now.Add(100 * time.Millisecond), CreatedBy: "op:ops"})
	if err != nil {
		t.Fatal(err)
	}
	c := silence.NewCache(st, time.Hour, nil, nil)
	if _, ok, _ := c.Match(context.Background(), testAlert(), time.Now()); !ok {
		t.Fatal("silence not in force")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx, 10*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 5*time.Second, func() bool {
		es, _ := st.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.SilenceEnded}})
		return len(es) == 1 && es[0].Detail["silence"] == s.ID
	}, "silence.ended not journaled")
	if _, ok, _ := c.Match(context.Background(), testAlert(), time.Now()); ok {
		t.Fatal("an ended silence still applies")
	}
	got, _ := st.GetSilence(context.Background(), s.ID)
	if got.State != store.SilenceStateEnded {
		t.Fatalf("state %s", got.State)
	}
}
