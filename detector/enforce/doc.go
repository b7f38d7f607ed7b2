// Package enforce loads and drives riposte's in-kernel enforcement
// (bpf/enforce.c): for the rules marked `enforce: sigkill|sigstop`, a
// program on the exec tracepoint signals the process whose exec matches,
// in the task itself before it returns to user space, so the exec'd
// program never runs an instruction.
//
// The kernel decides alone only what it can: the program's name or path
// is enforced, and the task's cgroup was armed. Arming is user space's
// guard: the detector arms a container's cgroup once it checked that the
// container is not protected, so a container nobody checked is never
// signalled (fail closed). The mode (off, dry run, armed) is a switch user
// space flips at any time; the budget (signals per window) is counted in
// the kernel, so it holds however slow user space is. Each decision is
// recorded by pid, for the detector to journal with the exec event.
//
// An Enforcer is safe for concurrent use (its methods are map operations).
// Open attaches the programs; Close detaches them and frees the maps, and
// the caller that opened it closes it.
package enforce
