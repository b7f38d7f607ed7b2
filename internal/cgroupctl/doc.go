// Package cgroupctl contains whole cgroups: it freezes and thaws them
// (cgroup v1 freezer.state, cgroup v2 cgroup.freeze) and kills every process
// in them (v2 cgroup.kill where the kernel has it, else SIGKILL to each pid
// of cgroup.procs until none is left), and finds a process's cgroups in both
// hierarchies from /proc/<pid>/cgroup and /proc/self/mountinfo. It also
// creates and removes child cgroups and moves a cgroup's processes into
// another (MoveProcs), which the Docker responder uses to freeze a container
// through a child cgroup while runc is told (responders/docker tellDocker).
//
// It knows nothing of container runtimes: callers name the cgroup (a
// container's, found from its init pid). It refuses to act on the root of a
// hierarchy, which holds the host.
//
// Every function reads or writes cgroupfs at call time and holds no state;
// all are safe for concurrent use. Freeze, Thaw and Kill wait for the kernel
// to report the new state, until their context ends.
package cgroupctl
