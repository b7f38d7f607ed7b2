// Package capfile reads and writes riposte capture files: what the
// capture.start action records of one container's system calls.
//
// # Format (version 1)
//
// A capture file (syscalls.jsonl.gz) is one gzip member (RFC 1952) whose
// content is UTF-8 JSON lines: one JSON object per line, each ending in
// "\n", at most MaxRecordBytes (4 MiB) long. Every object has a "record"
// key naming its kind, and the body of the record under the key of the same
// name:
//
//	{"record":"header","header":{"format":"riposte-capture","version":1,"capture_id":"…","started":"2026-05-07T21:09:36.123456789Z",
//	   "container":{"id":"<64 hex>","name":"web","image":"nginx:1","pid":4242,"networks":[…]},"incident":"…","duration_ns":30000000000,"max_bytes":104857600,"ends_at":"…"}}
//	{"record":"process","process":{"pid":4242,"ppid":4200,"vpid":1,"uid":0,"euid":0,"gid":0,"user":"root","comm":"sh","exe":"/bin/busybox","args":["sh"],"cwd":"/","started":"…"}}
//	{"record":"socket","socket":{"proto":"tcp","state":"LISTEN","local_addr":"0.0.0.0","local_port":80,"inode":123,"uid":0,"pids":[4242],"comms":["nginx"]}}
//	{"record":"event","event":{"type":"exec","time":"…","pid":4300,"ppid":4242,"comm":"cat","exe":"/bin/cat","args":["cat","/etc/shadow"],…}}
//	{"record":"trailer","trailer":{"ended":"…","reason":"duration","truncated":false,"events":1234,"lost":{"kernel":0,"queue":0,"subscriber":0}}}
//
// The order is fixed:
//
//  1. exactly one header record, first: "format" is always
//     "riposte-capture" and "version" 1; the rest identifies the container
//     (Container), the incident and the limits. A reader refuses another
//     version.
//  2. the state header: zero or more process records (the container's
//     processes when the capture started, read from /proc: host pid, parent,
//     pid in the container, ids, command line) and socket records (the
//     sockets open in its network namespace, from /proc/<pid>/net/*), in
//     that order. The capture subscribes to the detector before it reads
//     /proc, so a process may appear both here and as an early event.
//  3. event records in kernel order: the body is the detector's event
//     (package detector/event, type Event) exactly as its JSON encoding,
//     times in RFC 3339 with nanoseconds.
//  4. exactly one trailer record, last, when the capture was closed
//     properly: why it ended ("reason": duration, max_bytes, stopped,
//     container_exited, detector_stopped, error), whether it is truncated
//     (the size cap was reached: what came after is not in the file), the
//     number of event records, and "lost": how much the detector's loss
//     counters (kernel ring buffer, queue, slow subscribers) grew while it
//     ran — detector-wide counts, so an upper bound for this container.
//
// Times are RFC 3339 strings with nanoseconds (Go's time.Time JSON form);
// durations are integer nanoseconds. Keys with empty values may be left
// out; readers must ignore keys they do not know and skip records of kinds
// they do not know, so that fields and kinds can be added without a new
// version. A change that breaks either rule bumps Version.
//
// The writer flushes the gzip stream (a sync flush) at least every 256 KiB
// of content and every second while a capture runs, so a file whose writer
// died mid-capture can be read up to its last flush: it has no trailer, and
// may end without a gzip footer or inside a line. Reader reports this as
// ErrIncomplete after returning every complete record. Anything else
// malformed (bad gzip data or checksum, a line that is not JSON, a second
// header, a record after the trailer, a record without its body) is an
// error naming the line.
//
// With standard tools: `zcat syscalls.jsonl.gz | jq -c 'select(.record=="event").event'`.
//
// # API
//
// NewWriter writes the header, Process/Socket/Event write records, Close
// writes the trailer and ends the gzip stream. An optional Reserve/Release
// pair lets the caller enforce a size cap shared between several files:
// the Writer reserves a worst-case compressed size for each record and
// returns the surplus at every flush; a refused record is ErrLimit and
// nothing of it is written.
//
// NewReader (or Open) reads the header, Next returns the process, socket and
// event records, then io.EOF; Trailer is set once Next returned io.EOF.
//
// # Concurrency and ownership
//
// A Writer or Reader is used by one goroutine at a time. Neither closes the
// io.Writer or io.Reader it was given; Open returns the *os.File for the
// caller to close.
package capfile
