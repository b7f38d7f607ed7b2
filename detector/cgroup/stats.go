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

// Dirs are the cgroup directories holding one container's cpu and memory
// accounting.
type Dirs struct {
	V2     bool
	CPU    string // v1: the cpuacct directory; v2: the unified directory
	Memory string // v1: the memory directory; v2: the unified directory
}

// DirsFor locates the accounting directories from a member process's
// /proc/<pid>/cgroup content.
func DirsFor(mode Mode, mounts Mounts, procCgroup []byte) (Dirs, error) {
	paths, err := ProcPaths(procCgroup)
	if err != nil {
		return Dirs{}, err
	}
	if mode == V2 {
		p, ok := paths[""]
		if !ok || mounts.V2 == "" {
			return Dirs{}, errors.New("locate cgroup: no unified hierarchy")
		}
		d := filepath.Join(mounts.V2, p)
		return Dirs{V2: true, CPU: d, Memory: d}, nil
	}
	var d Dirs
	for ctrls, p := range paths {
		for _, c := range strings.Split(ctrls, ",") {
			switch c {
			case "cpuacct":
				if mp, ok := mounts.V1["cpuacct"]; ok {
					d.CPU = filepath.Join(mp, p)
				}
			case "memory":
				if mp, ok := mounts.V1["memory"]; ok {
					d.Memory = filepath.Join(mp, p)
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

// Read samples the accounting files in d.
func Read(d Dirs) (Usage, error) {
	var u Usage
	if d.V2 {
		st, err := readKV(filepath.Join(d.CPU, "cpu.stat"))
		if err != nil {
			return u, err
		}
		u.CPUNanos = uint64(st["usage_usec"]) * 1000
		cur, err := readInt(filepath.Join(d.Memory, "memory.current"))
		if err != nil {
			return u, err
		}
		ms, err := readKV(filepath.Join(d.Memory, "memory.stat"))
		if err != nil {
			return u, err
		}
		u.MemoryBytes = max(cur-ms["inactive_file"], 0)
		return u, nil
	}
	cpu, err := readInt(filepath.Join(d.CPU, "cpuacct.usage"))
	if err != nil {
		return u, err
	}
	u.CPUNanos = uint64(cpu)
	cur, err := readInt(filepath.Join(d.Memory, "memory.usage_in_bytes"))
	if err != nil {
		return u, err
	}
	ms, err := readKV(filepath.Join(d.Memory, "memory.stat"))
	if err != nil {
		return u, err
	}
	u.MemoryBytes = max(cur-ms["total_inactive_file"], 0)
	return u, nil
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

func readKV(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cgroup stat: %w", err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}
