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
// cgroup v1 pids hierarchy or the v2 unified one; Stats reads cpu and memory
// usage for either.
//
// Everything here is a pure function of its input or of files read at call
// time; it is safe for concurrent use and holds no state, except Resolver,
// which caches and is owned by one goroutine.
package cgroup
