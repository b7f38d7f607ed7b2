// Package event defines Event, the decoded, enriched form of one thing the
// detector saw: a kernel event from the eBPF sensor (exec, fork, exit, open,
// connect, accept, bind, listen, socket, ptrace, memfd_create, setuid, dup,
// chmod, symlink, link, unlink, rename, truncate, mount, umount, setns,
// unshare) or a resource event from the cgroup sampler (cpu_high, memory_growth).
//
// Event is plain data, JSON-serialisable, and is what rules are evaluated
// over (see detector/rules) and what detector subscribers receive. Values
// are not safe to mutate concurrently; the detector hands each subscriber
// and each rule evaluation its own copy or a read-only pointer.
package event
