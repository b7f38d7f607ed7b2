package topfeed

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/internal/console"
	"github.com/riposte-sec/riposte/responders/capture/capview"
)

// maxTracked bounds the processes a Tracker remembers: the exited ones
// are forgotten first.
const maxTracked = 50000

// shells are the programs whose children, with a terminal, are commands
// typed by someone (sysdig's spy_users).
var shells = map[string]bool{"sh": true, "bash": true, "ash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true,
	"fish": true, "csh": true, "tcsh": true, "rbash": true}

type tracked struct {
	row   console.Proc
	comm  string
	tty   uint32
	argv0 string // base name of argv[0] since its exec; "" for a forked copy
}

// Tracker follows processes through events and turns events into rows.
type Tracker struct {
	procs  map[string]*tracked // container/pid: the live process of that pid
	filter *rules.Filter
}

// NewTracker returns a Tracker; filter, when not nil, keeps only the events
// that match it (the detector's expression language).
func NewTracker(filter *rules.Filter) *Tracker {
	return &Tracker{procs: map[string]*tracked{}, filter: filter}
}

func key(ev *event.Event) string {
	return ev.Container.ID + "/" + strconv.FormatUint(uint64(ev.PID), 10)
}

// Add adds the rows ev makes to u. Host events are left out: the console
// shows containers.
func (t *Tracker) Add(ev *event.Event, u *console.Update) {
	if ev.Container.IsHost() {
		return
	}
	if t.filter != nil {
		if ok, err := t.filter.Match(ev); err != nil || !ok {
			return
		}
	}
	name := ev.Container.Name
	switch ev.Type {
	case event.Fork:
		p := &tracked{row: console.Proc{ContainerID: ev.Container.ID, Container: name, PID: ev.PID, PPID: ev.PPID, User: userOf(ev),
			Cmdline: ev.Cmdline(), Started: ev.Time}, comm: ev.Comm, tty: ev.TTY}
		if parent, ok := t.procs[ev.Container.ID+"/"+strconv.FormatUint(uint64(ev.PPID), 10)]; ok {
			p.row.Cmdline = parent.row.Cmdline
		}
		t.put(key(ev), p)
		u.Procs = append(u.Procs, p.row)
	case event.Exec:
		prev, known := t.procs[key(ev)]
		if spy, ok := t.spy(ev, prev, known); ok {
			u.Spies = append(u.Spies, spy)
		}
		p := prev
		if !known {
			p = &tracked{row: console.Proc{ContainerID: ev.Container.ID, Container: name, PID: ev.PID, PPID: ev.PPID, Started: ev.Time}}
			t.put(key(ev), p)
		}
		p.row.PPID, p.row.User, p.row.Cmdline, p.row.Container = ev.PPID, userOf(ev), cmdline(ev), name
		p.comm, p.tty, p.argv0 = ev.Comm, ev.TTY, ""
		if len(ev.Args) > 0 {
			p.argv0 = path.Base(ev.Args[0])
			if len(p.argv0) > 15 {
				p.argv0 = p.argv0[:15] // TASK_COMM_LEN - 1
			}
		}
		u.Procs = append(u.Procs, p.row)
	case event.Exit:
		p, ok := t.procs[key(ev)]
		if !ok {
			return
		}
		at, code := ev.Time, capview.ExitCode(ev.Ret)
		p.row.Exited, p.row.ExitCode = &at, &code
		u.Procs = append(u.Procs, p.row)
		delete(t.procs, key(ev))
	case event.Connect, event.Accept:
		t.renamed(ev, u)
		u.Conns = append(u.Conns, connRow(ev))
	case event.Open:
		t.renamed(ev, u)
		env := rules.NewEnv(ev)
		op := "read"
		switch {
		case env.Evt.IsOpenCreate:
			op = "create"
		case env.Evt.IsOpenWrite:
			op = "write"
		}
		u.Files = append(u.Files, console.File{Time: ev.Time, ContainerID: ev.Container.ID, Container: name, Op: op, PID: ev.PID,
			Comm: ev.Comm, Path: ev.Path, Result: fdOrErr(ev.Ret)})
	case event.Unlink, event.Rename, event.Chmod, event.Symlink, event.Link, event.Truncate:
		t.renamed(ev, u)
		u.Files = append(u.Files, fileOpRow(ev))
	}
}

// fileOpRow is the row of a file operation other than open: a delete, a
// rename (Path the old name, Target the new one), a chmod (Detail the new
// mode), a link or symlink (Path the new link, Target what it points at),
// a truncate (Detail the new length).
func fileOpRow(ev *event.Event) console.File {
	f := console.File{Time: ev.Time, ContainerID: ev.Container.ID, Container: ev.Container.Name, Op: ev.Type, PID: ev.PID,
		Comm: ev.Comm, Path: ev.Path, Result: okOrErr(ev)}
	switch ev.Type {
	case event.Unlink:
		f.Op = "delete"
	case event.Rename, event.Symlink, event.Link:
		f.Target = ev.Target
	case event.Chmod:
		f.Detail = fmt.Sprintf("mode 0%03o", ev.Mode)
	case event.Truncate:
		if len(ev.SysArgs) > 0 {
			f.Detail = "length " + strconv.FormatInt(ev.SysArgs[0], 10)
		}
	}
	if f.Path == "" && ev.FD != 0 {
		f.Path = "fd " + strconv.FormatInt(ev.FD, 10)
	}
	return f
}

// renamed notices a process that took a new name without exec (busybox
// runs applets like ls in the forked shell): its command becomes
// "ls [no exec]", and, forked from an interactive shell, it is a command
// typed there.
func (t *Tracker) renamed(ev *event.Event, u *console.Update) {
	p, ok := t.procs[key(ev)]
	if !ok || ev.Comm == "" || ev.Comm == p.comm || (ev.TID != 0 && ev.TID != ev.PID) {
		return
	}
	p.comm = ev.Comm
	if ev.Comm == p.argv0 {
		return // named itself after its argv[0] (busybox re-executed through /proc/self/exe)
	}
	p.row.Cmdline = ev.Comm + " [no exec]"
	u.Procs = append(u.Procs, p.row)
	parent, ok := t.procs[ev.Container.ID+"/"+strconv.FormatUint(uint64(p.row.PPID), 10)]
	if ok && shells[parent.comm] && parent.tty != 0 && p.tty != 0 && !shells[ev.Comm] {
		u.Spies = append(u.Spies, console.Spy{Time: ev.Time, ContainerID: ev.Container.ID, Container: ev.Container.Name,
			User: userOf(ev), TTY: capview.TTYName(p.tty), Shell: parent.comm, PID: ev.PID, Cmdline: p.row.Cmdline})
	}
}

// spy returns the command row of an exec typed in an interactive shell: a
// process with a terminal whose parent (or an ancestor) is a shell, or a
// shell with a terminal replacing itself with the command.
func (t *Tracker) spy(ev *event.Event, prev *tracked, known bool) (console.Spy, bool) {
	if ev.TTY == 0 {
		return console.Spy{}, false
	}
	shell := ""
	if known && shells[prev.comm] && prev.tty != 0 {
		shell = prev.comm
	}
	if shell == "" {
		for _, a := range ev.Ancestors {
			if shells[a] {
				shell = a
				break
			}
		}
	}
	if shell == "" || shells[ev.Comm] && len(ev.Args) <= 1 {
		// No shell above it, or a new interactive shell itself.
		return console.Spy{}, false
	}
	return console.Spy{Time: ev.Time, ContainerID: ev.Container.ID, Container: ev.Container.Name, User: userOf(ev),
		TTY: capview.TTYName(ev.TTY), Shell: shell, PID: ev.PID, Cmdline: cmdline(ev)}, true
}

func (t *Tracker) put(k string, p *tracked) {
	if len(t.procs) >= maxTracked {
		for old := range t.procs {
			delete(t.procs, old)
			break
		}
	}
	t.procs[k] = p
}

func connRow(ev *event.Event) console.Conn {
	fd := rules.NewEnv(ev).FD
	c := console.Conn{Time: ev.Time, ContainerID: ev.Container.ID, Container: ev.Container.Name, Direction: "out", Proto: fd.L4Proto,
		PID: ev.PID, Comm: ev.Comm, Result: resultOf(ev)}
	if ev.Type == event.Accept {
		c.Direction, c.Result = "in", "accepted"
	}
	if ev.Family == "unix" {
		c.Proto, c.Server = "unix", ev.Path
		return c
	}
	c.Client, c.Server = hostPort(fd.CIP, uint16(fd.CPort)), hostPort(fd.SIP, uint16(fd.SPort))
	if fd.CPort == 0 && (fd.CIP == "" || fd.CIP == "0.0.0.0" || fd.CIP == "::") {
		c.Client = "-" // a connect that failed before the socket was bound
	}
	return c
}

// resultOf names a connect's outcome: ok, in progress (a non-blocking
// connect), or the error it failed with (ECONNREFUSED, ETIMEDOUT, ...).
func resultOf(ev *event.Event) string {
	if ev.Type == event.Connect && ev.Ret == -int64(unix.EINPROGRESS) {
		return "in progress"
	}
	if errno := rules.NewEnv(ev).Evt.Errno; errno != "" {
		return errno
	}
	return "ok"
}

// okOrErr is the result of a call that returns 0 or -errno: ok, or the
// error's name.
func okOrErr(ev *event.Event) string {
	if errno := rules.NewEnv(ev).Evt.Errno; errno != "" {
		return errno
	}
	return "ok"
}

func fdOrErr(ret int64) string {
	if ret < 0 {
		return capview.Result(ret)
	}
	return "fd " + strconv.FormatInt(ret, 10)
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

func userOf(ev *event.Event) string {
	if ev.User != "" {
		return ev.User
	}
	return strconv.FormatUint(uint64(ev.EUID), 10)
}

// cmdline is the command as typed: the program's base name and its
// arguments.
func cmdline(ev *event.Event) string {
	if len(ev.Args) == 0 {
		return ev.Comm
	}
	args := append([]string{path.Base(ev.Args[0])}, ev.Args[1:]...)
	return strings.Join(args, " ")
}

// alertRow is the console's view of an alert the detector raised.
func alertRow(containerID, rule, priority string, at time.Time) console.Alert {
	return console.Alert{Time: at, ContainerID: containerID, Rule: rule, Priority: priority}
}
