package rules

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/detector/event"
)

// Env is what a rule condition, a filter and an output see: Falco-style
// dotted names (evt.type, proc.name, fd.name, container.image.repository,
// user.name) backed by typed structs, so that a misspelt field is a load
// error. NewEnv builds it from an Event.
type Env struct {
	Evt       Evt       `expr:"evt"`
	Proc      Proc      `expr:"proc"`
	FD        FD        `expr:"fd"`
	Container Container `expr:"container"`
	User      User      `expr:"user"`
	K8s       K8s       `expr:"k8s"`
}

// K8s holds k8s.* fields: the pod of a container, from the CRI labels the
// kubelet puts on it (io.kubernetes.pod.*) and, for the uid, from the pod's
// cgroup path when no runtime answers.
type K8s struct {
	Pod Pod `expr:"pod"`
	NS  NS  `expr:"ns"`
}

// Pod holds k8s.pod.* fields.
type Pod struct {
	Name string `expr:"name"`
	UID  string `expr:"uid"`
}

// NS holds k8s.ns.* fields.
type NS struct {
	Name string `expr:"name"`
}

// CRI labels the kubelet sets on every container of a pod.
const (
	LabelPodName      = "io.kubernetes.pod.name"
	LabelPodNamespace = "io.kubernetes.pod.namespace"
	LabelPodUID       = "io.kubernetes.pod.uid"
)

// Evt holds evt.* fields.
type Evt struct {
	Type         string `expr:"type"`           // event.Exec, event.Open, ...
	Syscall      string `expr:"syscall"`        // the exact syscall ("openat", "setresuid")
	Time         int64  `expr:"time"`           // nanoseconds since the Unix epoch
	Res          int64  `expr:"res"`            // syscall result (fd, 0, -errno); exit: exit code
	IsOpenRead   bool   `expr:"is_open_read"`   // open for reading (O_RDONLY or O_RDWR)
	IsOpenWrite  bool   `expr:"is_open_write"`  // open for writing (O_WRONLY, O_RDWR, O_CREAT or O_TRUNC)
	IsOpenCreate bool   `expr:"is_open_create"` // open with O_CREAT
	Failed       bool   `expr:"failed"`         // the syscall failed (a connect in progress, EINPROGRESS, has not)
	Errno        string `expr:"errno"`          // the error a failed syscall returned ("ECONNREFUSED"), "" otherwise
	Arg          Arg    `expr:"arg"`
}

// Arg holds evt.arg.* fields: decoded syscall arguments.
type Arg struct {
	Request  string `expr:"request"`  // ptrace: "PTRACE_ATTACH", "PTRACE_SEIZE", "PTRACE_POKETEXT", ...
	PID      int64  `expr:"pid"`      // ptrace: the target pid
	UID      int64  `expr:"uid"`      // setuid family: the first id argument
	Domain   string `expr:"domain"`   // socket: "AF_INET", "AF_PACKET", ...
	Type     string `expr:"type"`     // socket: "SOCK_STREAM", "SOCK_RAW", ...; mount: the file system type
	Flags    string `expr:"flags"`    // open: "O_WRONLY|O_CREAT"; memfd_create: "MFD_CLOEXEC|..."; mount: "MS_BIND|..."; umount: "MNT_DETACH|..."; unshare, setns: "CLONE_NEWNS|..."; unlink: "AT_REMOVEDIR"
	Name     string `expr:"name"`     // memfd_create: the name; unlink: the path
	Mode     string `expr:"mode"`     // chmod: "S_ISUID|S_IRWXU|..." (the bits set)
	Target   string `expr:"target"`   // symlink: what the link points at, as written
	Linkpath string `expr:"linkpath"` // symlink: the new link
	Oldpath  string `expr:"oldpath"`  // link: the existing file; rename: the old name
	Newpath  string `expr:"newpath"`  // link: the new name; rename: the new name
	Dev      string `expr:"dev"`      // mount: the source
	Dir      string `expr:"dir"`      // mount, umount: the mount point
	Length   int64  `expr:"length"`   // truncate: the new length
}

// Proc holds proc.* fields about the process that caused the event.
type Proc struct {
	Name            string   `expr:"name"`               // comm
	Exe             string   `expr:"exe"`                // argv[0]
	ExePath         string   `expr:"exepath"`            // the executable path as exec'd
	Args            string   `expr:"args"`               // arguments after argv[0], space-separated
	Cmdline         string   `expr:"cmdline"`            // name and arguments
	PID             int64    `expr:"pid"`                //
	PPID            int64    `expr:"ppid"`               //
	VPID            int64    `expr:"vpid"`               // pid in the container (1: its main process)
	PName           string   `expr:"pname"`              // parent's name
	PExePath        string   `expr:"pexepath"`           //
	PCmdline        string   `expr:"pcmdline"`           //
	ANames          []string `expr:"anames"`             // parent, grandparent, ... names
	TTY             int64    `expr:"tty"`                // controlling terminal, 0 without one
	Cwd             string   `expr:"cwd"`                // best effort
	IsExeUpperLayer bool     `expr:"is_exe_upper_layer"` // binary written inside the container
	IsExeFromMemfd  bool     `expr:"is_exe_from_memfd"`  // binary is a memfd
	StdinIsNet      bool     `expr:"stdin_is_net"`       // exec: fd 0 is a network socket
	StdoutIsNet     bool     `expr:"stdout_is_net"`      // exec: fd 1 is a network socket
	// IsContainerHealthcheck: the process is the container's health check
	// (its argv is the configured check's) or a child of it.
	IsContainerHealthcheck bool `expr:"is_container_healthcheck"`
}

// FD holds fd.* fields about the file or socket of the event.
type FD struct {
	Name      string `expr:"name"`      // file path; sockets: "cip:cport->sip:sport"; unix: the path
	Directory string `expr:"directory"` // file: directory of Name
	Filename  string `expr:"filename"`  // file: base name of Name
	Num       int64  `expr:"num"`       // the fd
	Type      string `expr:"type"`      // "file", "ipv4", "ipv6", "unix", "memfd", "socket"
	L4Proto   string `expr:"l4proto"`   // "tcp", "udp", "raw"
	SIP       string `expr:"sip"`       // server address: remote for connect, local otherwise
	SPort     int64  `expr:"sport"`
	CIP       string `expr:"cip"` // client address
	CPort     int64  `expr:"cport"`
	LIP       string `expr:"lip"` // local address
	LPort     int64  `expr:"lport"`
	RIP       string `expr:"rip"` // remote address
	RPort     int64  `expr:"rport"`
}

// Container holds container.* fields.
type Container struct {
	ID      string            `expr:"id"`      // 12-character id, "host" outside containers
	FullID  string            `expr:"full_id"` // 64-character id
	Name    string            `expr:"name"`
	Image   Image             `expr:"image"`
	Labels  map[string]string `expr:"labels"`
	Runtime string            `expr:"runtime"`
	Ports   []int64           `expr:"ports"` // declared ports (EXPOSE and published)
	// IsBuildStep: the container runs a RUN step of a classic `docker
	// build` (riposte's field; Falco has none).
	IsBuildStep bool   `expr:"is_build_step"`
	CPU         CPU    `expr:"cpu"`
	Memory      Memory `expr:"memory"`
}

// Image holds container.image.* fields.
type Image struct {
	Repository string `expr:"repository"`
	Tag        string `expr:"tag"`
	Digest     string `expr:"digest"`
}

// CPU holds container.cpu.* fields (cpu_high events).
type CPU struct {
	Percent float64 `expr:"percent"` // 100 = one core
	Seconds float64 `expr:"seconds"` // length of the window whose mean reached the threshold
	Top     string  `expr:"top"`     // busiest processes over the window: "xmrig(4242) 97.1%, sh(4200) 0.0%"
}

// Memory holds container.memory.* fields (memory_growth events).
type Memory struct {
	Bytes  int64  `expr:"bytes"`  // working set
	Growth int64  `expr:"growth"` // growth over the window, bytes
	Top    string `expr:"top"`    // processes that grew most: "python(77) +64.0MiB rss=70.2MiB"
}

// User holds user.* fields.
type User struct {
	UID  int64  `expr:"uid"` // effective uid
	Name string `expr:"name"`
}

// NewEnv builds the rule environment of ev.
func NewEnv(ev *event.Event) *Env {
	env := &Env{}
	env.Evt = Evt{Type: ev.Type, Syscall: ev.Syscall, Time: ev.Time.UnixNano(), Res: ev.Ret}
	if failed(ev) {
		env.Evt.Failed = true
		env.Evt.Errno = unix.ErrnoName(syscall.Errno(-ev.Ret))
		if env.Evt.Errno == "" {
			env.Evt.Errno = "E" + strconv.FormatInt(-ev.Ret, 10)
		}
	}

	p := &env.Proc
	p.Name = ev.Comm
	p.ExePath = ev.Exe
	if len(ev.Args) > 0 {
		p.Exe = ev.Args[0]
		p.Args = strings.Join(ev.Args[1:], " ")
	}
	p.Cmdline = ev.Cmdline()
	p.PID, p.PPID, p.VPID = int64(ev.PID), int64(ev.PPID), int64(ev.VPID)
	p.PName, p.PExePath = ev.PName, ev.PExe
	if len(ev.PArgs) > 0 || ev.PName != "" {
		p.PCmdline = ev.PName
		if len(ev.PArgs) > 1 {
			p.PCmdline += " " + strings.Join(ev.PArgs[1:], " ")
		}
	}
	p.ANames = ev.Ancestors
	p.TTY = int64(ev.TTY)
	p.Cwd = ev.Cwd
	p.IsExeUpperLayer, p.IsExeFromMemfd = ev.ExeUpperLayer, ev.ExeMemfd
	p.StdinIsNet, p.StdoutIsNet = ev.StdinNet, ev.StdoutNet
	if hc := ev.Container.Healthcheck; len(hc) > 0 {
		p.IsContainerHealthcheck = slices.Equal(ev.Args, hc) || slices.Equal(ev.PArgs, hc)
	}

	env.User = User{UID: int64(ev.EUID), Name: ev.User}

	c := &env.Container
	c.ID = ev.Container.ShortID()
	c.FullID = ev.Container.ID
	if c.FullID == "" {
		c.FullID = event.HostID
	}
	c.Name = ev.Container.Name
	if ev.Container.IsHost() {
		c.Name = event.HostID
	}
	c.Image = Image{Repository: ev.Container.Image, Tag: ev.Container.Tag, Digest: ev.Container.Digest}
	c.Labels = ev.Container.Labels
	env.K8s.Pod.Name = ev.Container.Labels[LabelPodName]
	env.K8s.NS.Name = ev.Container.Labels[LabelPodNamespace]
	env.K8s.Pod.UID = ev.Container.PodUID
	if env.K8s.Pod.UID == "" {
		env.K8s.Pod.UID = ev.Container.Labels[LabelPodUID]
	}
	c.Runtime = ev.Container.Runtime
	c.IsBuildStep = ev.Container.BuildStep
	for _, port := range ev.Container.Ports {
		c.Ports = append(c.Ports, int64(port))
	}
	c.CPU = CPU{Percent: ev.CPUPercent, Seconds: ev.CPUSeconds}
	c.Memory = Memory{Bytes: ev.MemoryBytes, Growth: ev.MemoryGrowthBytes}
	switch ev.Type {
	case event.CPUHigh:
		c.CPU.Top = topString(ev.TopProcesses, func(u event.ProcUsage) string { return fmt.Sprintf("%.1f%%", u.CPUPercent) })
	case event.MemoryGrowth:
		c.Memory.Top = topString(ev.TopProcesses, func(u event.ProcUsage) string {
			return fmt.Sprintf("%+.1fMiB rss=%.1fMiB", float64(u.RSSGrowthBytes)/(1<<20), float64(u.RSSBytes)/(1<<20))
		})
	}

	switch ev.Type {
	case event.Open:
		env.Evt.IsOpenRead, env.Evt.IsOpenWrite, env.Evt.IsOpenCreate = openMode(ev.Flags)
		env.Evt.Arg.Flags = OpenFlags(ev.Flags)
		env.FD = FD{Name: ev.Path, Directory: path.Dir(ev.Path), Filename: path.Base(ev.Path), Num: ev.Ret, Type: "file"}
	case event.MemfdCreate:
		env.Evt.Arg.Name = ev.Path
		env.Evt.Arg.Flags = MemfdFlags(ev.Flags)
		env.FD = FD{Name: "memfd:" + ev.Path, Num: ev.Ret, Type: "memfd"}
	case event.Ptrace:
		if len(ev.SysArgs) >= 2 {
			env.Evt.Arg.Request = PtraceRequest(ev.SysArgs[0])
			env.Evt.Arg.PID = ev.SysArgs[1]
		}
	case event.Setuid:
		if len(ev.SysArgs) >= 1 {
			env.Evt.Arg.UID = ev.SysArgs[0]
		}
	case event.Socket:
		if len(ev.SysArgs) >= 2 {
			env.Evt.Arg.Domain = SocketDomain(ev.SysArgs[0])
			env.Evt.Arg.Type = SocketType(ev.SysArgs[1])
		}
		env.FD = FD{Num: ev.Ret, Type: fdTypeOf(ev.Family), L4Proto: l4(ev.SockType)}
	case event.Connect, event.Accept, event.Bind, event.Listen, event.Dup:
		env.FD = sockFD(ev)
	case event.Exec:
		if ev.StdinNet || ev.StdoutNet {
			env.FD = sockFD(ev)
		}
	case event.Chmod:
		env.Evt.Arg.Mode = ModeBits(ev.Mode)
		env.FD = fileFD(ev.Path, ev.FD)
	case event.Unlink:
		env.Evt.Arg.Name = ev.Path
		env.Evt.Arg.Flags = flagString(ev.Flags, unlinkFlagNames)
		env.FD = fileFD(ev.Path, ev.FD)
	case event.Truncate:
		if len(ev.SysArgs) > 0 {
			env.Evt.Arg.Length = ev.SysArgs[0]
		}
		env.FD = fileFD(ev.Path, ev.FD)
	case event.Symlink:
		env.Evt.Arg.Target, env.Evt.Arg.Linkpath = ev.Target, ev.Path
		env.FD = fileFD(ev.Path, 0)
	case event.Link, event.Rename:
		// The kernel event's Path is the old name for rename, the new
		// link for link; the arguments say which is which.
		if ev.Type == event.Link {
			env.Evt.Arg.Oldpath, env.Evt.Arg.Newpath = ev.Target, ev.Path
		} else {
			env.Evt.Arg.Oldpath, env.Evt.Arg.Newpath = ev.Path, ev.Target
		}
		env.FD = fileFD(env.Evt.Arg.Newpath, 0)
	case event.Mount:
		env.Evt.Arg.Dev, env.Evt.Arg.Dir, env.Evt.Arg.Type = ev.Path, ev.Target, ev.FSType
		flags := ev.Flags
		if flags&0xffff0000 == 0xc0ed0000 { // MS_MGC_VAL, the old magic the kernel ignores
			flags &= 0xffff
		}
		env.Evt.Arg.Flags = flagString(flags, mountFlagNames)
		env.FD = fileFD(ev.Target, 0)
	case event.Umount:
		env.Evt.Arg.Dir = ev.Path
		env.Evt.Arg.Flags = flagString(ev.Flags, umountFlagNames)
		env.FD = fileFD(ev.Path, 0)
	case event.Setns, event.Unshare:
		env.Evt.Arg.Flags = flagString(ev.Flags, cloneFlagNames)
		if ev.Type == event.Setns {
			env.FD = FD{Name: ev.Path, Num: ev.FD, Type: "namespace"}
		}
	}
	return env
}

// failed reports whether ev is a syscall that returned an error. A
// non-blocking connect in progress (EINPROGRESS) has not failed; exit
// carries an exit code, and resource events no result.
func failed(ev *event.Event) bool {
	if ev.Ret >= 0 || ev.Type == event.Exit || ev.Type == event.CPUHigh || ev.Type == event.MemoryGrowth {
		return false
	}
	return !(ev.Type == event.Connect && ev.Ret == -int64(unix.EINPROGRESS))
}

// fileFD describes the file a file event is about: by path, or only by
// descriptor (fchmod, ftruncate; name is then the file's base name).
func fileFD(name string, fd int64) FD {
	f := FD{Name: name, Num: fd, Type: "file"}
	if name != "" {
		f.Directory, f.Filename = path.Dir(name), path.Base(name)
	}
	return f
}

// topString spells a resource event's top processes as
// "name(pid) value, ...".
func topString(top []event.ProcUsage, value func(event.ProcUsage) string) string {
	parts := make([]string, 0, len(top))
	for _, u := range top {
		parts = append(parts, fmt.Sprintf("%s(%d) %s", u.Comm, u.PID, value(u)))
	}
	return strings.Join(parts, ", ")
}

func sockFD(ev *event.Event) FD {
	fd := FD{Num: ev.FD, Type: fdTypeOf(ev.Family), L4Proto: l4(ev.SockType),
		LIP: ev.LocalAddr, LPort: int64(ev.LocalPort), RIP: ev.RemoteAddr, RPort: int64(ev.RemotePort)}
	if ev.Type == event.Accept {
		fd.Num = ev.Ret
	}
	if fd.Type == "unix" {
		fd.Name = ev.Path
		return fd
	}
	// fd.name is always client->server. The server is the remote end of
	// what this process connected to, and the local end of what it
	// accepted, bound or listens on. A socket met as dup's old fd or as an
	// exec'd process's stdin/stdout has no known role: see localIsClient.
	if ev.Type == event.Connect || ((ev.Type == event.Dup || ev.Type == event.Exec) && localIsClient(fd.LPort, fd.RPort)) {
		fd.SIP, fd.SPort, fd.CIP, fd.CPort = fd.RIP, fd.RPort, fd.LIP, fd.LPort
	} else {
		fd.SIP, fd.SPort, fd.CIP, fd.CPort = fd.LIP, fd.LPort, fd.RIP, fd.RPort
	}
	if fd.SIP != "" || fd.CIP != "" {
		fd.Name = hostPort(fd.CIP, fd.CPort) + "->" + hostPort(fd.SIP, fd.SPort)
	}
	return fd
}

// Linux's default ip_local_port_range, where connect picks client ports.
const ephemeralLow, ephemeralHigh = 32768, 60999

func ephemeral(port int64) bool { return port >= ephemeralLow && port <= ephemeralHigh }

// localIsClient guesses the role of a connected socket of unknown origin:
// the end on an ephemeral port (ip_local_port_range's default) is the
// client; when both or neither are, the end on the higher port is. A
// reverse shell's socket (connected out from an ephemeral port to the
// attacker's listener) and a bind shell's (accepted on its listening port)
// are both named client->server, like connect and accept.
func localIsClient(lport, rport int64) bool {
	if ephemeral(lport) != ephemeral(rport) {
		return ephemeral(lport)
	}
	return lport > rport
}

func hostPort(ip string, port int64) string {
	if ip == "" {
		ip = "0.0.0.0"
	}
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + strconv.FormatInt(port, 10)
	}
	return ip + ":" + strconv.FormatInt(port, 10)
}

func fdTypeOf(family string) string {
	switch family {
	case "inet":
		return "ipv4"
	case "inet6":
		return "ipv6"
	case "unix":
		return "unix"
	case "":
		return ""
	}
	return "socket"
}

func l4(sockType string) string {
	switch sockType {
	case "stream":
		return "tcp"
	case "dgram":
		return "udp"
	case "raw":
		return "raw"
	}
	return ""
}

// Open flag bits (x86_64).
const (
	oAccMode = 03
	oWronly  = 01
	oRdwr    = 02
	oCreat   = 0100
	oTrunc   = 01000
)

func openMode(flags uint64) (read, write, create bool) {
	acc := flags & oAccMode
	read = acc == 0 || acc == oRdwr
	create = flags&oCreat != 0
	write = acc == oWronly || acc == oRdwr || create || flags&oTrunc != 0
	return read, write, create
}

var openFlagNames = []struct {
	bit  uint64
	name string
}{
	{oCreat, "O_CREAT"}, {0200, "O_EXCL"}, {0400, "O_NOCTTY"}, {oTrunc, "O_TRUNC"}, {02000, "O_APPEND"},
	{04000, "O_NONBLOCK"}, {010000, "O_DSYNC"}, {040000, "O_DIRECT"}, {0200000, "O_DIRECTORY"},
	{0400000, "O_NOFOLLOW"}, {01000000, "O_NOATIME"}, {02000000, "O_CLOEXEC"}, {010000000, "O_PATH"},
	{020000000, "O_TMPFILE"},
}

// OpenFlags spells open(2) flags as "O_RDONLY|O_CLOEXEC".
func OpenFlags(flags uint64) string {
	var parts []string
	switch flags & oAccMode {
	case 0:
		parts = append(parts, "O_RDONLY")
	case oWronly:
		parts = append(parts, "O_WRONLY")
	case oRdwr:
		parts = append(parts, "O_RDWR")
	}
	for _, f := range openFlagNames {
		if flags&f.bit == f.bit && (f.bit != 0200000 || flags&020000000 == 0) {
			parts = append(parts, f.name)
		}
	}
	return strings.Join(parts, "|")
}

type flagName struct {
	bit  uint64
	name string
}

// flagString spells the bits of flags named in names, "A|B"; bits without
// a name are added as one hexadecimal number.
func flagString(flags uint64, names []flagName) string {
	var parts []string
	for _, f := range names {
		if flags&f.bit == f.bit && f.bit != 0 {
			parts = append(parts, f.name)
			flags &^= f.bit
		}
	}
	if flags != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(flags, 16))
	}
	return strings.Join(parts, "|")
}

var (
	modeBitNames = []flagName{{0o4000, "S_ISUID"}, {0o2000, "S_ISGID"}, {0o1000, "S_ISVTX"},
		{0o400, "S_IRUSR"}, {0o200, "S_IWUSR"}, {0o100, "S_IXUSR"}, {0o40, "S_IRGRP"}, {0o20, "S_IWGRP"},
		{0o10, "S_IXGRP"}, {0o4, "S_IROTH"}, {0o2, "S_IWOTH"}, {0o1, "S_IXOTH"}}
	unlinkFlagNames = []flagName{{0x200, "AT_REMOVEDIR"}}
	mountFlagNames  = []flagName{{1, "MS_RDONLY"}, {2, "MS_NOSUID"}, {4, "MS_NODEV"}, {8, "MS_NOEXEC"},
		{16, "MS_SYNCHRONOUS"}, {32, "MS_REMOUNT"}, {64, "MS_MANDLOCK"}, {128, "MS_DIRSYNC"}, {1024, "MS_NOATIME"},
		{2048, "MS_NODIRATIME"}, {4096, "MS_BIND"}, {8192, "MS_MOVE"}, {16384, "MS_REC"}, {32768, "MS_SILENT"},
		{1 << 17, "MS_UNBINDABLE"}, {1 << 18, "MS_PRIVATE"}, {1 << 19, "MS_SLAVE"}, {1 << 20, "MS_SHARED"},
		{1 << 21, "MS_RELATIME"}, {1 << 24, "MS_STRICTATIME"}, {1 << 25, "MS_LAZYTIME"}}
	umountFlagNames = []flagName{{1, "MNT_FORCE"}, {2, "MNT_DETACH"}, {4, "MNT_EXPIRE"}, {8, "UMOUNT_NOFOLLOW"}}
	cloneFlagNames  = []flagName{{0x80, "CLONE_NEWTIME"}, {0x200, "CLONE_FS"}, {0x400, "CLONE_FILES"},
		{0x20000, "CLONE_NEWNS"}, {0x40000, "CLONE_SYSVSEM"}, {0x02000000, "CLONE_NEWCGROUP"},
		{0x04000000, "CLONE_NEWUTS"}, {0x08000000, "CLONE_NEWIPC"}, {0x10000000, "CLONE_NEWUSER"},
		{0x20000000, "CLONE_NEWPID"}, {0x40000000, "CLONE_NEWNET"}}
)

// ModeBits spells a chmod(2) mode as the names of its bits, set-user-ID
// first: "S_ISUID|S_IRUSR|S_IWUSR|S_IXUSR|...". 0 is "".
func ModeBits(mode uint32) string { return flagString(uint64(mode), modeBitNames) }

// MemfdFlags spells memfd_create(2) flags.
func MemfdFlags(flags uint64) string {
	var parts []string
	for _, f := range []struct {
		bit  uint64
		name string
	}{{1, "MFD_CLOEXEC"}, {2, "MFD_ALLOW_SEALING"}, {4, "MFD_HUGETLB"}, {8, "MFD_NOEXEC_SEAL"}, {16, "MFD_EXEC"}} {
		if flags&f.bit != 0 {
			parts = append(parts, f.name)
		}
	}
	return strings.Join(parts, "|")
}

var ptraceRequests = map[int64]string{
	0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSR",
	4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSR", 7: "PTRACE_CONT",
	8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP", 12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS",
	16: "PTRACE_ATTACH", 17: "PTRACE_DETACH", 24: "PTRACE_SYSCALL", 0x4200: "PTRACE_SETOPTIONS",
	0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT",
}

// PtraceRequest names a ptrace(2) request.
func PtraceRequest(req int64) string {
	if s, ok := ptraceRequests[req]; ok {
		return s
	}
	return "PTRACE_" + strconv.FormatInt(req, 10)
}

var socketDomains = map[int64]string{1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}

// SocketDomain names a socket(2) domain.
func SocketDomain(d int64) string {
	if s, ok := socketDomains[d]; ok {
		return s
	}
	return "AF_" + strconv.FormatInt(d, 10)
}

var socketTypes = map[int64]string{1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 5: "SOCK_SEQPACKET"}

// SocketType names a socket(2) type (without SOCK_NONBLOCK/SOCK_CLOEXEC).
func SocketType(t int64) string {
	if s, ok := socketTypes[t&0xf]; ok {
		return s
	}
	return "SOCK_" + strconv.FormatInt(t&0xf, 10)
}

// inCIDR reports whether ip lies in any of cidrs (CIDRs or single
// addresses). Malformed entries never match.
func inCIDR(ip string, cidrs []any) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, c := range cidrs {
		s, ok := c.(string)
		if !ok {
			continue
		}
		if strings.Contains(s, "/") {
			if p, err := netip.ParsePrefix(s); err == nil && p.Contains(addr) {
				return true
			}
		} else if a, err := netip.ParseAddr(s); err == nil && a.Unmap() == addr {
			return true
		}
	}
	return false
}

// glob reports whether s matches the shell pattern (path.Match syntax).
func glob(s, pattern string) bool {
	ok, _ := path.Match(pattern, s)
	return ok
}
