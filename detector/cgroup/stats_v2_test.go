package cgroup

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/internal/testutil"
)

// The recorded v2 tree (testdata/v2, see its README) holds one container
// cgroup per supported layout.
const (
	recID  = "3f1c9d0e8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d"
	recUID = "5b8e2c1a-7d34-4f6e-9a0b-1c2d3e4f5a6b"
	recU   = "5b8e2c1a_7d34_4f6e_9a0b_1c2d3e4f5a6b"
)

func recordedV2(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("testdata/v2")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestReadV2Layouts(t *testing.T) {
	root := recordedV2(t)
	mounts := Mounts{V2: root, V1: map[string]string{"cpuacct": "/nonexistent/cpuacct", "memory": "/nonexistent/memory"}}
	place, err := ReadPlacement(mounts)
	if err != nil || place != (Placement{CPU: V2, Memory: V2}) {
		t.Fatalf("placement of the recorded tree = %v, %v; want cpu and memory on v2", place, err)
	}
	cases := []struct {
		name, path string
		pod        string
		usageUsec  uint64
		current    int64 // memory.current
		inactive   int64 // memory.stat inactive_file
	}{
		{"docker cgroupfs", "/docker/" + recID, "", 1843211, 13008896, 6557696},
		{"docker systemd", "/system.slice/docker-" + recID + ".scope", "", 3686422, 17108992, 6561792},
		{"containerd systemd burstable", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + recU + ".slice/cri-containerd-" + recID + ".scope", recUID, 5529633, 21209088, 6565888},
		{"containerd systemd guaranteed", "/kubepods.slice/kubepods-pod" + recU + ".slice/cri-containerd-" + recID + ".scope", recUID, 7372844, 25309184, 6569984},
		{"containerd cgroupfs", "/kubepods/besteffort/pod" + recUID + "/" + recID, recUID, 9216055, 29409280, 6574080},
		{"crio", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + recU + ".slice/crio-" + recID + ".scope", recUID, 11059266, 33509376, 6578176},
		{"podman", "/machine.slice/libpod-" + recID + ".scope", "", 12902477, 37609472, 6582272},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A hybrid host's /proc/PID/cgroup: v1 lines first, the unified one last.
			procCgroup := []byte("12:memory:/v1/elsewhere\n4:cpu,cpuacct:/v1/elsewhere\n0::" + c.path + "\n")
			ref, ok, err := FromProcFile(procCgroup)
			if err != nil || !ok || ref.ID != recID || ref.PodUID != c.pod {
				t.Fatalf("ref = %+v, %v, %v; want id %s pod %q", ref, ok, err, recID, c.pod)
			}
			d, err := DirsIn(place, mounts, procCgroup)
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(root, c.path)
			if d != (Dirs{CPUV2: true, CPU: want, MemoryV2: true, Memory: want}) {
				t.Fatalf("dirs = %+v, want both %s", d, want)
			}
			u, err := Read(d)
			if err != nil {
				t.Fatal(err)
			}
			if u.CPUNanos != c.usageUsec*1000 || u.MemoryBytes != c.current-c.inactive {
				t.Fatalf("usage = %+v, want cpu %d ns, memory %d", u, c.usageUsec*1000, c.current-c.inactive)
			}
		})
	}
}

// TestReadMixedPlacement reads CPU from v1 and memory from v2, as on a
// hybrid host that moved only the memory controller to the unified tree.
func TestReadMixedPlacement(t *testing.T) {
	root := recordedV2(t)
	v1 := t.TempDir()
	cpuDir := filepath.Join(v1, "docker", recID)
	if err := os.MkdirAll(cpuDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cpuDir, "cpuacct.usage"), []byte("987654321\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := Mounts{V2: root, V1: map[string]string{"cpuacct": v1}}
	place, err := PlacementFor(mounts, []byte("memory pids\n"))
	if err != nil || place != (Placement{CPU: V1, Memory: V2}) {
		t.Fatalf("placement = %v, %v", place, err)
	}
	d, err := DirsIn(place, mounts, []byte("4:cpu,cpuacct:/docker/"+recID+"\n0::/system.slice/docker-"+recID+".scope\n"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := Read(d)
	if err != nil || u.CPUNanos != 987654321 || u.MemoryBytes != 17108992-6561792 {
		t.Fatalf("usage = %+v, %v", u, err)
	}
}

func TestPlacementFor(t *testing.T) {
	hybrid := Mounts{V2: "/sys/fs/cgroup/unified", V1: map[string]string{"cpuacct": "/sys/fs/cgroup/cpu,cpuacct", "memory": "/sys/fs/cgroup/memory"}}
	cases := []struct {
		name    string
		mounts  Mounts
		ctrls   string
		want    Placement
		wantErr string
	}{
		{"unified", Mounts{V2: "/sys/fs/cgroup", V1: map[string]string{}}, "cpuset cpu io memory pids\n", Placement{V2, V2}, ""},
		{"hybrid, both bound to v1 (this host)", hybrid, "hugetlb\n", Placement{V1, V1}, ""},
		{"hybrid, memory on v2", hybrid, "memory\n", Placement{V1, V2}, ""},
		{"hybrid, cpu on v2", hybrid, "cpu pids\n", Placement{V2, V1}, ""},
		{"no v2 mount ignores the list", Mounts{V1: hybrid.V1}, "cpu memory", Placement{V1, V1}, ""},
		{"cpu nowhere", Mounts{V2: "/x", V1: map[string]string{"memory": "/m"}}, "io", Placement{}, "place cpu controller"},
		{"memory nowhere", Mounts{V2: "/x", V1: map[string]string{}}, "cpu", Placement{}, "place memory controller"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := PlacementFor(c.mounts, []byte(c.ctrls))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// TestReadPlacementHere chooses the placement on this host; whatever it
// is, each controller it puts on v2 is listed in the v2 root's
// cgroup.controllers.
func TestReadPlacementHere(t *testing.T) {
	testutil.Paths(t, "/proc/self/mountinfo")
	m, err := ReadMounts()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ReadPlacement(m)
	if err != nil {
		t.Fatal(err)
	}
	if p.CPU == V2 || p.Memory == V2 {
		b, err := os.ReadFile(filepath.Join(m.V2, "cgroup.controllers"))
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(string(b))
		for name, mode := range map[string]Mode{"cpu": p.CPU, "memory": p.Memory} {
			if mode == V2 && !strings.Contains(" "+strings.Join(fields, " ")+" ", " "+name+" ") {
				t.Fatalf("%s placed on v2 but not in %v", name, fields)
			}
		}
	}
	t.Logf("placement here: %v", p)
}

func TestParseStatErrors(t *testing.T) {
	cases := []struct {
		name, in, want string
		mem            bool
	}{
		{"cpu.stat without usage_usec", "user_usec 1\nsystem_usec 2\n", "parse cpu.stat: no usage_usec", false},
		{"cpu.stat negative", "usage_usec -5\n", `parse cpu.stat: line 1: value of "usage_usec"`, false},
		{"cpu.stat no value", "usage_usec\n", `parse cpu.stat: line 1: want "key value", got "usage_usec"`, false},
		{"memory.stat without inactive_file", "anon 1\nfile 2\n", "parse memory.stat: no inactive_file", true},
		{"memory.stat text value", "anon 1\ninactive_file lots\n", `parse memory.stat: line 2: value of "inactive_file"`, true},
		{"memory.stat trailing space", "inactive_file 5 \n", `parse memory.stat: line 1: value of "inactive_file"`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.mem {
				_, err = ParseMemoryStat([]byte(c.in), "inactive_file")
			} else {
				_, err = ParseCPUStat([]byte(c.in))
			}
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("err = %v, want prefix %q", err, c.want)
			}
		})
	}
}

func TestParseCPUStatRecorded(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(recordedV2(t), "docker", recID, "cpu.stat"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseCPUStat(b)
	if err != nil || st != (CPUStat{UsageUsec: 1843211, UserUsec: 1201455, SysUsec: 641756}) {
		t.Fatalf("cpu.stat = %+v, %v", st, err)
	}
}

func recordedSeeds(f *testing.F, name string) {
	root := recordedV2(f)
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.Name() != name {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f.Add(b)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
}

func FuzzParseCPUStat(f *testing.F) {
	recordedSeeds(f, "cpu.stat")
	f.Add([]byte("usage_usec 18446744073709551615\n"))
	f.Add([]byte("usage_usec 18446744073709551616\n"))
	f.Add([]byte("usage_usec\n\n x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseCPUStat(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "parse cpu.stat: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if !bytes.Contains(b, []byte("usage_usec ")) {
			t.Fatalf("parsed usage_usec %d from input without it", st.UsageUsec)
		}
	})
}

func FuzzParseMemoryStat(f *testing.F) {
	recordedSeeds(f, "memory.stat")
	f.Add([]byte("cache 10\ntotal_inactive_file 400000\n"))
	f.Add([]byte("inactive_file -1\n"))
	f.Add([]byte("inactive_file  1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseMemoryStat(b, "inactive_file")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "parse memory.stat: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if !bytes.Contains(b, []byte("inactive_file ")) {
			t.Fatalf("parsed inactive_file %d from input without it", v)
		}
	})
}
