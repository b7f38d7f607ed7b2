// Package sensor loads riposte's eBPF programs (package bpf), attaches them
// to their BTF-typed tracepoints (sched_process_exec, sched_process_fork,
// sched_process_exit, sys_exit), reads the ring buffer and decodes records
// into event.Event.
//
// Open needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN) and kernel BTF
// (/sys/kernel/btf/vmlinux); when either is missing it fails with an error
// that says what is needed. The caller owns the Sensor and must Close it;
// Close detaches every program and unblocks a pending Read. Read must be
// called from one goroutine at a time; Drops and Close are safe to call
// from any goroutine, and so are SetWanted (which event types and results
// the kernel sends; the rest it drops and counts, Filtered) and Filtered.
// Decode is a pure function, safe for concurrent use.
package sensor
