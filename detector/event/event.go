package event

import (
	"strings"
	"time"
)

// Event types, as they appear in Event.Type and in rules as evt.type.
const (
	Exec         = "exec"          // a process replaced its image (execve, execveat)
	Fork         = "fork"          // a new process (not a thread)
	Exit         = "exit"          // a process ended
	Open         = "open"          // open, openat, openat2, creat succeeded
	Connect      = "connect"       // connect, whatever its result (Ret: 0, -EINPROGRESS, or the -errno it failed with)
	Accept       = "accept"        // accept, accept4, whatever the result (Ret: the new fd or -errno) but EAGAIN, which the kernel counts and drops
	Bind         = "bind"          // bind succeeded
	Listen       = "listen"        // listen succeeded
	Socket       = "socket"        // socket succeeded
	Ptrace       = "ptrace"        // any ptrace request
	MemfdCreate  = "memfd_create"  // memfd_create
	Setuid       = "setuid"        // setuid, setgid, setre*, setres*, setfs*
	Dup          = "dup"           // an AF_INET/AF_INET6 socket duplicated onto fd 0, 1 or 2
	Chmod        = "chmod"         // chmod, fchmod, fchmodat, fchmodat2 succeeded
	Symlink      = "symlink"       // symlink, symlinkat succeeded
	Link         = "link"          // link, linkat (a hard link) succeeded
	Unlink       = "unlink"        // unlink, unlinkat, rmdir succeeded
	Rename       = "rename"        // rename, renameat, renameat2 succeeded
	Truncate     = "truncate"      // truncate, ftruncate succeeded
	Mount        = "mount"         // mount, whatever its result
	Umount       = "umount"        // umount2, whatever its result
	Setns        = "setns"         // setns, whatever its result
	Unshare      = "unshare"       // unshare, whatever its result
	Chdir        = "chdir"         // chdir, fchdir succeeded (Path: the directory as given; fchdir: the name behind the fd)
	CPUHigh      = "cpu_high"      // a container's CPU stayed above the threshold
	MemoryGrowth = "memory_growth" // a container's memory grew beyond the threshold
)

// Types lists every event type.
func Types() []string {
	return []string{Exec, Fork, Exit, Open, Connect, Accept, Bind, Listen, Socket, Ptrace, MemfdCreate, Setuid, Dup,
		Chmod, Symlink, Link, Unlink, Rename, Truncate, Mount, Umount, Setns, Unshare, Chdir, CPUHigh, MemoryGrowth}
}

// HostID is Container.ID for events of processes outside any container.
const HostID = "host"

// Event is one decoded, enriched event. Fields that do not apply to the
// event's type are zero and omitted from JSON.
type Event struct {
	Type    string    `json:"type"`
	Syscall string    `json:"syscall,omitempty"` // the exact syscall, e.g. "openat", "setresuid"
	Time    time.Time `json:"time"`

	// The process.
	PID       uint32   `json:"pid"`
	TID       uint32   `json:"tid,omitempty"`
	PPID      uint32   `json:"ppid"`
	VPID      uint32   `json:"vpid,omitempty"` // pid inside the process's own pid namespace (1: the container's main process)
	UID       uint32   `json:"uid"`            // real uid
	EUID      uint32   `json:"euid"`           // effective uid
	GID       uint32   `json:"gid"`
	User      string   `json:"user,omitempty"` // name of EUID, from the container's /etc/passwd
	Comm      string   `json:"comm"`           // kernel comm (15 bytes at most)
	Exe       string   `json:"exe,omitempty"`  // executable path as exec'd
	Args      []string `json:"args,omitempty"` // argv, argv[0] included
	Cwd       string   `json:"cwd,omitempty"`  // best effort, from /proc at decode time
	TTY       uint32   `json:"tty,omitempty"`  // controlling terminal device number, 0 without one
	PName     string   `json:"pname,omitempty"`
	PExe      string   `json:"pexe,omitempty"`
	PArgs     []string `json:"pargs,omitempty"`
	Ancestors []string `json:"ancestors,omitempty"` // names of the parent, grandparent, ... (at most 8)

	// Exec details.
	ExeUpperLayer bool `json:"exe_upper_layer,omitempty"` // the binary was written in the container (overlayfs upper layer)
	ExeMemfd      bool `json:"exe_memfd,omitempty"`       // the binary is a memfd
	StdinNet      bool `json:"stdin_net,omitempty"`       // fd 0 is an AF_INET/AF_INET6 socket
	StdoutNet     bool `json:"stdout_net,omitempty"`      // fd 1 is an AF_INET/AF_INET6 socket
	ArgsTruncated bool `json:"args_truncated,omitempty"`

	// Files: open (path, flags, mode, fd in Ret), memfd_create (name in
	// Path, flags), connect/bind on AF_UNIX (socket path), chmod (path,
	// mode), unlink (path, unlinkat's flags), truncate (path, the length in
	// SysArgs), symlink and link (Path: the new link, Target: what it
	// points at), rename (Path: the old name, Target: the new one), mount
	// (Path: the source, Target: the mount point, FSType, flags), umount
	// (Path: the mount point, flags), setns (Path: the namespace file's
	// name, e.g. "net:[4026532281]", Flags: the nstype), unshare (Flags).
	// fchmod, ftruncate and setns name a file by descriptor: FD is set and
	// Path is the file's last path component only.
	Path   string `json:"path,omitempty"`
	Target string `json:"target,omitempty"`
	FSType string `json:"fstype,omitempty"`
	Flags  uint64 `json:"flags,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`

	// Network: connect, accept, bind, listen, socket, dup, and exec when
	// stdin/stdout is a socket.
	Family     string `json:"family,omitempty"`    // "inet", "inet6", "unix", "packet", "netlink" or the number
	SockType   string `json:"sock_type,omitempty"` // "stream", "dgram", "raw", "seqpacket" or the number
	LocalAddr  string `json:"local_addr,omitempty"`
	LocalPort  uint16 `json:"local_port,omitempty"`
	RemoteAddr string `json:"remote_addr,omitempty"`
	RemotePort uint16 `json:"remote_port,omitempty"`
	FD         int64  `json:"fd,omitempty"` // the fd the call was about (connect, bind, listen, dup's old fd, fchmod, ftruncate, setns), or an *at call's directory fd

	// SysArgs are the raw numeric arguments of ptrace (request, pid, addr,
	// data), setuid family (the ids), socket (domain, type, protocol),
	// truncate (the length).
	SysArgs []int64 `json:"sys_args,omitempty"`
	Ret     int64   `json:"ret"` // syscall result; exit: the exit code

	Container Container `json:"container"`

	// Resource events.
	CPUPercent        float64 `json:"cpu_percent,omitempty"`         // cpu_high: average over the window, 100 = one core
	CPUSeconds        float64 `json:"cpu_seconds,omitempty"`         // cpu_high: how long it stayed above the threshold
	MemoryBytes       int64   `json:"memory_bytes,omitempty"`        // memory_growth: current usage
	MemoryGrowthBytes int64   `json:"memory_growth_bytes,omitempty"` // memory_growth: growth over the window

	// TopProcesses are, for cpu_high, the container's processes that used
	// the most CPU over the window and, for memory_growth, those whose
	// resident set grew the most; the first is also the event's process
	// (PID, Comm).
	TopProcesses []ProcUsage `json:"top_processes,omitempty"`
}

// ProcUsage is one process's share of a resource event.
type ProcUsage struct {
	PID            uint32  `json:"pid"`
	Comm           string  `json:"comm"`
	CPUPercent     float64 `json:"cpu_percent,omitempty"`      // 100 = one core, over the window
	RSSBytes       int64   `json:"rss_bytes,omitempty"`        // resident set now
	RSSGrowthBytes int64   `json:"rss_growth_bytes,omitempty"` // growth since the window warmed
}

// Container identifies the container of an event. ID is HostID for host
// processes.
type Container struct {
	ID      string            `json:"id"`                // full id (64 hex), or "host"
	Name    string            `json:"name,omitempty"`    // without the leading "/"
	Image   string            `json:"image,omitempty"`   // repository, e.g. "docker.io/library/nginx" as configured
	Tag     string            `json:"tag,omitempty"`     // tag, "latest" when none was given
	Digest  string            `json:"digest,omitempty"`  // when the image was referenced by digest
	Labels  map[string]string `json:"labels,omitempty"`  // container labels
	Runtime string            `json:"runtime,omitempty"` // "docker", "podman", "containerd", "cri-o"
	Ports   []uint16          `json:"ports,omitempty"`   // declared ports: image EXPOSE and published ports
	// Healthcheck is the argv of the container's health check, nil without
	// one (see containers.HealthcheckArgv).
	Healthcheck []string `json:"healthcheck,omitempty"`
	// BuildStep: the container runs a RUN step of a classic `docker
	// build` (see containers.IsBuildStep).
	BuildStep bool   `json:"build_step,omitempty"`
	PodUID    string `json:"pod_uid,omitempty"` // Kubernetes pod, from the cgroup path
	CgroupID  uint64 `json:"cgroup_id,omitempty"`
	Cgroup    string `json:"cgroup,omitempty"` // the cgroup name the kernel reported
}

// ShortID is the 12-character id Falco and docker ps show, or "host".
func (c Container) ShortID() string {
	if c.ID == "" || c.ID == HostID {
		return HostID
	}
	if len(c.ID) > 12 {
		return c.ID[:12]
	}
	return c.ID
}

// IsHost reports whether the event happened outside any container.
func (c Container) IsHost() bool { return c.ID == "" || c.ID == HostID }

// MatchesID reports whether id (full or a prefix of at least 12 characters,
// or "host") names this container.
func (c Container) MatchesID(id string) bool {
	if id == HostID || id == "" {
		return c.IsHost()
	}
	return !c.IsHost() && len(id) >= 12 && strings.HasPrefix(c.ID, id)
}

// Cmdline is the command line as Falco writes proc.cmdline: the process
// name followed by its arguments, without a trailing space when there are
// none.
func (e *Event) Cmdline() string {
	if len(e.Args) <= 1 {
		return e.Comm
	}
	return e.Comm + " " + strings.Join(e.Args[1:], " ")
}
