// Package contain acts on a container through its cgroup, whatever runtime
// made it: pause freezes the cgroup (v1 freezer.state, v2 cgroup.freeze),
// unpause thaws it, kill signals every process in cgroup.procs (SIGKILL
// empties the cgroup: v2 cgroup.kill where the kernel has it). The kernel
// does the work, so the same code contains a Docker, containerd, CRI-O or
// Podman container; a runtime integration only has to say which container
// it means (id, name, image, labels) and where its init process runs.
//
// The protect guardrail is applied here, before anything is written to
// cgroupfs: a Target whose cgroup holds riposte's own process (its
// container, or the pod around it), whose runtime labels carry the protect
// label (through internal/guard, the same `riposte.protect=true` as
// everywhere), or whose name or image matches a protected glob, is refused
// with an error wrapping actions.ErrProtected. A runtime responder that calls Pause, Unpause or
// Signal cannot forget the check.
//
// A Container holds no state beyond its immutable Guard and logger and is
// safe for concurrent use; serialising actions on one container is the
// caller's choice. Nothing here owns a resource to close.
package contain
