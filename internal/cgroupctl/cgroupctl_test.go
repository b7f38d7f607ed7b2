package cgroupctl

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const hostMountinfo = `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
40 33 0:35 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
41 33 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
`

func TestParsePaths(t *testing.T) {
	const id = "3f4e8c1a9b2d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
	tests := []struct {
		name       string
		cgroup     string
		mountinfo  string
		want       Paths
		wantErr    string
		wantPicked string // Container(): cgroup String, or "" for an error
	}{
		{
			name:      "docker on a hybrid host",
			cgroup:    "8:pids:/docker/" + id + "\n6:freezer:/docker/" + id + "\n0::/\n",
			mountinfo: hostMountinfo,
			want: Paths{
				Freezer: Cgroup{Mount: "/sys/fs/cgroup/freezer", Path: "/docker/" + id},
				Unified: Cgroup{Mount: "/sys/fs/cgroup/unified", Path: "/", V2: true},
			},
			wantPicked: "v1 freezer:/docker/" + id,
		},
		{
			name:      "kubernetes pod in the v2 hierarchy of a hybrid host",
			cgroup:    "6:freezer:/\n0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-" + id + ".scope\n",
			mountinfo: hostMountinfo,
			want: Paths{
				Freezer: Cgroup{Mount: "/sys/fs/cgroup/freezer", Path: "/"},
				Unified: Cgroup{Mount: "/sys/fs/cgroup/unified", Path: "/kubepods.slice/kubepods-pod1.slice/cri-containerd-" + id + ".scope", V2: true},
			},
			wantPicked: "v2:/kubepods.slice/kubepods-pod1.slice/cri-containerd-" + id + ".scope",
		},
		{
			name:       "pure v2 host",
			cgroup:     "0::/system.slice/docker-" + id + ".scope\n",
			mountinfo:  "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
			want:       Paths{Unified: Cgroup{Mount: "/sys/fs/cgroup", Path: "/system.slice/docker-" + id + ".scope", V2: true}},
			wantPicked: "v2:/system.slice/docker-" + id + ".scope",
		},
		{
			name:      "host process",
			cgroup:    "6:freezer:/\n0::/\n",
			mountinfo: hostMountinfo,
			want: Paths{
				Freezer: Cgroup{Mount: "/sys/fs/cgroup/freezer", Path: "/"},
				Unified: Cgroup{Mount: "/sys/fs/cgroup/unified", Path: "/", V2: true},
			},
		},
		{
			name:       "mount rooted below the hierarchy root (bind mount)",
			cgroup:     "0::/kubepods/pod1/" + id + "\n",
			mountinfo:  "30 1 0:26 /kubepods /host/cgroup rw - cgroup2 cgroup2 rw\n",
			want:       Paths{Unified: Cgroup{Mount: "/host/cgroup", Path: "/pod1/" + id, V2: true}},
			wantPicked: "v2:/pod1/" + id,
		},
		{
			name:      "path outside a rooted mount",
			cgroup:    "0::/system.slice/x\n",
			mountinfo: "30 1 0:26 /kubepods /host/cgroup rw - cgroup2 cgroup2 rw\n",
			want:      Paths{},
		},
		{
			name:       "escaped mount point",
			cgroup:     "0::/a\n",
			mountinfo:  `30 1 0:26 / /mnt/cg\040two rw - cgroup2 cgroup2 rw` + "\n",
			want:       Paths{Unified: Cgroup{Mount: "/mnt/cg two", Path: "/a", V2: true}},
			wantPicked: "v2:/a",
		},
		{name: "not mounted", cgroup: "6:freezer:/docker/" + id + "\n", mountinfo: "", want: Paths{}},
		{name: "malformed line", cgroup: "garbage\n", wantErr: `parse cgroup line 1: want ID:CONTROLLERS:/PATH, got "garbage"`},
		{name: "relative path", cgroup: "0::docker\n", wantErr: `parse cgroup line 1: want ID:CONTROLLERS:/PATH, got "0::docker"`},
		{name: "bad hierarchy id", cgroup: "x:freezer:/\n", wantErr: `parse cgroup line 1: want ID:CONTROLLERS:/PATH, got "x:freezer:/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePaths([]byte(tt.cgroup), []byte(tt.mountinfo))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePaths = %+v, %v; want %+v", got, err, tt.want)
			}
			c, err := got.Container()
			if tt.wantPicked == "" {
				if err == nil {
					t.Fatalf("Container() = %v, want an error", c)
				}
				return
			}
			if err != nil || c.String() != tt.wantPicked {
				t.Fatalf("Container() = %v, %v; want %s", c, err, tt.wantPicked)
			}
		})
	}
}

func TestRefusesRoot(t *testing.T) {
	ctx := context.Background()
	for _, c := range []Cgroup{
		{},
		{Mount: "/sys/fs/cgroup/unified", Path: "/", V2: true},
		{Mount: "/sys/fs/cgroup/unified", Path: "", V2: true},
		{Mount: "/sys/fs/cgroup/freezer", Path: "/a/.."},
	} {
		for name, f := range map[string]func(context.Context) error{"freeze": c.Freeze, "thaw": c.Thaw, "kill": c.Kill} {
			err := f(ctx)
			if err == nil || !strings.HasPrefix(err.Error(), name+" cgroup") {
				t.Errorf("%s %+v: err = %v, want a refusal", name, c, err)
			}
		}
	}
}

// The v1 protocol against a plain directory: the state written is read back
// as the kernel would report it once done.
func TestV1FreezerFiles(t *testing.T) {
	dir := t.TempDir()
	c := Cgroup{Mount: dir, Path: "/docker/x"}
	if err := os.MkdirAll(c.Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(c.Dir(), "freezer.state")); string(b) != "FROZEN" {
		t.Fatalf("freezer.state = %q", b)
	}
	if err := c.Thaw(ctx); err != nil {
		t.Fatal(err)
	}
	if frozen, err := c.Frozen(); frozen || err != nil {
		t.Fatalf("Frozen() = %v, %v after thaw", frozen, err)
	}
}

// A v2 cgroup whose kernel never reports "frozen 1" makes Freeze fail when
// its context ends instead of hanging.
func TestV2FreezeWaitsForKernel(t *testing.T) {
	dir := t.TempDir()
	c := Cgroup{Mount: dir, Path: "/a", V2: true}
	if err := os.MkdirAll(c.Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir(), "cgroup.events"), []byte("populated 1\nfrozen 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := c.Freeze(ctx)
	if err == nil || !strings.Contains(err.Error(), "freeze cgroup v2:/a: wait for the kernel: context deadline exceeded") {
		t.Fatalf("err = %v", err)
	}
}

func TestProcsMalformed(t *testing.T) {
	dir := t.TempDir()
	c := Cgroup{Mount: dir, Path: "/a"}
	if err := os.MkdirAll(filepath.Join(c.Dir(), "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(c.Dir(), "cgroup.procs"), []byte("12\n13\n"), 0o644)
	os.WriteFile(filepath.Join(c.Dir(), "child", "cgroup.procs"), []byte("14\n"), 0o644)
	pids, err := c.Procs()
	if err != nil || len(pids) != 3 || pids[0] != 12 || pids[2] != 14 {
		t.Fatalf("Procs = %v, %v", pids, err)
	}
	os.WriteFile(filepath.Join(c.Dir(), "child", "cgroup.procs"), []byte("x\n"), 0o644)
	if _, err := c.Procs(); err == nil || !strings.Contains(err.Error(), `bad pid "x"`) {
		t.Fatalf("err = %v", err)
	}
}

func FuzzParsePaths(f *testing.F) {
	f.Add([]byte("6:freezer:/docker/x\n0::/a\n"), []byte(hostMountinfo))
	f.Add([]byte("0::/kubepods/pod1/x\n"), []byte("30 1 0:26 /kubepods /host\\040cg rw - cgroup2 cgroup2 rw\n"))
	f.Add([]byte("::\n"), []byte(" - \n"))
	f.Fuzz(func(t *testing.T, cg, mi []byte) {
		p, err := ParsePaths(cg, mi)
		if err != nil {
			return
		}
		for _, c := range []Cgroup{p.Freezer, p.Unified} {
			if c.Mount != "" && !strings.HasPrefix(c.Path, "/") {
				t.Fatalf("ParsePaths: relative path in %+v", c)
			}
		}
		if c, err := p.Container(); err == nil && c.check("test") != nil {
			t.Fatalf("Container() picked a root cgroup: %+v", c)
		}
	})
}
