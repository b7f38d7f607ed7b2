package sensor

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unsafe"

	"github.com/riposte-sec/riposte/bpf"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/procs"
)

// Kernel event types (enum event_type in sensor.c), indexed by value.
var typeNames = [...]string{
	1: event.Exec, 2: event.Fork, 3: event.Exit, 4: event.Open, 5: event.Connect, 6: event.Accept,
	7: event.Bind, 8: event.Listen, 9: event.Socket, 10: event.Ptrace, 11: event.MemfdCreate,
	12: event.Setuid, 13: event.Dup, 14: event.Chmod, 15: event.Symlink, 16: event.Link, 17: event.Unlink,
	18: event.Rename, 19: event.Truncate, 20: event.Mount, 21: event.Umount, 22: event.Setns, 23: event.Unshare,
	24: event.Chdir,
}

// KernelTypes lists the event types the kernel sensor produces.
func KernelTypes() []string {
	return append([]string(nil), typeNames[1:]...)
}

// Event flags (EF_* in sensor.c).
const (
	flagTTY = 1 << iota
	flagExeUpper
	flagExeMemfd
	flagStdinInet
	flagStdoutInet
	flagArgsTrunc
	flagNet
	flagFDName
	flagNSFS
)

// atFDCWD is AT_FDCWD: a path relative to the working directory.
const atFDCWD = -100

// Where path2 events (symlink, link, rename, mount) carry their second
// path and the file system type: the start of the argv buffer (PATH_LEN
// and FSTYPE_LEN in sensor.c).
const path2Len, fstypeLen = 256, 32

var syscallNames = map[uint32]string{
	2: "open", 32: "dup", 33: "dup2", 41: "socket", 42: "connect", 43: "accept", 49: "bind", 50: "listen",
	85: "creat", 101: "ptrace", 105: "setuid", 106: "setgid", 113: "setreuid", 114: "setregid",
	117: "setresuid", 119: "setresgid", 122: "setfsuid", 123: "setfsgid", 257: "openat", 288: "accept4",
	292: "dup3", 319: "memfd_create", 437: "openat2", 76: "truncate", 77: "ftruncate", 82: "rename", 84: "rmdir",
	86: "link", 87: "unlink", 88: "symlink", 90: "chmod", 91: "fchmod", 165: "mount", 166: "umount2",
	263: "unlinkat", 264: "renameat", 265: "linkat", 266: "symlinkat", 268: "fchmodat", 272: "unshare",
	308: "setns", 316: "renameat2", 452: "fchmodat2", 80: "chdir", 81: "fchdir",
}

const (
	recordSize = int(unsafe.Sizeof(bpf.SensorEvent{}))
	shortSize  = int(unsafe.Offsetof(bpf.SensorEvent{}.Argv))
)

// Record is a decoded ring-buffer record before enrichment: the event plus
// the kernel's view of the cgroup.
type Record struct {
	Event      event.Event
	CgroupName string
	CgroupID   uint64
	Cgroup2ID  uint64 // the task's v2 cgroup, whichever hierarchy CgroupID is in
	BootNanos  uint64 // kernel timestamp, CLOCK_BOOTTIME
}

// Decode parses one ring-buffer record. bootOffset converts the kernel's
// CLOCK_BOOTTIME timestamps to wall time (see BootOffset). Fields that need
// user-space context (container, parent, user name, cwd) are left for the
// caller.
func Decode(raw []byte, bootOffset time.Duration, rec *Record) error {
	if len(raw) < shortSize {
		return fmt.Errorf("decode event: record of %d bytes, want at least %d", len(raw), shortSize)
	}
	var r bpf.SensorEvent
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r)), recordSize), raw)
	if r.Type == 0 || int(r.Type) >= len(typeNames) {
		return fmt.Errorf("decode event: unknown event type %d", r.Type)
	}
	*rec = Record{CgroupName: cstr(r.Cgroup[:]), CgroupID: r.CgroupId, Cgroup2ID: r.Cgroup2Id, BootNanos: r.Ts}
	ev := &rec.Event
	ev.Type = typeNames[r.Type]
	ev.Syscall = syscallNames[r.Syscall]
	ev.Time = time.Unix(0, int64(r.Ts)+int64(bootOffset))
	ev.PID, ev.TID, ev.PPID, ev.VPID = r.Pid, r.Tid, r.Ppid, r.Vpid
	ev.UID, ev.EUID, ev.GID = r.Uid, r.Euid, r.Gid
	ev.TTY = r.Tty
	ev.Comm = cstr(r.Comm[:])
	ev.Ret = r.Ret
	ev.Container.CgroupID = r.CgroupId
	ev.Container.Cgroup = rec.CgroupName
	path := cstr(r.Path[:])

	switch ev.Type {
	case event.Exec:
		ev.Exe = path
		if len(raw) >= recordSize {
			n := min(int(r.ArgvLen), len(r.Argv))
			ev.Args = procs.SplitArgv(i8bytes(r.Argv[:n]))
		}
		ev.ExeUpperLayer = r.Flags&flagExeUpper != 0
		ev.ExeMemfd = r.Flags&flagExeMemfd != 0
		ev.StdinNet = r.Flags&flagStdinInet != 0
		ev.StdoutNet = r.Flags&flagStdoutInet != 0
		ev.ArgsTruncated = r.Flags&flagArgsTrunc != 0
		ev.Ret = 0
	case event.Open:
		ev.Path = path
		ev.Flags = r.Arg[0]
		ev.Mode = uint32(r.Arg[1])
		if dfd := int32(r.Arg[2]); dfd != -100 {
			ev.FD = int64(dfd)
		}
	case event.MemfdCreate:
		ev.Path = path
		ev.Flags = r.Arg[0]
	case event.Ptrace:
		ev.SysArgs = []int64{int64(r.Arg[0]), int64(int32(r.Arg[1])), int64(r.Arg[2]), int64(r.Arg[3])}
	case event.Setuid:
		// uid_t arguments are 32-bit; -1 means "unchanged".
		ev.SysArgs = []int64{int64(int32(r.Arg[0])), int64(int32(r.Arg[1])), int64(int32(r.Arg[2]))}
	case event.Socket:
		ev.SysArgs = []int64{int64(r.Arg[0]), int64(r.Arg[1]), int64(r.Arg[2])}
	case event.Connect, event.Accept, event.Bind, event.Listen, event.Dup:
		ev.FD = int64(int32(r.Arg[0]))
		if ev.Type == event.Listen {
			ev.SysArgs = []int64{int64(r.Arg[0]), int64(int32(r.Arg[1]))}
		}
		if r.Family == 1 {
			ev.Path = path
		}
	case event.Chmod, event.Unlink, event.Truncate, event.Umount, event.Setns, event.Unshare, event.Chdir:
		ev.Path = path
		switch ev.Type {
		case event.Chmod:
			ev.Mode = uint32(r.Arg[0]) & 07777
		case event.Truncate:
			ev.SysArgs = []int64{int64(r.Arg[0])}
		default:
			ev.Flags = r.Arg[0]
		}
		if ev.Type != event.Unshare {
			ev.FD = dirFD(r.Arg[2], r.Flags&flagFDName != 0)
		}
		if r.Flags&flagNSFS != 0 {
			// A namespace file, named as /proc/PID/ns/* links read.
			ev.Path = path + ":[" + strconv.FormatUint(r.Arg[3]&0xffffffff, 10) + "]"
		}
	case event.Symlink, event.Link, event.Rename, event.Mount:
		ev.Path = path
		argv := i8bytes(r.Argv[:])
		ev.Target = cstr8(argv[:path2Len])
		if ev.Type == event.Mount {
			ev.FSType = cstr8(argv[path2Len : path2Len+fstypeLen])
		}
		ev.Flags = r.Arg[0]
		ev.FD = dirFD(r.Arg[2], false)
	case event.Exit:
		// exit_code: the status in bits 8-15, a terminating signal in 0-6.
		ev.Ret = r.Ret
	}
	if r.Family != 0 {
		ev.Family = familyName(r.Family)
		ev.SockType = sockTypeName(r.SockType)
	}
	if r.Flags&flagNet != 0 {
		ev.LocalAddr = addr(r.Family, r.Laddr)
		ev.RemoteAddr = addr(r.Family, r.Raddr)
		ev.LocalPort, ev.RemotePort = r.Lport, r.Rport
	}
	return nil
}

// dirFD is Event.FD for a file event: the fd itself when the call named a
// file by descriptor, the directory fd of an *at call, 0 for AT_FDCWD.
func dirFD(arg uint64, byFD bool) int64 {
	fd := int64(int32(arg))
	if !byFD && fd == atFDCWD {
		return 0
	}
	return fd
}

func addr(family uint16, b [16]uint8) string {
	switch family {
	case 2:
		return netip.AddrFrom4([4]byte(b[:4])).String()
	case 10:
		return netip.AddrFrom16(b).Unmap().String()
	}
	return ""
}

func familyName(f uint16) string {
	switch f {
	case 1:
		return "unix"
	case 2:
		return "inet"
	case 10:
		return "inet6"
	case 16:
		return "netlink"
	case 17:
		return "packet"
	}
	return strconv.Itoa(int(f))
}

func sockTypeName(t uint16) string {
	switch t & 0xf {
	case 0:
		return ""
	case 1:
		return "stream"
	case 2:
		return "dgram"
	case 3:
		return "raw"
	case 5:
		return "seqpacket"
	}
	return strconv.Itoa(int(t & 0xf))
}

func i8bytes(b []int8) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
}

func cstr(b []int8) string { return cstr8(i8bytes(b)) }

func cstr8(bs []byte) string {
	if i := bytes.IndexByte(bs, 0); i >= 0 {
		bs = bs[:i]
	}
	return string(bs)
}
