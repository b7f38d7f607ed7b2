package contain

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/cgroupctl"
)

func TestGuardReason(t *testing.T) {
	g := Guard{Label: "riposte.protect=true", Names: []string{"kube-*", "infra/db-*/*"}, Images: []string{"postgres", "registry.example.com/infra/*"},
		Self: cgroupctl.Paths{
			Freezer: cgroupctl.Cgroup{Mount: "/sys/fs/cgroup/freezer", Path: "/kubepods/pod1/abc"},
			Unified: cgroupctl.Cgroup{Mount: "/sys/fs/cgroup/unified", Path: "/system.slice/riposte.service", V2: true},
		}}
	tests := []struct {
		name string
		t    Target
		want string
	}{
		{"plain", Target{ID: "a", Name: "web", Image: "nginx:1"}, ""},
		{"label true", Target{Labels: map[string]string{"riposte.protect": "true"}}, "label riposte.protect=true"},
		{"label another spelling of true", Target{Labels: map[string]string{"riposte.protect": "1"}}, "label riposte.protect=true"},
		{"label false", Target{Labels: map[string]string{"riposte.protect": "false"}}, ""},
		{"name glob", Target{Name: "kube-proxy"}, `name "kube-proxy" matches protected name "kube-*"`},
		{"pod name glob", Target{Name: "infra/db-0/postgres"}, `name "infra/db-0/postgres" matches protected name "infra/db-*/*"`},
		{"image without tag", Target{Image: "postgres:15"}, `image "postgres:15" matches protected image "postgres"`},
		{"image with registry port and digest", Target{Image: "registry.example.com/infra/vault@sha256:ab"}, `image "registry.example.com/infra/vault@sha256:ab" matches protected image "registry.example.com/infra/*"`},
		{"empty name matches no glob", Target{Name: ""}, ""},
		{"riposte's own cgroup", Target{Cgroup: cgroupctl.Cgroup{Mount: "/sys/fs/cgroup/freezer", Path: "/kubepods/pod1/abc"}},
			"its cgroup v1 freezer:/kubepods/pod1/abc holds riposte itself"},
		{"the pod around riposte", Target{Cgroup: cgroupctl.Cgroup{Mount: "/sys/fs/cgroup/freezer", Path: "/kubepods/pod1/"}},
			"its cgroup v1 freezer:/kubepods/pod1/ holds riposte itself"},
		{"riposte's v2 cgroup", Target{Cgroup: cgroupctl.Cgroup{Mount: "/sys/fs/cgroup/unified", Path: "/system.slice/riposte.service", V2: true}},
			"its cgroup v2:/system.slice/riposte.service holds riposte itself"},
		{"a sibling whose name extends riposte's", Target{Cgroup: cgroupctl.Cgroup{Mount: "/sys/fs/cgroup/freezer", Path: "/kubepods/pod1/ab"}}, ""},
		{"another container", Target{Cgroup: cgroupctl.Cgroup{Mount: "/sys/fs/cgroup/freezer", Path: "/kubepods/pod2/def"}}, ""},
		{"same path in another hierarchy", Target{Cgroup: cgroupctl.Cgroup{Mount: "/sys/fs/cgroup/unified", Path: "/kubepods/pod1/abc", V2: true}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := g.Reason(tt.t); got != tt.want {
				t.Errorf("Reason = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGuardCheck(t *testing.T) {
	err := Guard{Label: "=x", Names: []string{"[", ""}, Images: []string{"ok", "a["}}.Check()
	want := []string{
		`protect.label: want key=value or key, got "=x"`,
		`protect.names[0]: bad glob pattern "["`,
		`protect.names[1]: bad glob pattern ""`,
		`protect.images[1]: bad glob pattern "a["`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("Check() = %v, want\n%s", err, strings.Join(want, "\n"))
	}
	if _, err := New(Guard{Names: []string{"["}}, nil); err == nil {
		t.Fatal("New accepted a bad glob")
	}
}

// TestRefusedBeforeCgroupfs: a protected target is refused before any
// cgroup file is touched; its cgroup here does not exist, so reaching
// cgroupfs would give another error.
func TestRefusedBeforeCgroupfs(t *testing.T) {
	c, err := New(Guard{Label: "riposte.protect=true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tg := Target{Runtime: "containerd", ID: "0123456789abcdef", Name: "db", Labels: map[string]string{"riposte.protect": "true"},
		Cgroup: cgroupctl.Cgroup{Mount: "/nonexistent", Path: "/x"}}
	ctx := context.Background()
	for name, run := range map[string]func() (actions.Result, error){
		"pause":   func() (actions.Result, error) { return c.Pause(ctx, tg) },
		"unpause": func() (actions.Result, error) { return c.Unpause(ctx, tg) },
		"kill":    func() (actions.Result, error) { return c.Signal(ctx, tg, 9) },
	} {
		t.Run(name, func(t *testing.T) {
			_, err := run()
			if !errors.Is(err, actions.ErrProtected) {
				t.Fatalf("err = %v, want ErrProtected", err)
			}
			if want := name + " container db (0123456789ab): container is protected: label riposte.protect=true"; err.Error() != want {
				t.Fatalf("err = %q, want %q", err, want)
			}
		})
	}
}

func TestNotRunning(t *testing.T) {
	c, err := New(Guard{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tg := Target{ID: "abc"}
	for name, run := range map[string]func() (actions.Result, error){
		"pause":   func() (actions.Result, error) { return c.Pause(ctx, tg) },
		"unpause": func() (actions.Result, error) { return c.Unpause(ctx, tg) },
		"kill":    func() (actions.Result, error) { return c.Signal(ctx, tg, 9) },
	} {
		res, err := run()
		if err != nil || !strings.HasPrefix(res.Note, "not running") {
			t.Errorf("%s of a stopped container: %+v, %v; want a not-running note", name, res, err)
		}
	}
}
