package console

import (
	"context"
	"time"
)

// Update is what a Source sends: new rows and snapshots. Nil slices change
// nothing; Containers and Incidents, when set (ContainersSet,
// IncidentsSet), replace the whole list. It is also the wire format of the
// server's stream (one JSON object per line).
type Update struct {
	Containers    []Container `json:"containers,omitempty"`
	ContainersSet bool        `json:"containers_set,omitempty"`
	Incidents     []Incident  `json:"incidents,omitempty"`
	IncidentsSet  bool        `json:"incidents_set,omitempty"`
	Procs         []Proc      `json:"procs,omitempty"` // new or changed processes (key: container, pid, start)
	Conns         []Conn      `json:"conns,omitempty"`
	Spies         []Spy       `json:"spies,omitempty"`
	Files         []File      `json:"files,omitempty"`
	Alerts        []Alert     `json:"alerts,omitempty"`
	Stats         *Stats      `json:"stats,omitempty"`
	// Err is a source problem worth showing (Docker unreachable, the
	// server went away); it does not stop the console.
	Err string `json:"err,omitempty"`
	// Connected: the source is (again) connected; an earlier Err is over.
	Connected bool `json:"connected,omitempty"`
}

// Container is one container as the runtime reports it.
type Container struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image string `json:"image"`
	// State: running, paused, exited, ...; Quarantined is shown beside it.
	State       string  `json:"state"`
	Quarantined bool    `json:"quarantined,omitempty"`
	Protected   bool    `json:"protected,omitempty"`
	CPUPercent  float64 `json:"cpu_percent"` // 100 = one core
	MemoryBytes int64   `json:"memory_bytes"`
}

// Proc is one process of a container.
type Proc struct {
	ContainerID string     `json:"container_id"`
	Container   string     `json:"container,omitempty"` // name
	PID         uint32     `json:"pid"`
	PPID        uint32     `json:"ppid"`
	User        string     `json:"user,omitempty"`
	Cmdline     string     `json:"cmdline"`
	Started     time.Time  `json:"started"`
	Exited      *time.Time `json:"exited,omitempty"`
	ExitCode    *int64     `json:"exit_code,omitempty"`
}

// Conn is one new connection: connect (out) or accept (in), refused and
// failed ones included.
type Conn struct {
	Time        time.Time `json:"time"`
	ContainerID string    `json:"container_id"`
	Container   string    `json:"container,omitempty"`
	Direction   string    `json:"direction"` // out or in
	Proto       string    `json:"proto"`
	Client      string    `json:"client"`
	Server      string    `json:"server"`
	PID         uint32    `json:"pid"`
	Comm        string    `json:"comm"`
	Result      string    `json:"result"` // ok, in progress, accepted, or the errno of a failed connect (ECONNREFUSED)
}

// Spy is one command run from an interactive shell.
type Spy struct {
	Time        time.Time `json:"time"`
	ContainerID string    `json:"container_id"`
	Container   string    `json:"container,omitempty"`
	User        string    `json:"user,omitempty"`
	TTY         string    `json:"tty,omitempty"`
	Shell       string    `json:"shell"`
	PID         uint32    `json:"pid"`
	Cmdline     string    `json:"cmdline"`
}

// File is one file operation.
type File struct {
	Time        time.Time `json:"time"`
	ContainerID string    `json:"container_id"`
	Container   string    `json:"container,omitempty"`
	Op          string    `json:"op"` // read, write, create, delete, rename, chmod, symlink, link, truncate
	PID         uint32    `json:"pid"`
	Comm        string    `json:"comm"`
	Path        string    `json:"path"`             // rename: the old name; link, symlink: the new link
	Target      string    `json:"target,omitempty"` // rename: the new name; link, symlink: what the link points at
	Detail      string    `json:"detail,omitempty"` // chmod: "mode 04755"; truncate: "length 0"
	Result      string    `json:"result"`
}

// Alert is one alert of a container, counted in the containers view.
type Alert struct {
	Time        time.Time `json:"time"`
	ContainerID string    `json:"container_id"`
	Rule        string    `json:"rule"`
	Priority    string    `json:"priority"`
}

// Incident is one open (or recently released) incident.
type Incident struct {
	ID          string        `json:"id"`
	ContainerID string        `json:"container_id"`
	Container   string        `json:"container,omitempty"`
	Rule        string        `json:"rule"`
	State       string        `json:"state"`
	OpenedAt    time.Time     `json:"opened_at"`
	Alerts      int           `json:"alerts"`
	Actions     []ActionState `json:"actions,omitempty"`
	Pending     []PendingAppr `json:"pending,omitempty"`
}

// ActionState is one action of an incident and where it is.
type ActionState struct {
	Action string `json:"action"`
	State  string `json:"state"` // planned, held, started, succeeded, failed, skipped
}

// PendingAppr is a held action waiting for approval.
type PendingAppr struct {
	ID     string `json:"id"`
	Action string `json:"action"`
}

// Stats are the detector's counters: EventsPerSec over the last interval,
// Drops since start (kernel, queue and subscriber drops together).
type Stats struct {
	Events       uint64  `json:"events"`
	EventsPerSec float64 `json:"events_per_sec"`
	Drops        uint64  `json:"drops"`
	Source       string  `json:"source,omitempty"` // "in-process detector", "server 127.0.0.1:8080"
}

// Source feeds the console until ctx ends: Run calls send for every
// Update, never concurrently, and returns when ctx ends (nil) or when the
// source cannot go on.
type Source interface {
	Run(ctx context.Context, send func(Update)) error
}

// Request is one action asked from the keyboard.
type Request struct {
	Action    string            // "container.pause", or "approve"/"deny" for a held action
	Container string            // container id
	Incident  string            // the selected incident, if any
	Approval  string            // the approval id, for approve and deny
	With      map[string]string // parameters (capture duration)
}

// Expr is a compiled expression filter (the detector's rule language).
// Match reports whether a row's record, a Container, Proc, Conn, Spy, File
// or Incident, matches; ok is false when the record does not carry a
// field the expression reads, and the expression then does not filter
// that record's view.
type Expr interface {
	Match(record any) (match, ok bool)
}

// Actor runs a Request through riposte's act path (guardrails, approvals,
// journal) as the OS user. note says what happened; err is a refusal or a
// failure, shown to the user.
type Actor interface {
	Act(ctx context.Context, r Request) (note string, err error)
}
