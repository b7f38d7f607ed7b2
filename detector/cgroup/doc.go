// Package cgroup maps cgroups to containers and reads container resource
// usage from cgroup files.
//
// Parse recognises the cgroup names and paths that container runtimes
// create: Docker and containerd with the cgroupfs driver (/docker/<id>, a
// bare 64-hex leaf), the systemd driver (docker-<id>.scope,
// cri-containerd-<id>.scope, crio-<id>.scope), and Podman (libpod-<id>,
// libpod-<id>.scope, libpod-conmon-<id>.scope is the monitor, not the
// container), and the Kubernetes pod uid of kubepods paths (systemd and
// cgroupfs drivers, every QoS class). Resolver maps v2 cgroup ids to paths.
// Mode tells whether the host attributes containers by the
// cgroup v1 pids hierarchy or the v2 unified one. Placement says, per
// controller, whether cpu and memory accounting is read from v1 or v2 (a
// controller is on v2 when the v2 root's cgroup.controllers lists it);
// DirsIn locates a container's directories accordingly and Read samples
// them (v2 cpu.stat, memory.current, memory.stat; v1 cpuacct.usage,
// memory.usage_in_bytes, memory.stat), with ParseCPUStat and
// ParseMemoryStat rejecting malformed files.
//
// Everything here is a pure function of its input or of files read at call
// time; it is safe for concurrent use and holds no state, except Resolver,
// which caches and is owned by one goroutine.
package cgroup
