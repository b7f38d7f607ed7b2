package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mode is how the host attributes processes to containers.
type Mode int

// Modes.
const (
	V1 Mode = iota // legacy or hybrid hierarchy: containers live in v1 controllers (pids)
	V2             // unified hierarchy at /sys/fs/cgroup
)

func (m Mode) String() string {
	if m == V2 {
		return "v2"
	}
	return "v1"
}

// DetectMode reports V2 when /sys/fs/cgroup (under root, "/" normally) is a
// cgroup2 mount, else V1.
func DetectMode(root string) (Mode, error) {
	var st unix.Statfs_t
	p := filepath.Join(root, "sys/fs/cgroup")
	if err := unix.Statfs(p, &st); err != nil {
		return V1, fmt.Errorf("detect cgroup mode: statfs %s: %w", p, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return V2, nil
	}
	return V1, nil
}

// Mounts maps each v1 controller ("cpuacct", "memory", ...) to its mount
// point; V2 is the unified mount point ("" when none).
type Mounts struct {
	V1 map[string]string
	V2 string
}

// ParseMountinfo reads /proc/self/mountinfo content.
func ParseMountinfo(content []byte) Mounts {
	m := Mounts{V1: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(content))
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 3 {
			continue
		}
		mountpoint := lf[4]
		switch rf[0] {
		case "cgroup2":
			if m.V2 == "" || mountpoint == "/sys/fs/cgroup" {
				m.V2 = mountpoint
			}
		case "cgroup":
			for _, opt := range strings.Split(rf[2], ",") {
				switch opt {
				case "cpuacct", "memory", "pids", "cpu":
					if _, seen := m.V1[opt]; !seen {
						m.V1[opt] = mountpoint
					}
				}
			}
		}
	}
	return m
}

// ReadMounts parses /proc/self/mountinfo.
func ReadMounts() (Mounts, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return Mounts{}, fmt.Errorf("read mountinfo: %w", err)
	}
	return ParseMountinfo(b), nil
}

// Placement says on which hierarchy each accounting controller lives. On
// a hybrid host (v1 controllers with a v2 hierarchy mounted beside them) a
// controller is on v2 only when nothing binds it to v1; the kernel then
// lists it in the v2 root's cgroup.controllers.
type Placement struct {
	CPU    Mode
	Memory Mode
}

func (p Placement) String() string { return "cpu=" + p.CPU.String() + " memory=" + p.Memory.String() }

// PlacementFor chooses the hierarchy of each controller from the mounts and
// the content of the v2 root's cgroup.controllers ("cpu memory pids ...").
// A controller listed there is read from v2; otherwise from its v1 mount
// (cpuacct for CPU). A controller on neither is an error naming it.
func PlacementFor(m Mounts, v2Controllers []byte) (Placement, error) {
	on := map[string]bool{}
	if m.V2 != "" {
		for _, c := range strings.Fields(string(v2Controllers)) {
			on[c] = true
		}
	}
	pick := func(v2Name, v1Name string) (Mode, error) {
		if on[v2Name] {
			return V2, nil
		}
		if _, ok := m.V1[v1Name]; ok {
			return V1, nil
		}
		return V1, fmt.Errorf("place %s controller: neither in cgroup.controllers of the v2 root nor mounted as v1 %s", v2Name, v1Name)
	}
	var p Placement
	var err error
	if p.CPU, err = pick("cpu", "cpuacct"); err != nil {
		return p, err
	}
	if p.Memory, err = pick("memory", "memory"); err != nil {
		return p, err
	}
	return p, nil
}

// ReadPlacement reads cgroup.controllers of the v2 root in m (when there
// is one) and chooses with PlacementFor.
func ReadPlacement(m Mounts) (Placement, error) {
	var ctrls []byte
	if m.V2 != "" {
		b, err := os.ReadFile(filepath.Join(m.V2, "cgroup.controllers"))
		if err != nil {
			return Placement{}, fmt.Errorf("read v2 controllers: %w", err)
		}
		ctrls = b
	}
	return PlacementFor(m, ctrls)
}

// Dirs are the cgroup directories holding one container's cpu and memory
// accounting.
type Dirs struct {
	CPUV2    bool   // CPU is the unified directory (cpu.stat), else the cpuacct one
	CPU      string // v1: the cpuacct directory; v2: the unified directory
	MemoryV2 bool   // Memory is the unified directory (memory.current)
	Memory   string // v1: the memory directory; v2: the unified directory
}

// DirsFor locates the accounting directories from a member process's
// /proc/<pid>/cgroup content, with every controller on the hierarchy of
// mode.
func DirsFor(mode Mode, mounts Mounts, procCgroup []byte) (Dirs, error) {
	return DirsIn(Placement{CPU: mode, Memory: mode}, mounts, procCgroup)
}

// DirsIn locates the accounting directories from a member process's
// /proc/<pid>/cgroup content, each controller on the hierarchy p names.
func DirsIn(p Placement, mounts Mounts, procCgroup []byte) (Dirs, error) {
	paths, err := ProcPaths(procCgroup)
	if err != nil {
		return Dirs{}, err
	}
	var d Dirs
	if p.CPU == V2 || p.Memory == V2 {
		up, ok := paths[""]
		if !ok || mounts.V2 == "" {
			return Dirs{}, errors.New("locate cgroup: no unified hierarchy")
		}
		dir := filepath.Join(mounts.V2, up)
		if p.CPU == V2 {
			d.CPUV2, d.CPU = true, dir
		}
		if p.Memory == V2 {
			d.MemoryV2, d.Memory = true, dir
		}
	}
	for ctrls, path := range paths {
		for _, c := range strings.Split(ctrls, ",") {
			switch {
			case c == "cpuacct" && p.CPU == V1:
				if mp, ok := mounts.V1["cpuacct"]; ok {
					d.CPU = filepath.Join(mp, path)
				}
			case c == "memory" && p.Memory == V1:
				if mp, ok := mounts.V1["memory"]; ok {
					d.Memory = filepath.Join(mp, path)
				}
			}
		}
	}
	if d.CPU == "" || d.Memory == "" {
		return Dirs{}, errors.New("locate cgroup: no cpuacct or memory controller mounted")
	}
	return d, nil
}

// Usage is one sample of a cgroup's accounting.
type Usage struct {
	CPUNanos    uint64 // cumulative CPU time
	MemoryBytes int64  // working set: usage minus inactive file cache
}

// Read samples the accounting files in d: v2 cpu.stat (usage_usec) or v1
// cpuacct.usage; v2 memory.current minus memory.stat inactive_file, or v1
// memory.usage_in_bytes minus total_inactive_file.
func Read(d Dirs) (Usage, error) {
	var u Usage
	if d.CPUV2 {
		b, err := readFile(filepath.Join(d.CPU, "cpu.stat"))
		if err != nil {
			return u, err
		}
		st, err := ParseCPUStat(b)
		if err != nil {
			return u, fmt.Errorf("read %s: %w", filepath.Join(d.CPU, "cpu.stat"), err)
		}
		u.CPUNanos = st.UsageUsec * 1000
	} else {
		cpu, err := readInt(filepath.Join(d.CPU, "cpuacct.usage"))
		if err != nil {
			return u, err
		}
		u.CPUNanos = uint64(cpu)
	}
	usageFile, inactiveKey := "memory.usage_in_bytes", "total_inactive_file"
	if d.MemoryV2 {
		usageFile, inactiveKey = "memory.current", "inactive_file"
	}
	cur, err := readInt(filepath.Join(d.Memory, usageFile))
	if err != nil {
		return u, err
	}
	statPath := filepath.Join(d.Memory, "memory.stat")
	b, err := readFile(statPath)
	if err != nil {
		return u, err
	}
	inactive, err := ParseMemoryStat(b, inactiveKey)
	if err != nil {
		return u, fmt.Errorf("read %s: %w", statPath, err)
	}
	u.MemoryBytes = max(cur-int64(min(inactive, uint64(cur))), 0)
	return u, nil
}

// CPUStat is what the resource rules use of a v2 cpu.stat.
type CPUStat struct {
	UsageUsec uint64
	UserUsec  uint64
	SysUsec   uint64
}

// ParseCPUStat parses v2 cpu.stat content ("usage_usec 123\n..."); a
// malformed line or a missing usage_usec is an error.
func ParseCPUStat(b []byte) (CPUStat, error) {
	kv, err := parseFlatKeyed(b)
	if err != nil {
		return CPUStat{}, fmt.Errorf("parse cpu.stat: %w", err)
	}
	usage, ok := kv["usage_usec"]
	if !ok {
		return CPUStat{}, errors.New("parse cpu.stat: no usage_usec")
	}
	return CPUStat{UsageUsec: usage, UserUsec: kv["user_usec"], SysUsec: kv["system_usec"]}, nil
}

// ParseMemoryStat parses memory.stat content (v1 or v2) and returns the
// value of key (inactive_file on v2, total_inactive_file on v1); a
// malformed line or a missing key is an error.
func ParseMemoryStat(b []byte, key string) (uint64, error) {
	kv, err := parseFlatKeyed(b)
	if err != nil {
		return 0, fmt.Errorf("parse memory.stat: %w", err)
	}
	v, ok := kv[key]
	if !ok {
		return 0, fmt.Errorf("parse memory.stat: no %s", key)
	}
	return v, nil
}

// parseFlatKeyed parses the cgroup "flat keyed" format: one "key value"
// per line, value an unsigned integer.
func parseFlatKeyed(b []byte) (map[string]uint64, error) {
	out := map[string]uint64{}
	for i, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, " ")
		if !ok || k == "" {
			return nil, fmt.Errorf("line %d: want \"key value\", got %q", i+1, truncate(line))
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value of %q: %w", i+1, truncate(k), err)
		}
		out[k] = n
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cgroup stat: %w", err)
	}
	return b, nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read cgroup stat: %w", err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read cgroup stat %s: %w", path, err)
	}
	return v, nil
}
