package detector_test

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// TestV2LayoutAttribution runs processes in each runtime's layout in this
// hybrid host's v2 hierarchy, where their v1 cgroups are the host's: the
// detector attributes them by the v2 cgroup id the sensor reports, and the
// alert carries the container id and the pod uid from the path. With the
// "cgroup: v2" override the sensor attributes by the v2 hierarchy itself.
func TestV2LayoutAttribution(t *testing.T) {
	for _, mode := range []string{"auto", "v2"} {
		t.Run(mode, func(t *testing.T) { testV2Layouts(t, mode) })
	}
}

func testV2Layouts(t *testing.T, mode string) {
	cli := testutil.DockerClient(t)
	v2 := cgroupctltest.V2(t)
	_, got := startDetector(t, detector.Config{DisableResources: true, Cgroup: mode}, cli)
	layouts := []struct {
		name string
		path func(id, pod, podSystemd string) string
		pod  bool
	}{
		{"kubernetes containerd systemd burstable", func(id, _, p string) string {
			return "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + p + ".slice/cri-containerd-" + id + ".scope"
		}, true},
		{"kubernetes containerd systemd guaranteed", func(id, _, p string) string {
			return "/kubepods.slice/kubepods-pod" + p + ".slice/cri-containerd-" + id + ".scope"
		}, true},
		{"kubernetes cgroupfs", func(id, p, _ string) string { return "/kubepods/besteffort/pod" + p + "/" + id }, true},
		{"kubernetes cri-o", func(id, _, p string) string {
			return "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + p + ".slice/crio-" + id + ".scope"
		}, true},
		{"docker systemd", func(id, _, _ string) string { return "/system.slice/docker-" + id + ".scope" }, false},
		{"docker cgroupfs", func(id, _, _ string) string { return "/docker/" + id }, false},
		{"podman", func(id, _, _ string) string { return "/machine.slice/libpod-" + id + ".scope/container" }, false},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			id := cgroupctltest.RandomID(t)
			h := cgroupctltest.RandomID(t)
			pod := fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:32])
			c := cgroupctltest.Create(t, v2, l.path(id, pod, strings.ReplaceAll(pod, "-", "_")), true)

			// The shell waits on stdin until it is in the cgroup, then
			// opens /etc/shadow through cat.
			cmd := exec.Command("sh", "-c", "read x; cat /etc/shadow >/dev/null")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			cgroupctltest.Move(t, c, cmd.Process.Pid)
			if _, err := io.WriteString(stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
			a := waitRule(t, got, id, "Read sensitive file untrusted", 5*time.Second)
			if a.Field("fd.name") != "/etc/shadow" || a.Field("container.id") != id[:12] {
				t.Errorf("alert fd.name %q container.id %q", a.Field("fd.name"), a.Field("container.id"))
			}
			wantPod := ""
			if l.pod {
				wantPod = pod
			}
			if uid, _ := a.OutputFields["k8s.pod.uid"].(string); uid != wantPod {
				t.Errorf("k8s.pod.uid = %q, want %q", uid, wantPod)
			}
		})
	}
}

// TestCRILabelsInAlerts: a Docker container created by a kubelet (dockershim
// or cri-dockerd) carries the pod in CRI labels; alerts carry them as k8s.*
// fields.
func TestCRILabelsInAlerts(t *testing.T) {
	cli := testutil.DockerClient(t)
	t.Parallel()
	_, got := startDetector(t, detector.Config{DisableResources: true}, cli)
	const uid = "6f1d2c3b-4a59-4e8d-9c7b-0a1b2c3d4e5f"
	id := testutil.RunContainer(t, cli, "det-cri-"+cgroupctltest.RandomID(t)[:8], map[string]string{
		"io.kubernetes.pod.name": "web-0", "io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": uid,
	})
	dockerExec(t, cli, id, false, "sh", "-c", "cat /etc/shadow")
	a := waitRule(t, got, id, "Read sensitive file untrusted", 5*time.Second)
	want := map[string]string{"k8s.pod.name": "web-0", "k8s.ns.name": "shop", "k8s.pod.uid": uid}
	for k, v := range want {
		if s, _ := a.OutputFields[k].(string); s != v {
			t.Errorf("%s = %q, want %q", k, s, v)
		}
	}
}
