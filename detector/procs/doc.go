// Package procs is the detector's process table: what each live process
// executed (name, exe, argv, tty) and who its parent is, so that an open or
// connect event can name the process, its command line and its parent.
//
// The table is seeded from /proc when the detector starts and then kept up
// to date by fork, exec and exit events. Exited processes stay for a grace
// period so that late events of their children still resolve their parent.
//
// A process's parent (proc.pname) is its first ancestor that is not one of
// runc's transient processes: a `docker exec` process is runc's child for a
// moment and the shim's once runc exits, and both must read the same.
//
// A Table is owned by one goroutine (the detector's state stage) and is NOT
// safe for concurrent use.
package procs
