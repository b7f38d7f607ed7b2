package capfile

import (
	"time"

	"github.com/riposte-sec/riposte/detector/event"
)

// Format is the value of Header.Format in every capture file.
const Format = "riposte-capture"

// Version is the format version this package writes and reads. A reader
// refuses a file of another version.
const Version = 1

// Record kinds, the value of the "record" key of every line.
const (
	KindHeader  = "header"
	KindProcess = "process"
	KindSocket  = "socket"
	KindEvent   = "event"
	KindTrailer = "trailer"
)

// MaxRecordBytes bounds one line of a capture file (uncompressed, newline
// excluded). Writers never write a longer line; readers refuse one.
const MaxRecordBytes = 4 << 20

// Record is one line of a capture file: Kind names the record and the
// field of the same name holds its body; the other fields are nil.
type Record struct {
	Kind    string       `json:"record"`
	Header  *Header      `json:"header,omitempty"`
	Process *Process     `json:"process,omitempty"`
	Socket  *Socket      `json:"socket,omitempty"`
	Event   *event.Event `json:"event,omitempty"`
	Trailer *Trailer     `json:"trailer,omitempty"`
}

// Header is the first record of a capture file.
type Header struct {
	Format    string    `json:"format"`  // always Format
	Version   int       `json:"version"` // always Version
	CaptureID string    `json:"capture_id"`
	Started   time.Time `json:"started"`
	Hostname  string    `json:"hostname,omitempty"`
	Container Container `json:"container"`
	// Incident, Alert, Rule and Actor say why the capture was taken.
	Incident string `json:"incident,omitempty"`
	Alert    string `json:"alert,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Actor    string `json:"actor,omitempty"`
	// Limits the capture was started with.
	Duration time.Duration `json:"duration_ns"`
	MaxBytes int64         `json:"max_bytes"`
	// EndsAt is Started + Duration: the capture ends then at the latest.
	EndsAt time.Time `json:"ends_at"`
}

// Container identifies the captured container.
type Container struct {
	ID       string            `json:"id"` // full 64-hex id
	Name     string            `json:"name,omitempty"`
	Image    string            `json:"image,omitempty"`    // as the container was created with it
	ImageID  string            `json:"image_id,omitempty"` // sha256:...
	PID      int               `json:"pid,omitempty"`      // host pid of its main process at start
	Labels   map[string]string `json:"labels,omitempty"`
	Networks []Network         `json:"networks,omitempty"`
}

// Network is one network the container was attached to at start.
type Network struct {
	Name    string `json:"name"`
	IP      string `json:"ip,omitempty"`
	IPv6    string `json:"ipv6,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	MAC     string `json:"mac,omitempty"`
}

// Process is one process of the container when the capture started, read
// from /proc.
type Process struct {
	PID  uint32   `json:"pid"`            // host pid
	PPID uint32   `json:"ppid"`           // host pid of the parent
	VPID uint32   `json:"vpid,omitempty"` // pid inside the container
	UID  uint32   `json:"uid"`            // real uid
	EUID uint32   `json:"euid"`
	GID  uint32   `json:"gid"`
	User string   `json:"user,omitempty"` // name of EUID in the container's /etc/passwd
	Comm string   `json:"comm"`
	Exe  string   `json:"exe,omitempty"`  // executable, as the container sees it
	Args []string `json:"args,omitempty"` // argv
	// ArgsTruncated: argv was longer than riposte keeps (64KiB).
	ArgsTruncated bool      `json:"args_truncated,omitempty"`
	Cwd           string    `json:"cwd,omitempty"`
	TTY           uint32    `json:"tty,omitempty"` // controlling terminal device number
	Started       time.Time `json:"started,omitzero"`
}

// Socket is one socket open in the container's network namespace when the
// capture started, read from /proc/<pid>/net/{tcp,tcp6,udp,udp6,raw,raw6,unix}.
type Socket struct {
	Proto      string   `json:"proto"`           // tcp, tcp6, udp, udp6, raw, raw6, unix
	State      string   `json:"state,omitempty"` // LISTEN, ESTABLISHED, ... (tcp); CONNECTED, ... (unix)
	Type       string   `json:"type,omitempty"`  // unix: stream, dgram, seqpacket
	LocalAddr  string   `json:"local_addr,omitempty"`
	LocalPort  uint16   `json:"local_port,omitempty"`
	RemoteAddr string   `json:"remote_addr,omitempty"`
	RemotePort uint16   `json:"remote_port,omitempty"`
	Path       string   `json:"path,omitempty"` // unix: the bound path; "@name" for the abstract namespace
	Inode      uint64   `json:"inode"`
	UID        uint32   `json:"uid"`
	PIDs       []uint32 `json:"pids,omitempty"`  // container processes holding it (host pids)
	Comms      []string `json:"comms,omitempty"` // their names, same order
}

// Trailer is the last record of a capture file that was closed properly.
type Trailer struct {
	Ended time.Time `json:"ended"`
	// Reason the capture ended: ReasonDuration, ReasonMaxBytes, ...
	Reason string `json:"reason"`
	// Truncated is true when the size cap was reached: what happened
	// after that is not in the file. Events the detector lost are counted
	// in Lost instead.
	Truncated bool `json:"truncated"`
	// Events is the number of event records in the file.
	Events uint64 `json:"events"`
	// Lost counts events the detector lost while the capture ran. They are
	// detector-wide counters (every container, every subscriber), so they
	// are an upper bound for this capture.
	Lost Lost `json:"lost"`
	// Error is set when the capture ended on an error.
	Error string `json:"error,omitempty"`
}

// Lost counts events lost while a capture ran, by where they were lost.
type Lost struct {
	Kernel     uint64 `json:"kernel"`     // ring buffer full
	Queue      uint64 `json:"queue"`      // detector queue full
	Subscriber uint64 `json:"subscriber"` // a subscriber's channel full
}

// Total is the sum of the counters.
func (l Lost) Total() uint64 { return l.Kernel + l.Queue + l.Subscriber }

// Reasons a capture ends, as Trailer.Reason says it.
const (
	ReasonDuration        = "duration"         // the duration elapsed
	ReasonMaxBytes        = "max_bytes"        // the size cap was reached
	ReasonStopped         = "stopped"          // stopped by hand or at shutdown
	ReasonContainerExited = "container_exited" // the container's main process ended
	ReasonDetectorStopped = "detector_stopped" // the detector closed the subscription
	ReasonError           = "error"            // writing failed; see Trailer.Error
)
