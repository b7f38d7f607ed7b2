package cgroup

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/riposte-sec/riposte/internal/testutil"
)

const (
	id         = "3f4e8c1a9b2d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
	uid        = "0b7e6a1c-1111-2222-3333-444455556666"
	uidSystemd = "0b7e6a1c_1111_2222_3333_444455556666"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   Ref
		wantOK bool
	}{
		{"v1 cgroupfs leaf", id, Ref{ID: id, Runtime: Docker}, true},
		{"systemd docker scope", "docker-" + id + ".scope", Ref{ID: id, Runtime: Docker}, true},
		{"podman scope", "libpod-" + id + ".scope", Ref{ID: id, Runtime: Podman}, true},
		{"podman cgroupfs", "libpod-" + id, Ref{ID: id, Runtime: Podman}, true},
		{"podman conmon is not the container", "libpod-conmon-" + id + ".scope", Ref{}, false},
		{"containerd systemd", "cri-containerd-" + id + ".scope", Ref{ID: id, Runtime: Containerd}, true},
		{"cri-o", "crio-" + id + ".scope", Ref{ID: id, Runtime: CRIO}, true},
		{"cri-o conmon", "crio-conmon-" + id + ".scope", Ref{}, false},
		{"host service", "ssh.service", Ref{}, false},
		{"root", "/", Ref{}, false},
		{"empty", "", Ref{}, false},
		{"short id", id[:12], Ref{}, false},
		{"upper-case hex is not an id", "3F4E8C1A9B2D7E6F5A4B3C2D1E0F9A8B7C6D5E4F3A2B1C0D9E8F7A6B5C4D3E2F", Ref{}, false},
		{"docker prefix, bad id", "docker-xyz.scope", Ref{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseName(tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("ParseName(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		want   Ref
		wantOK bool
	}{
		{"v1 cgroupfs", "/docker/" + id, Ref{ID: id, Runtime: Docker}, true},
		{"v2 systemd", "/system.slice/docker-" + id + ".scope", Ref{ID: id, Runtime: Docker}, true},
		{"v2 sub-cgroup of a container", "/system.slice/docker-" + id + ".scope/init.scope", Ref{ID: id, Runtime: Docker}, true},
		{"podman rootful v2", "/machine.slice/libpod-" + id + ".scope/container", Ref{ID: id, Runtime: Podman}, true},
		{"podman rootless", "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope", Ref{ID: id, Runtime: Podman}, true},
		{"podman cgroupfs v1", "/libpod_parent/libpod-" + id, Ref{ID: id, Runtime: Podman}, true},
		{"kubernetes cgroupfs", "/kubepods/besteffort/pod" + uid + "/" + id, Ref{ID: id, Runtime: Containerd, PodUID: uid}, true},
		{"kubernetes cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + id, Ref{ID: id, Runtime: Containerd, PodUID: uid}, true},
		{"kubernetes cgroupfs burstable", "/kubepods/burstable/pod" + uid + "/" + id, Ref{ID: id, Runtime: Containerd, PodUID: uid}, true},
		{"kubernetes systemd besteffort", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidSystemd + ".slice/cri-containerd-" + id + ".scope", Ref{ID: id, Runtime: Containerd, PodUID: uid}, true},
		{"kubernetes systemd burstable", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice/cri-containerd-" + id + ".scope", Ref{ID: id, Runtime: Containerd, PodUID: uid}, true},
		{"kubernetes systemd guaranteed", "/kubepods.slice/kubepods-pod" + uidSystemd + ".slice/cri-containerd-" + id + ".scope", Ref{ID: id, Runtime: Containerd, PodUID: uid}, true},
		{"kubernetes static pod hash uid", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7f9c2e4b1a3d5c6e8f0a1b2c3d4e5f6a.slice/cri-containerd-" + id + ".scope", Ref{ID: id, Runtime: Containerd, PodUID: "7f9c2e4b1a3d5c6e8f0a1b2c3d4e5f6a"}, true},
		{"kubernetes cri-o systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice/crio-" + id + ".scope", Ref{ID: id, Runtime: CRIO, PodUID: uid}, true},
		{"kubernetes cri-o sub-cgroup", "/kubepods.slice/kubepods-pod" + uidSystemd + ".slice/crio-" + id + ".scope/container", Ref{ID: id, Runtime: CRIO, PodUID: uid}, true},
		{"kubernetes docker cgroupfs (dockershim)", "/kubepods/besteffort/pod" + uid + "/" + id, Ref{ID: id, Runtime: Containerd, PodUID: uid}, true},
		{"kubernetes pod sandbox slice only", "/kubepods.slice/kubepods-pod" + uidSystemd + ".slice", Ref{}, false},
		{"pod-like name outside kubepods", "/system.slice/pod" + uid + "/" + id, Ref{ID: id, Runtime: Containerd}, true},
		{"kubepods with a malformed uid", "/kubepods/besteffort/podXYZ/" + id, Ref{ID: id, Runtime: Containerd}, true},
		{"cri-o outside kubernetes", "/system.slice/crio-" + id + ".scope", Ref{ID: id, Runtime: CRIO}, true},
		{"podman rootful v2 scope only", "/machine.slice/libpod-" + id + ".scope", Ref{ID: id, Runtime: Podman}, true},
		{"host root", "/", Ref{}, false},
		{"host service", "/system.slice/ssh.service", Ref{}, false},
		{"user session", "/user.slice/user-0.slice/session-1.scope", Ref{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParsePath(tt.path)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("ParsePath(%q) = %+v, %v; want %+v, %v", tt.path, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestFromProcFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    Ref
		wantOK  bool
		wantErr bool
	}{
		{"v1 docker cgroupfs (this machine)", "9:name=systemd:/docker/" + id + "\n8:pids:/docker/" + id + "\n4:memory:/docker/" + id + "\n0::/\n", Ref{ID: id, Runtime: Docker}, true, false},
		{"v1 host process", "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/950833eabf2cbd01a751ad74df99903a\n0::/\n", Ref{}, false, false},
		{"v2 systemd", "0::/system.slice/docker-" + id + ".scope\n", Ref{ID: id, Runtime: Docker}, true, false},
		{"v2 host", "0::/user.slice/user-0.slice/session-3.scope\n", Ref{}, false, false},
		{"malformed", "garbage\n", Ref{}, false, true},
		{"bad hierarchy id", "x:pids:/\n", Ref{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := FromProcFile([]byte(tt.content))
			if (err != nil) != tt.wantErr || got != tt.want || ok != tt.wantOK {
				t.Fatalf("FromProcFile = %+v, %v, %v; want %+v, %v, err=%v", got, ok, err, tt.want, tt.wantOK, tt.wantErr)
			}
		})
	}
}

func TestForPIDSelf(t *testing.T) {
	if _, _, err := ForPID("/proc", uint32(os.Getpid())); err != nil {
		t.Fatalf("ForPID(self): %v", err)
	}
	if _, _, err := ForPID("/proc", 0); err == nil {
		t.Fatal("ForPID(0): want an error")
	}
}

const mountinfo = `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
37 33 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
38 33 0:33 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
39 33 0:34 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
`

func TestParseMountinfoAndDirs(t *testing.T) {
	m := ParseMountinfo([]byte(mountinfo))
	if m.V2 != "/sys/fs/cgroup/unified" || m.V1["cpuacct"] != "/sys/fs/cgroup/cpu,cpuacct" || m.V1["memory"] != "/sys/fs/cgroup/memory" {
		t.Fatalf("mounts = %+v", m)
	}
	d, err := DirsFor(V1, m, []byte("6:cpu,cpuacct:/docker/"+id+"\n4:memory:/docker/"+id+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.CPU != "/sys/fs/cgroup/cpu,cpuacct/docker/"+id || d.Memory != "/sys/fs/cgroup/memory/docker/"+id || d.CPUV2 || d.MemoryV2 {
		t.Fatalf("v1 dirs = %+v", d)
	}
	v2 := Mounts{V2: "/sys/fs/cgroup"}
	d, err = DirsFor(V2, v2, []byte("0::/system.slice/docker-"+id+".scope\n"))
	if err != nil || d.CPU != "/sys/fs/cgroup/system.slice/docker-"+id+".scope" || !d.CPUV2 || !d.MemoryV2 {
		t.Fatalf("v2 dirs = %+v, %v", d, err)
	}
	if _, err := DirsFor(V1, Mounts{V1: map[string]string{}}, []byte("4:memory:/x\n")); err == nil {
		t.Fatal("no controllers mounted: want an error")
	}
}

func TestRead(t *testing.T) {
	write := func(dir, name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v1 := t.TempDir()
	write(v1, "cpuacct.usage", "123456789\n")
	write(v1, "memory.usage_in_bytes", "1000000\n")
	write(v1, "memory.stat", "cache 10\ntotal_inactive_file 400000\n")
	u, err := Read(Dirs{CPU: v1, Memory: v1})
	if err != nil || u.CPUNanos != 123456789 || u.MemoryBytes != 600000 {
		t.Fatalf("v1: %+v, %v", u, err)
	}
	v2 := t.TempDir()
	write(v2, "cpu.stat", "usage_usec 5000\nuser_usec 4000\n")
	write(v2, "memory.current", "2000000\n")
	write(v2, "memory.stat", "anon 1\ninactive_file 500000\n")
	u, err = Read(Dirs{CPUV2: true, CPU: v2, MemoryV2: true, Memory: v2})
	if err != nil || u.CPUNanos != 5000000 || u.MemoryBytes != 1500000 {
		t.Fatalf("v2: %+v, %v", u, err)
	}
	if _, err := Read(Dirs{CPU: t.TempDir(), Memory: v1}); err == nil {
		t.Fatal("missing files: want an error")
	}
}

func TestDetectModeHere(t *testing.T) {
	testutil.Paths(t, "/sys/fs/cgroup")
	if _, err := DetectMode("/"); err != nil {
		t.Fatal(err)
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"/docker/" + id,
		"/system.slice/docker-" + id + ".scope",
		"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidSystemd + ".slice/cri-containerd-" + id + ".scope",
		"/kubepods/pod" + uid + "/" + id,
		"/kubepods.slice/kubepods-pod_.slice/crio-" + id + ".scope",
		"", "/", "//", "kubepods/pod/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		r, ok := ParsePath(path)
		if !ok {
			if r != (Ref{}) {
				t.Fatalf("ParsePath(%q) = %+v without ok", path, r)
			}
			return
		}
		if !isID(r.ID) || r.Runtime == "" || strings.Contains(r.PodUID, "_") {
			t.Fatalf("ParsePath(%q) = %+v", path, r)
		}
		if r.PodUID != "" && !strings.Contains(path, "kubepods") {
			t.Fatalf("ParsePath(%q): pod uid %q outside kubepods", path, r.PodUID)
		}
	})
}

// The resolver over a plain directory tree: ids are inode numbers, as on
// cgroup2.
func TestResolver(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "kubepods.slice", "kubepods-pod"+uidSystemd+".slice", "cri-containerd-"+id+".scope")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ino := func(p string) uint64 {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	r := NewResolver(root)
	p, ok := r.Path(ino(dir))
	if !ok || p != "/kubepods.slice/kubepods-pod"+uidSystemd+".slice/cri-containerd-"+id+".scope" {
		t.Fatalf("Path = %q, %v", p, ok)
	}
	if ref, _ := ParsePath(p); ref.PodUID != uid {
		t.Fatalf("ParsePath(%q) = %+v", p, ref)
	}
	if p, ok := r.Path(ino(root)); !ok || p != "/" {
		t.Fatalf("root: Path = %q, %v", p, ok)
	}
	if r.Walks() != 1 {
		t.Fatalf("walks = %d, want 1 (hits are cached)", r.Walks())
	}
	later := filepath.Join(root, "docker", id)
	if err := os.MkdirAll(later, 0o755); err != nil {
		t.Fatal(err)
	}
	if p, ok := r.Path(ino(later)); !ok || p != "/docker/"+id || r.Walks() != 2 {
		t.Fatalf("new cgroup: Path = %q, %v after %d walks", p, ok, r.Walks())
	}
	if _, ok := r.Path(1 << 62); ok {
		t.Fatal("unknown id resolved")
	}
}

func BenchmarkParsePath(b *testing.B) {
	p := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice/cri-containerd-" + id + ".scope"
	for b.Loop() {
		if r, ok := ParsePath(p); !ok || r.PodUID != uid {
			b.Fatal(r)
		}
	}
}

// BenchmarkResolverMiss is the cost of one miss (a walk) over a node with
// 100 pods of 3 containers each.
func BenchmarkResolverMiss(b *testing.B) {
	root := b.TempDir()
	for pod := 0; pod < 100; pod++ {
		for c := 0; c < 3; c++ {
			dir := filepath.Join(root, "kubepods.slice", "kubepods-burstable.slice",
				"kubepods-burstable-pod"+strings.Repeat(string(rune('a'+pod%6)), 8)+strconv.Itoa(pod)+".slice",
				"cri-containerd-"+strconv.Itoa(c)+".scope")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
	}
	r := NewResolver(root)
	for b.Loop() {
		if _, ok := r.Path(1 << 62); ok {
			b.Fatal("resolved an unknown id")
		}
	}
}
