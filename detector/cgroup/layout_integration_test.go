package cgroup_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector/cgroup"
	"github.com/riposte-sec/riposte/internal/cgroupctl"
	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
)

// TestIntegrationLayouts builds each runtime's cgroup layout in this
// kernel's v2 hierarchy, moves a process into it, and checks that the
// process is attributed from /proc/<pid>/cgroup (container id, runtime, pod
// uid) and that its cgroup is found, frozen, thawed and killed.
func TestIntegrationLayouts(t *testing.T) {
	v2 := cgroupctltest.V2(t)
	uid := func() (dashes, underscores string) {
		h := cgroupctltest.RandomID(t)
		u := fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:32])
		return u, strings.ReplaceAll(u, "-", "_")
	}
	type layout struct {
		name    string
		path    func(id, pod, podSystemd string) string
		runtime string
		pod     bool
	}
	layouts := []layout{
		{"docker cgroupfs", func(id, _, _ string) string { return "/docker/" + id }, cgroup.Docker, false},
		{"docker systemd", func(id, _, _ string) string { return "/system.slice/docker-" + id + ".scope" }, cgroup.Docker, false},
		{"kubernetes containerd systemd besteffort", func(id, _, p string) string {
			return "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + p + ".slice/cri-containerd-" + id + ".scope"
		}, cgroup.Containerd, true},
		{"kubernetes containerd systemd burstable", func(id, _, p string) string {
			return "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + p + ".slice/cri-containerd-" + id + ".scope"
		}, cgroup.Containerd, true},
		{"kubernetes containerd systemd guaranteed", func(id, _, p string) string {
			return "/kubepods.slice/kubepods-pod" + p + ".slice/cri-containerd-" + id + ".scope"
		}, cgroup.Containerd, true},
		{"kubernetes cgroupfs besteffort", func(id, p, _ string) string { return "/kubepods/besteffort/pod" + p + "/" + id }, cgroup.Containerd, true},
		{"kubernetes cgroupfs guaranteed", func(id, p, _ string) string { return "/kubepods/pod" + p + "/" + id }, cgroup.Containerd, true},
		{"kubernetes cri-o systemd", func(id, _, p string) string {
			return "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + p + ".slice/crio-" + id + ".scope"
		}, cgroup.CRIO, true},
		{"podman", func(id, _, _ string) string { return "/machine.slice/libpod-" + id + ".scope" }, cgroup.Podman, false},
		{"podman with a container sub-cgroup", func(id, _, _ string) string { return "/machine.slice/libpod-" + id + ".scope/container" }, cgroup.Podman, false},
	}
	// Parents shared by the parallel subtests are made here, so that they
	// are removed after the last subtest, not left behind by a subtest
	// that made them while another still used them.
	for _, shared := range []string{
		"/system.slice", "/machine.slice",
		"/kubepods.slice/kubepods-besteffort.slice", "/kubepods.slice/kubepods-burstable.slice",
		"/kubepods/besteffort",
	} {
		cgroupctltest.Create(t, v2, shared, true)
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			id := cgroupctltest.RandomID(t)
			pod, podSystemd := uid()
			path := l.path(id, pod, podSystemd)
			c := cgroupctltest.Create(t, v2, path, true)
			p := cgroupctltest.Sleep(t, c)

			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.Pid))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), "0::"+path+"\n") {
				t.Fatalf("/proc/%d/cgroup does not show %s:\n%s", p.Pid, path, b)
			}
			ref, ok, err := cgroup.ForPID("/proc", uint32(p.Pid))
			want := cgroup.Ref{ID: id, Runtime: l.runtime}
			if l.pod {
				want.PodUID = pod
			}
			if err != nil || !ok || ref != want {
				t.Fatalf("ForPID = %+v, %v, %v; want %+v", ref, ok, err, want)
			}

			paths, err := cgroupctl.PathsOf("/proc", p.Pid)
			if err != nil {
				t.Fatal(err)
			}
			got, err := paths.Container()
			if err != nil || got != c {
				t.Fatalf("container cgroup = %+v, %v; want %+v", got, err, c)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := got.Freeze(ctx); err != nil {
				t.Fatal(err)
			}
			cgroupctltest.Eventually(t, "task in the v2 freezer trap", func() (bool, string) {
				w, err := cgroupctltest.Wchan(p.Pid)
				return err == nil && w == "get_signal", w
			})
			if err := got.Thaw(ctx); err != nil {
				t.Fatal(err)
			}
			if frozen, err := got.Frozen(); frozen || err != nil {
				t.Fatalf("after thaw: frozen = %v, %v", frozen, err)
			}
			if err := got.Kill(ctx); err != nil {
				t.Fatal(err)
			}
			cgroupctltest.Eventually(t, "killed process reaped", func() (bool, string) {
				select {
				case <-p.Done:
					return true, ""
				default:
					return false, "still running"
				}
			})
			if ws, ok := p.State().Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("process ended with %v, want SIGKILL", p.State())
			}
		})
	}
}
