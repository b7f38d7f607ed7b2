package cgroup

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Runtimes, as reported in Ref.Runtime.
const (
	Docker     = "docker"
	Podman     = "podman"
	Containerd = "containerd"
	CRIO       = "cri-o"
)

// Ref is a container found in a cgroup name or path.
type Ref struct {
	ID      string // 64 hex characters
	Runtime string // Docker, Podman, Containerd or CRIO; Docker for a bare id
	PodUID  string // Kubernetes pod uid from a kubepods path, dashes restored; "" outside Kubernetes
}

// prefixes maps systemd scope / cgroupfs leaf prefixes to runtimes.
var prefixes = []struct{ prefix, runtime string }{
	{"docker-", Docker},
	{"libpod-conmon-", ""}, // Podman's monitor process: not the container
	{"libpod-", Podman},
	{"cri-containerd-", Containerd},
	{"crio-conmon-", ""},
	{"crio-", CRIO},
}

// ParseName recognises one cgroup directory name: a bare 64-hex id
// (cgroupfs driver: /docker/<id>), or <runtime>-<id> with an optional
// ".scope" suffix (systemd driver, Podman). ok is false for anything else.
func ParseName(name string) (ref Ref, ok bool) {
	if isID(name) {
		return Ref{ID: name, Runtime: Docker}, true
	}
	base := strings.TrimSuffix(name, ".scope")
	for _, p := range prefixes {
		if rest, found := strings.CutPrefix(base, p.prefix); found {
			if p.runtime == "" || !isID(rest) {
				return Ref{}, false
			}
			return Ref{ID: rest, Runtime: p.runtime}, true
		}
	}
	return Ref{}, false
}

// ParsePath finds the container in a cgroup path (v2, or a v1 controller's)
// written by one of the layouts below. The deepest recognisable component
// wins, so a container's own sub-cgroups are attributed to it.
//
//	/docker/<id>                                  Docker, cgroupfs driver
//	/system.slice/docker-<id>.scope               Docker, systemd driver
//	/machine.slice/libpod-<id>.scope[/container]  Podman
//	/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope
//	/kubepods.slice/kubepods-pod<uid>.slice/cri-containerd-<id>.scope   (guaranteed QoS)
//	/kubepods/<qos>/pod<uid>/<id>, /kubepods/pod<uid>/<id>              (cgroupfs driver)
//	... crio-<id>.scope                           CRI-O, either driver
//
// Under kubepods the pod uid is taken from the pod's cgroup; the systemd
// driver writes its dashes as underscores, PodUID has them back.
func ParsePath(path string) (ref Ref, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if r, ok := ParseName(parts[i]); ok {
			if r.Runtime == Docker && i > 0 {
				r.Runtime = runtimeOfParent(parts[i-1])
			}
			r.PodUID = podUID(parts[:i])
			return r, true
		}
	}
	return Ref{}, false
}

// podUID returns the pod uid named by the directories above a container's
// cgroup, "" unless they are a kubelet's kubepods hierarchy.
func podUID(parents []string) string {
	if len(parents) == 0 || !strings.HasPrefix(parents[0], "kubepods") {
		return ""
	}
	for i := len(parents) - 1; i >= 1; i-- {
		name := parents[i]
		var uid string
		if slice, ok := strings.CutSuffix(name, ".slice"); ok {
			// systemd driver: kubepods[-<qos>]-pod<uid with _>.slice
			j := strings.LastIndex(slice, "-pod")
			if j < 0 || !strings.HasPrefix(slice, "kubepods-") {
				continue
			}
			uid = strings.ReplaceAll(slice[j+len("-pod"):], "_", "-")
		} else if rest, ok := strings.CutPrefix(name, "pod"); ok {
			uid = rest // cgroupfs driver: pod<uid>
		}
		if isUID(uid) {
			return uid
		}
	}
	return ""
}

// isUID accepts a Kubernetes pod uid: a UUID, or the hex config hash a
// static pod gets.
func isUID(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && c != '-' {
			return false
		}
	}
	return true
}

// runtimeOfParent names the runtime of a bare id by its parent directory.
func runtimeOfParent(parent string) string {
	switch {
	case parent == "libpod_parent" || strings.HasPrefix(parent, "libpod"):
		return Podman
	case strings.HasPrefix(parent, "kubepods") || strings.HasPrefix(parent, "pod"):
		return Containerd
	}
	return Docker
}

func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ProcPaths parses /proc/<pid>/cgroup content into a map from hierarchy to
// path: "" for the v2 unified hierarchy ("0::/path"), otherwise the
// controller list as written (e.g. "pids", "cpu,cpuacct",
// "name=systemd").
func ProcPaths(content []byte) (map[string]string, error) {
	out := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(content))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrl, path, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("parse cgroup line %d: want ID:CONTROLLERS:PATH, got %q", n, line)
		}
		if _, err := strconv.Atoi(id); err != nil {
			return nil, fmt.Errorf("parse cgroup line %d: bad hierarchy id %q", n, id)
		}
		out[ctrl] = path
	}
	return out, sc.Err()
}

// FromProcFile returns the container of a process from its /proc/<pid>/cgroup
// content: any hierarchy naming a container wins (v1 controllers first,
// then v2).
func FromProcFile(content []byte) (Ref, bool, error) {
	paths, err := ProcPaths(content)
	if err != nil {
		return Ref{}, false, err
	}
	for _, key := range []string{"pids", "cpu,cpuacct", "memory", "name=systemd", ""} {
		if p, ok := paths[key]; ok {
			if r, ok := ParsePath(p); ok {
				return r, true, nil
			}
		}
	}
	for _, p := range paths {
		if r, ok := ParsePath(p); ok {
			return r, true, nil
		}
	}
	return Ref{}, false, nil
}

// ForPID reads /proc/<pid>/cgroup under procRoot ("/proc" normally) and
// returns the process's container.
func ForPID(procRoot string, pid uint32) (Ref, bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/cgroup", procRoot, pid))
	if err != nil {
		return Ref{}, false, fmt.Errorf("read cgroup of pid %d: %w", pid, err)
	}
	return FromProcFile(b)
}
