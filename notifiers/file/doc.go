// Package file is the JSON-lines output of riposte's record stream: every
// alert and journal entry that passes the output's filter is appended to a
// file as one line, the record's JSON (Falco's alert JSON, or the journal
// entry with its hash chain), which Filebeat, Fluent Bit, Vector, Promtail
// or a SIEM agent can tail. Alerts carry "uuid" and journal entries "seq":
// delivery is at least once, so a reader dedupes on them.
//
// Rotation is by size: before a line would take the file past max_size, the
// file is closed and renamed riposte.jsonl.1 (the previous .1 becomes .2,
// and so on) and a new file is started; max_files counts the files kept,
// the current one included, so the oldest beyond that is deleted. A line
// is never split across files, and a line longer than max_size gets a file
// of its own. Rotated files are never reopened, so a shipper that follows
// renames (they all do) reads every line once. Do not also rotate the file
// with logrotate.
//
// fsync: always (the default) returns from Write only once the line is on
// disk, with concurrent writers sharing one fsync; interval flushes in the
// background every fsync_interval; never leaves it to the kernel. Rotation
// flushes the old file and the directory unless the policy is never.
//
// The file and any rotated copy are created with mode 0600 (the records
// hold command lines, container names and who approved what), and the
// directory, when it has to be created, with 0700. A write that fails
// (ENOSPC, EIO, a read-only file system) is retryable; the torn line it may
// leave is truncated away, or, when even that fails, terminated by the next
// write, so that one bad line at most ever appears. A file left ending in a
// torn line by a crash is handled the same way when it is reopened.
//
// A *File is safe for concurrent use. The caller closes it; Close flushes
// the file to disk whatever the fsync policy.
package file
