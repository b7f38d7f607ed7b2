package capview

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

// timeForm is how event times are printed: UTC, nanoseconds. The date is
// in the header line.
const timeForm = "15:04:05.000000000"

// EventLine formats one event as one line of text, sysdig style:
//
//	<num> <time> <comm> (<pid>[:<vpid>]) <type>[(<syscall>)] <details>
//
// num is the event's position in the file, from 1.
func EventLine(num uint64, ev *event.Event) string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(num, 10))
	b.WriteByte(' ')
	b.WriteString(ev.Time.UTC().Format(timeForm))
	b.WriteByte(' ')
	b.WriteString(orDash(ev.Comm))
	b.WriteString(" (")
	b.WriteString(strconv.FormatUint(uint64(ev.PID), 10))
	if ev.VPID != 0 && ev.VPID != ev.PID {
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(uint64(ev.VPID), 10))
	}
	b.WriteString(") ")
	b.WriteString(ev.Type)
	if ev.Syscall != "" && ev.Syscall != ev.Type {
		b.WriteString("(" + ev.Syscall + ")")
	}
	for _, kv := range details(ev) {
		b.WriteByte(' ')
		b.WriteString(kv)
	}
	return b.String()
}

func details(ev *event.Event) []string {
	var out []string
	add := func(k, v string) {
		if v != "" {
			out = append(out, k+"="+v)
		}
	}
	res := func() { add("res", Result(ev.Ret)) }
	switch ev.Type {
	case event.Exec:
		add("exe", quoteIfNeeded(ev.Exe))
		add("cmdline", strconv.Quote(evCmdline(ev)))
		if ev.PName != "" || ev.PPID != 0 {
			add("parent", fmt.Sprintf("%s(%d)", orDash(ev.PName), ev.PPID))
		}
		add("user", userOf(ev.User, ev.EUID))
		add("tty", TTYName(ev.TTY))
		add("cwd", quoteIfNeeded(ev.Cwd))
		var flags []string
		for _, f := range []struct {
			on   bool
			name string
		}{{ev.ExeUpperLayer, "exe_upper_layer"}, {ev.ExeMemfd, "exe_memfd"}, {ev.StdinNet, "stdin_net"}, {ev.StdoutNet, "stdout_net"}, {ev.ArgsTruncated, "args_truncated"}} {
			if f.on {
				flags = append(flags, f.name)
			}
		}
		add("flags", strings.Join(flags, ","))
		if ev.Ret != 0 {
			res()
		}
	case event.Fork:
		add("child", strconv.FormatUint(uint64(ev.PID), 10))
		add("parent", fmt.Sprintf("%s(%d)", orDash(ev.PName), ev.PPID))
	case event.Exit:
		add("code", strconv.FormatInt(ev.Ret, 10))
	case event.Open:
		add("fd", fdOrRes(ev.Ret))
		add("name", quoteIfNeeded(ev.Path))
		add("flags", rules.OpenFlags(ev.Flags))
		if ev.Flags&0o100 != 0 || ev.Flags&0o20000000 != 0 { // O_CREAT, O_TMPFILE
			add("mode", fmt.Sprintf("%#o", ev.Mode))
		}
	case event.MemfdCreate:
		add("fd", fdOrRes(ev.Ret))
		add("name", strconv.Quote(ev.Path))
		add("flags", rules.MemfdFlags(ev.Flags))
	case event.Connect, event.Accept, event.Bind, event.Listen, event.Dup:
		env := rules.NewEnv(ev)
		fd := env.FD
		if ev.Type == event.Dup {
			add("oldfd", strconv.FormatInt(ev.FD, 10))
			add("newfd", strconv.FormatInt(ev.Ret, 10))
		} else {
			add("fd", strconv.FormatInt(fd.Num, 10))
		}
		switch {
		case ev.Family == "unix":
			add("path", quoteIfNeeded(ev.Path))
		case fd.Name != "":
			add("tuple", fd.Name)
		}
		add("proto", fd.L4Proto)
		if ev.Family != "inet" && ev.Family != "inet6" {
			add("family", ev.Family)
		}
		if ev.Type != event.Dup && ev.Type != event.Accept {
			res()
		}
	case event.Socket:
		if len(ev.SysArgs) >= 2 {
			add("domain", rules.SocketDomain(ev.SysArgs[0]))
			add("type", rules.SocketType(ev.SysArgs[1]))
		}
		if len(ev.SysArgs) >= 3 {
			add("protocol", strconv.FormatInt(ev.SysArgs[2], 10))
		}
		add("fd", fdOrRes(ev.Ret))
	case event.Ptrace:
		if len(ev.SysArgs) >= 2 {
			add("request", rules.PtraceRequest(ev.SysArgs[0]))
			add("pid", strconv.FormatInt(ev.SysArgs[1], 10))
		}
		res()
	case event.Setuid:
		ids := make([]string, len(ev.SysArgs))
		for i, a := range ev.SysArgs {
			ids[i] = strconv.FormatInt(a, 10)
		}
		add("ids", strings.Join(ids, ","))
		res()
	case event.Chmod, event.Unlink, event.Truncate, event.Chdir:
		arg := rules.NewEnv(ev).Evt.Arg
		if ev.FD != 0 {
			add("fd", strconv.FormatInt(ev.FD, 10))
		}
		add("name", quoteIfNeeded(ev.Path))
		switch ev.Type {
		case event.Chmod:
			add("mode", fmt.Sprintf("%#o", ev.Mode))
		case event.Unlink:
			add("flags", arg.Flags)
		case event.Truncate:
			add("length", strconv.FormatInt(arg.Length, 10))
		}
		res()
	case event.Symlink, event.Link, event.Rename:
		arg := rules.NewEnv(ev).Evt.Arg
		if ev.Type == event.Symlink {
			add("target", quoteIfNeeded(arg.Target))
			add("linkpath", quoteIfNeeded(arg.Linkpath))
		} else {
			add("oldpath", quoteIfNeeded(arg.Oldpath))
			add("newpath", quoteIfNeeded(arg.Newpath))
		}
		res()
	case event.Mount, event.Umount:
		arg := rules.NewEnv(ev).Evt.Arg
		add("dev", quoteIfNeeded(arg.Dev))
		add("dir", quoteIfNeeded(arg.Dir))
		add("type", arg.Type)
		add("flags", arg.Flags)
		res()
	case event.Setns, event.Unshare:
		arg := rules.NewEnv(ev).Evt.Arg
		if ev.Type == event.Setns {
			add("fd", strconv.FormatInt(ev.FD, 10))
			add("ns", quoteIfNeeded(ev.Path))
		}
		add("flags", arg.Flags)
		res()
	case event.CPUHigh:
		add("cpu_percent", strconv.FormatFloat(ev.CPUPercent, 'f', 1, 64))
		add("seconds", strconv.FormatFloat(ev.CPUSeconds, 'f', 1, 64))
	case event.MemoryGrowth:
		add("memory_bytes", strconv.FormatInt(ev.MemoryBytes, 10))
		add("growth_bytes", strconv.FormatInt(ev.MemoryGrowthBytes, 10))
	default:
		res()
	}
	return out
}

// Result spells a syscall result: the number, and the errno name when it
// is an error ("-2(ENOENT)").
func Result(ret int64) string {
	if ret < 0 && ret > -4096 {
		if name := unix.ErrnoName(syscall.Errno(-ret)); name != "" {
			return strconv.FormatInt(ret, 10) + "(" + name + ")"
		}
	}
	return strconv.FormatInt(ret, 10)
}

func fdOrRes(ret int64) string {
	if ret < 0 {
		return Result(ret)
	}
	return strconv.FormatInt(ret, 10)
}

// TTYName names a tty device number as /proc/<pid>/stat encodes it:
// "pts/0", "tty1", "ttyS0", or "136:0"; "" for 0.
func TTYName(nr uint32) string {
	if nr == 0 {
		return ""
	}
	major := (nr >> 8) & 0xfff
	minor := (nr & 0xff) | ((nr >> 12) & 0xfff00)
	switch {
	case major >= 136 && major <= 143:
		return "pts/" + strconv.FormatUint(uint64((major-136)*256+minor), 10)
	case major == 4 && minor < 64:
		return "tty" + strconv.FormatUint(uint64(minor), 10)
	case major == 4:
		return "ttyS" + strconv.FormatUint(uint64(minor-64), 10)
	case major == 5 && minor == 0:
		return "tty"
	case major == 5 && minor == 1:
		return "console"
	}
	return strconv.FormatUint(uint64(major), 10) + ":" + strconv.FormatUint(uint64(minor), 10)
}

func userOf(name string, uid uint32) string {
	if name == "" {
		return strconv.FormatUint(uint64(uid), 10)
	}
	return name + "(" + strconv.FormatUint(uint64(uid), 10) + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// quoteIfNeeded quotes s when it holds spaces, quotes, '=' or anything
// not printable, so that a line splits unambiguously on spaces.
func quoteIfNeeded(s string) string {
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '=' || r == '\\' || r > '~' {
			return strconv.Quote(s)
		}
	}
	return s
}

// evCmdline is the event's command line as ps shows it: argv joined with
// spaces, or the process name when argv is unknown. (argv[0] rather than
// the kernel's comm: busybox re-executes itself through /proc/self/exe,
// whose comm is "exe" while argv[0] is the applet, "cat".)
func evCmdline(ev *event.Event) string { return cmdline(ev.Comm, ev.Args) }

func cmdline(comm string, args []string) string {
	if len(args) == 0 {
		return comm
	}
	return strings.Join(args, " ")
}

// HeaderLines describes a capture file's header as comment lines.
func HeaderLines(h capfile.Header) []string {
	c := h.Container
	lines := []string{fmt.Sprintf("# riposte capture %s (format %s v%d) of container %s (%s), image %s, on %s",
		h.CaptureID, h.Format, h.Version, orDash(c.Name), shortID(c.ID), orDash(c.Image), orDash(h.Hostname))}
	why := []string{}
	if h.Incident != "" {
		why = append(why, "incident "+h.Incident)
	}
	if h.Rule != "" {
		why = append(why, "rule "+strconv.Quote(h.Rule))
	}
	if h.Alert != "" {
		why = append(why, "alert "+h.Alert)
	}
	if h.Actor != "" {
		why = append(why, "by "+h.Actor)
	}
	if len(why) > 0 {
		lines = append(lines, "# "+strings.Join(why, ", "))
	}
	lines = append(lines, fmt.Sprintf("# started %s, ends by %s (duration %s, max %d bytes)",
		h.Started.UTC().Format(time.RFC3339Nano), h.EndsAt.UTC().Format(time.RFC3339Nano), h.Duration, h.MaxBytes))
	for _, n := range c.Networks {
		lines = append(lines, fmt.Sprintf("# network %s ip=%s gateway=%s mac=%s", n.Name, orDash(n.IP), orDash(n.Gateway), orDash(n.MAC)))
	}
	return lines
}

// ProcessLine describes a process of the state header.
func ProcessLine(p *capfile.Process) string {
	s := fmt.Sprintf("# process %d", p.PID)
	if p.VPID != 0 {
		s += fmt.Sprintf(":%d", p.VPID)
	}
	s += fmt.Sprintf(" ppid=%d user=%s", p.PPID, userOf(p.User, p.EUID))
	if t := TTYName(p.TTY); t != "" {
		s += " tty=" + t
	}
	if p.Cwd != "" {
		s += " cwd=" + quoteIfNeeded(p.Cwd)
	}
	return s + " cmdline=" + strconv.Quote(cmdline(p.Comm, p.Args))
}

// SocketLine describes a socket of the state header.
func SocketLine(s *capfile.Socket) string {
	out := "# socket " + s.Proto
	if s.Type != "" {
		out += "/" + s.Type
	}
	if s.State != "" {
		out += " " + s.State
	}
	if s.Proto == "unix" {
		if s.Path != "" {
			out += " path=" + quoteIfNeeded(s.Path)
		}
	} else {
		out += " " + hostPort(s.LocalAddr, s.LocalPort)
		if s.RemoteAddr != "" && !isUnspecified(s.RemoteAddr) {
			out += "->" + hostPort(s.RemoteAddr, s.RemotePort)
		}
	}
	out += fmt.Sprintf(" inode=%d uid=%d", s.Inode, s.UID)
	for i, pid := range s.PIDs {
		name := "-"
		if i < len(s.Comms) {
			name = s.Comms[i]
		}
		out += fmt.Sprintf(" %s(%d)", name, pid)
	}
	return out
}

// TrailerLine describes how a capture ended.
func TrailerLine(t *capfile.Trailer) string {
	s := fmt.Sprintf("# ended %s reason=%s events=%d truncated=%t lost=%d (kernel %d, queue %d, subscriber %d)",
		t.Ended.UTC().Format(time.RFC3339Nano), t.Reason, t.Events, t.Truncated, t.Lost.Total(), t.Lost.Kernel, t.Lost.Queue, t.Lost.Subscriber)
	if t.Error != "" {
		s += " error=" + strconv.Quote(t.Error)
	}
	return s
}

func hostPort(ip string, port uint16) string {
	if ip == "" {
		ip = "0.0.0.0"
	}
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + strconv.FormatUint(uint64(port), 10)
	}
	return ip + ":" + strconv.FormatUint(uint64(port), 10)
}

func isUnspecified(ip string) bool { return ip == "0.0.0.0" || ip == "::" }

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return orDash(id)
}
