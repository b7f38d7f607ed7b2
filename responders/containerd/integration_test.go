package containerd_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/cgroupctl"
	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/internal/testutil"
	ctrd "github.com/riposte-sec/riposte/responders/containerd"
	"github.com/riposte-sec/riposte/responders/containerd/containerdtest"
	"github.com/riposte-sec/riposte/responders/docker"
)

type env struct {
	cli *containerd.Client
	ns  string
	ctx context.Context
	img containerd.Image
	r   *ctrd.Responder
	dir string
}

func setup(t testing.TB) *env {
	t.Helper()
	cli := containerdtest.Client(t)
	ns, ctx := containerdtest.Namespace(t, cli)
	e := &env{cli: cli, ns: ns, ctx: ctx, img: containerdtest.Image(t, cli, ctx), dir: t.TempDir()}
	r, err := ctrd.New(ctrd.Config{Namespaces: []string{ns}, DataDir: e.dir}, ctrd.Deps{Client: cli})
	if err != nil {
		t.Fatal(err)
	}
	e.r = r
	return e
}

func (e *env) run(t testing.TB, action, ref string, params actions.Params) (actions.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.r.Run(ctx, actions.Request{Action: action, Container: ref, Params: params, Incident: "inc-1", Actor: "test"})
}

// freezer is the v1 freezer (or v2) state of the task's cgroup, read from
// cgroupfs, not through riposte's code.
func freezer(t *testing.T, pid uint32) string {
	t.Helper()
	p, err := cgroupctl.PathsOf("/proc", int(pid))
	if err != nil {
		t.Fatal(err)
	}
	if p.Freezer.Mount != "" && p.Freezer.Path != "/" {
		b, err := os.ReadFile(filepath.Join(p.Freezer.Dir(), "freezer.state"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	b, err := os.ReadFile(filepath.Join(p.Unified.Dir(), "cgroup.freeze"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"1": "FROZEN", "0": "THAWED"}[strings.TrimSpace(string(b))]
}

func status(t *testing.T, ctx context.Context, task containerd.Task) containerd.ProcessStatus {
	t.Helper()
	st, err := task.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st.Status
}

var criLabels = map[string]string{
	ctrd.LabelPodName: "api-7d9f", ctrd.LabelPodNamespace: "payments", ctrd.LabelPodUID: "4f1c",
	ctrd.LabelContainerName: "app", "app": "api",
}

// TestIntegrationPauseUnpauseKill: a container made directly through
// containerd (not dockerd), with the labels the CRI plugin sets, is found
// by the alert's 12-character id, frozen (containerd's task status says
// paused, the freezer says FROZEN), thawed and killed; the journal detail
// names its pod.
func TestIntegrationPauseUnpauseKill(t *testing.T) {
	e := setup(t)
	id := cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, e.cli, e.ctx, e.img, id, criLabels)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := alert.Alert{ID: "a1", Rule: "Terminal shell in container", OutputFields: map[string]any{"container.id": id[:12]}}
	res, err := e.r.Run(ctx, actions.Request{Action: "containerd.pause", Alert: a, Incident: "inc-1", Actor: "playbook:x"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Note != "paused" || res.Detail["via"] != "containerd" || res.Detail["container_id"] != id || res.Detail["containerd_namespace"] != e.ns ||
		res.Detail["pod_name"] != "api-7d9f" || res.Detail["pod_namespace"] != "payments" || res.Detail["container_name"] != "payments/api-7d9f/app" {
		t.Fatalf("pause: %+v", res)
	}
	if s := status(t, e.ctx, task); s != containerd.Paused {
		t.Fatalf("task status after pause: %s, want paused", s)
	}
	if f := freezer(t, task.Pid()); f != "FROZEN" {
		t.Fatalf("freezer after pause: %s", f)
	}
	if res, err := e.run(t, "containerd.pause", "payments/api-7d9f/app", nil); err != nil || res.Note != "already paused" {
		t.Fatalf("pause by name again: %+v, %v", res, err)
	}

	if res, err := e.run(t, "containerd.unpause", e.ns+":"+id, nil); err != nil || res.Note != "unpaused" {
		t.Fatalf("unpause: %+v, %v", res, err)
	}
	if s := status(t, e.ctx, task); s != containerd.Running {
		t.Fatalf("task status after unpause: %s, want running", s)
	}
	if f := freezer(t, task.Pid()); f != "THAWED" {
		t.Fatalf("freezer after unpause: %s", f)
	}

	// Kill a paused container: the cgroup empties and containerd sees it.
	if _, err := e.run(t, "containerd.pause", id, nil); err != nil {
		t.Fatal(err)
	}
	res, err = e.run(t, "containerd.kill", id, nil)
	if err != nil || !strings.HasPrefix(res.Note, "killed 1 processes") || res.Detail["exit_status"] != uint32(137) {
		t.Fatalf("kill: %+v, %v", res, err)
	}
	if !containerdtest.Exited(e.ctx, task) {
		t.Fatal("task not stopped after kill")
	}
	if res, err := e.run(t, "containerd.kill", id, nil); err != nil || !strings.HasPrefix(res.Note, "not running") {
		t.Fatalf("kill again: %+v, %v", res, err)
	}
}

// TestIntegrationTermSignal: a signal other than KILL reaches every
// process of the container: the child sleep dies of it, the init shell
// (which, as a namespace's init, gets only the signals it handles) runs its
// trap and exits 7.
func TestIntegrationTermSignal(t *testing.T) {
	e := setup(t)
	id := cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, e.cli, e.ctx, e.img, id, nil, "sh", "-c", "trap 'exit 7' TERM; sleep 3600 & wait")
	testutil.Eventually(t, 10*time.Second, func() bool {
		pids, err := task.Pids(e.ctx)
		return err == nil && len(pids) == 2
	}, "the shell's sleep to start")
	res, err := e.run(t, "containerd.kill", id, actions.Params{"signal": "TERM"})
	// Both are signalled in turn; when the shell (the namespace's init)
	// exits on its trap first, the kernel kills the sleep before its turn,
	// and an exited process is not counted.
	if err != nil || (res.Note != "sent terminated to 2 processes" && res.Note != "sent terminated to 1 processes") {
		t.Fatalf("TERM: %+v, %v", res, err)
	}
	if pids, _ := res.Detail["pids"].([]int); len(pids) != 2 {
		t.Fatalf("TERM: the cgroup's processes %v, want the shell and its sleep", res.Detail["pids"])
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return containerdtest.Exited(e.ctx, task) }, "task to exit on TERM")
	if st, err := task.Status(e.ctx); err != nil || st.ExitStatus != 7 {
		t.Fatalf("exit status %+v, %v; want 7 from the trap", st, err)
	}
}

// TestIntegrationProtected: a container carrying riposte.protect=true is
// refused for every action, and stays running and thawed.
func TestIntegrationProtected(t *testing.T) {
	e := setup(t)
	id := cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, e.cli, e.ctx, e.img, id, map[string]string{"riposte.protect": "true"})
	for _, action := range []string{"containerd.pause", "containerd.kill", "containerd.snapshot", "containerd.unpause"} {
		_, err := e.run(t, action, id, nil)
		if !errors.Is(err, actions.ErrProtected) || !strings.Contains(err.Error(), "label riposte.protect=true") {
			t.Fatalf("%s: %v, want refused as protected", action, err)
		}
	}
	if s := status(t, e.ctx, task); s != containerd.Running {
		t.Fatalf("protected task status: %s", s)
	}
	if f := freezer(t, task.Pid()); f != "THAWED" {
		t.Fatalf("protected freezer: %s", f)
	}
	prot, reason, err := e.r.Protected(context.Background(), id)
	if err != nil || !prot || reason != "label riposte.protect=true" {
		t.Fatalf("Protected: %v %q %v", prot, reason, err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "evidence")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("evidence written for a protected container: %v", err)
	}
}

// TestIntegrationNotFoundAndAmbiguous: an unknown id is ErrNotFound; a
// name two containers share is refused as ambiguous.
func TestIntegrationNotFoundAndAmbiguous(t *testing.T) {
	e := setup(t)
	if _, err := e.run(t, "containerd.pause", cgroupctltest.RandomID(t), nil); !errors.Is(err, actions.ErrNotFound) {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
	for _, id := range []string{"one", "two"} {
		containerdtest.Run(t, e.cli, e.ctx, e.img, id, map[string]string{ctrd.LabelNerdctlName: "web"})
	}
	_, err := e.run(t, "containerd.pause", "web", nil)
	if err == nil || !strings.Contains(err.Error(), "ambiguous reference: it matches "+e.ns+":one, "+e.ns+":two") {
		t.Fatalf("shared name: %v", err)
	}
}

// TestIntegrationSnapshot: the bundle holds containerd's record with the
// labels, the OCI spec, the process list and the rootfs diff with the file
// the "attacker" wrote; the manifest verifies with the docker verifier.
func TestIntegrationSnapshot(t *testing.T) {
	e := setup(t)
	id := cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, e.cli, e.ctx, e.img, id, criLabels)
	execIn(t, e.ctx, task, "sh", "-c", "echo pwned > /tmp/evil && rm /etc/group")

	res, err := e.run(t, "containerd.snapshot", id, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := res.Detail["dir"].(string)
	if sum, err := docker.VerifyBundle(dir); err != nil || sum != res.SHA256 {
		t.Fatalf("verify bundle: %s, %v; result says %s", sum, err, res.SHA256)
	}
	var rec ctrd.Record
	readJSON(t, filepath.Join(dir, ctrd.ContainerFile), &rec)
	if rec.ID != id || rec.Namespace != e.ns || rec.Labels[ctrd.LabelPodName] != "api-7d9f" || rec.Image != containerdtest.ImageName ||
		rec.Task == nil || rec.Task.Status != "running" || rec.Task.Pid != task.Pid() {
		t.Fatalf("container.json: %+v", rec)
	}
	var spec specs.Spec
	readJSON(t, filepath.Join(dir, ctrd.SpecFile), &spec)
	if spec.Process == nil || strings.Join(spec.Process.Args, " ") != "sleep 3600" {
		t.Fatalf("spec.json process: %+v", spec.Process)
	}
	var procs []ctrd.Process
	readJSON(t, filepath.Join(dir, ctrd.ProcessesFile), &procs)
	if len(procs) != 1 || procs[0].Pid != int(task.Pid()) || strings.Join(procs[0].Cmdline, " ") != "sleep 3600" {
		t.Fatalf("processes.json: %+v", procs)
	}
	files := tarFiles(t, filepath.Join(dir, ctrd.DiffFile))
	if files["tmp/evil"] != "pwned\n" {
		t.Fatalf("rootfs diff lacks tmp/evil: %v", keys(files))
	}
	if _, ok := files["etc/.wh.group"]; !ok {
		t.Fatalf("rootfs diff lacks the whiteout of the deleted /etc/group: %v", keys(files))
	}
	if _, ok := files["bin/busybox"]; ok {
		t.Fatal("rootfs diff holds image files")
	}

	// A cap below the diff leaves an incomplete bundle and says why.
	_, err = e.run(t, "containerd.snapshot", id, actions.Params{"max_bytes": "4KiB"})
	if err == nil || !strings.Contains(err.Error(), "exceeds its size cap of 4KiB (4096 bytes, from the max_bytes parameter)") {
		t.Fatalf("capped snapshot: %v", err)
	}
	inc, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "*.incomplete", ctrd.IncompleteFile))
	if len(inc) != 1 {
		t.Fatalf("incomplete bundles: %v", inc)
	}
}

func execIn(t *testing.T, ctx context.Context, task containerd.Task, args ...string) {
	t.Helper()
	if code := execCode(t, ctx, task, args...); code != 0 {
		t.Fatalf("exec %v: exit %d", args, code)
	}
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func tarFiles(t *testing.T, name string) map[string]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[strings.TrimPrefix(h.Name, "/")] = string(b)
	}
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}

// TestIntegrationFrozenOutsideContainerd: a cgroup frozen by another tool
// (containerd still says running) counts as paused, and unpause thaws it
// through the cgroup.
func TestIntegrationFrozenOutsideContainerd(t *testing.T) {
	e := setup(t)
	id := cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, e.cli, e.ctx, e.img, id, nil)
	p, err := cgroupctl.PathsOf("/proc", int(task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	cg, err := p.Container()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cg.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Thaw(context.Background()) })
	if res, err := e.run(t, "containerd.pause", id, nil); err != nil || res.Note != "already paused (cgroup frozen outside containerd)" {
		t.Fatalf("pause of a frozen cgroup: %+v, %v", res, err)
	}
	res, err := e.run(t, "containerd.unpause", id, nil)
	if err != nil || res.Note != "unpaused (cgroup thawed)" || res.Detail["via"] != "cgroup" {
		t.Fatalf("unpause: %+v, %v", res, err)
	}
	if f := freezer(t, task.Pid()); f != "THAWED" {
		t.Fatalf("freezer after unpause: %s", f)
	}
}

// TestIntegrationLookup: the detector's view of a containerd container:
// name, image and pod labels from containerd, the task's pid.
func TestIntegrationLookup(t *testing.T) {
	e := setup(t)
	id := cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, e.cli, e.ctx, e.img, id, criLabels)
	f, ok, err := e.r.Lookup(context.Background(), id)
	if err != nil || !ok {
		t.Fatalf("Lookup: %v, %v", ok, err)
	}
	if f.Namespace != e.ns || f.Name != "payments/api-7d9f/app" || f.Image != containerdtest.ImageName || f.Labels[ctrd.LabelPodUID] != "4f1c" ||
		f.Pid != int(task.Pid()) || !f.Running {
		t.Fatalf("Lookup = %+v", f)
	}
	if _, ok, err := e.r.Lookup(context.Background(), cgroupctltest.RandomID(t)); ok || err != nil {
		t.Fatalf("Lookup of an unknown id: %v, %v", ok, err)
	}
	if _, _, err := e.r.Lookup(context.Background(), "../x"); err == nil {
		t.Fatal("Lookup accepted a bad id")
	}
}

// TestIntegrationPauseFreezer: with pause: freezer, pause writes cgroupfs
// directly (containerd keeps saying running, as documented) and unpause
// thaws it the same way.
func TestIntegrationPauseFreezer(t *testing.T) {
	e := setup(t)
	r, err := ctrd.New(ctrd.Config{Namespaces: []string{e.ns}, DataDir: e.dir, Pause: ctrd.PauseFreezer}, ctrd.Deps{Client: e.cli})
	if err != nil {
		t.Fatal(err)
	}
	e.r = r
	id := cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, e.cli, e.ctx, e.img, id, nil)
	res, err := e.run(t, "containerd.pause", id, nil)
	if err != nil || res.Note != "paused (cgroup frozen)" || res.Detail["via"] != "cgroup" {
		t.Fatalf("pause: %+v, %v", res, err)
	}
	if f := freezer(t, task.Pid()); f != "FROZEN" {
		t.Fatalf("freezer after pause: %s", f)
	}
	if s := status(t, e.ctx, task); s != containerd.Running {
		t.Fatalf("containerd's status after a cgroup freeze: %s (the doc says it stays running)", s)
	}
	if res, err := e.run(t, "containerd.unpause", id, nil); err != nil || res.Detail["via"] != "cgroup" {
		t.Fatalf("unpause: %+v, %v", res, err)
	}
	if f := freezer(t, task.Pid()); f != "THAWED" {
		t.Fatalf("freezer after unpause: %s", f)
	}
}
