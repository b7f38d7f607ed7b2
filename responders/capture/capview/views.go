package capview

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

// proc is one process as the capture knows it: from the state header and
// from fork, exec and exit events.
type proc struct {
	PID, PPID, VPID uint32
	UID             uint32
	User            string
	Comm, Exe       string
	Args            []string
	TTY             uint32
	Cwd             string
	Started         time.Time
	Exited          time.Time
	ExitCode        *int64
	AtStart         bool // in the state header
	Execs           int  // execs seen during the capture
	forkChild       bool // forked during the capture and not exec'd since: a copy of its parent
	renamed         bool // changed its name without exec (busybox runs applets that way)
	matched         bool
	children        []*proc
}

// cmdline is the process's command line. A process that changed its name
// without exec (busybox runs an applet in a forked shell, or in the shell
// itself for the last command) has no argv of its own: its new name is
// shown, marked.
func (p *proc) cmdline() string {
	switch {
	case p.renamed && (p.forkChild || len(p.Args) == 0):
		return p.Comm + " [no exec]"
	case p.renamed:
		return cmdline("", p.Args) + " [then " + p.Comm + ", no exec]"
	}
	return cmdline(p.Comm, p.Args)
}

// table follows the container's processes through the capture. A pid that
// forks again after its process exited starts a new entry.
type table struct {
	all   []*proc
	byPID map[uint32]*proc
}

func newTable() *table { return &table{byPID: map[uint32]*proc{}} }

func (t *table) add(p *proc) *proc {
	t.all = append(t.all, p)
	t.byPID[p.PID] = p
	return p
}

func (t *table) addState(sp *capfile.Process) {
	t.add(&proc{PID: sp.PID, PPID: sp.PPID, VPID: sp.VPID, UID: sp.EUID, User: sp.User, Comm: sp.Comm, Exe: sp.Exe,
		Args: sp.Args, TTY: sp.TTY, Cwd: sp.Cwd, Started: sp.Started, AtStart: true})
}

// get returns the process of ev, creating it from the event when the
// capture has not seen it yet.
func (t *table) get(ev *event.Event) *proc {
	if p, ok := t.byPID[ev.PID]; ok {
		return p
	}
	return t.add(&proc{PID: ev.PID, PPID: ev.PPID, VPID: ev.VPID, UID: ev.EUID, User: ev.User, Comm: ev.Comm, Exe: ev.Exe, Args: ev.Args, TTY: ev.TTY})
}

// apply updates the table with ev.
func (t *table) apply(ev *event.Event, match bool) {
	var p *proc
	switch ev.Type {
	case event.Fork:
		if old, ok := t.byPID[ev.PID]; ok && old.Exited.IsZero() && !old.AtStart && old.Execs == 0 && old.Started.IsZero() {
			p = old // created from an earlier event of the child
		} else {
			p = t.add(&proc{PID: ev.PID})
		}
		p.PPID, p.VPID, p.UID, p.User, p.Comm, p.TTY, p.Started = ev.PPID, ev.VPID, ev.EUID, ev.User, ev.Comm, ev.TTY, ev.Time
		p.Exe, p.Args = ev.Exe, ev.Args
		p.forkChild = true
	case event.Exec:
		p = t.get(ev)
		p.PPID, p.UID, p.User, p.Comm, p.Exe, p.Args, p.TTY = ev.PPID, ev.EUID, ev.User, ev.Comm, ev.Exe, ev.Args, ev.TTY
		if ev.VPID != 0 {
			p.VPID = ev.VPID
		}
		if ev.Cwd != "" {
			p.Cwd = ev.Cwd
		}
		if p.Started.IsZero() && !p.AtStart {
			p.Started = ev.Time
		}
		p.Execs++
		p.forkChild = false
	case event.Exit:
		p = t.get(ev)
		p.Exited = ev.Time
		code := ExitCode(ev.Ret)
		p.ExitCode = &code
	default:
		p = t.get(ev)
		if isRename(p, ev) {
			p.renamed = true
		}
		if ev.Comm != "" && (ev.TID == 0 || ev.TID == ev.PID) {
			p.Comm = ev.Comm
		}
	}
	if match {
		p.matched = true
	}
}

// cmdlineOf is the command line of ev's process: the event's argv, else
// the one the table knows from the process's exec.
func (t *table) cmdlineOf(ev *event.Event) string {
	if len(ev.Args) == 0 {
		if p, ok := t.byPID[ev.PID]; ok && len(p.Args) > 0 && !p.forkChild && !p.renamed {
			return cmdline(p.Comm, p.Args)
		}
	}
	return evCmdline(ev)
}

// isRename reports whether ev (not an exec or fork) shows that p's main
// thread took a new name without exec.
// A process that names itself after its own argv[0] (busybox re-executed
// through /proc/self/exe starts as "exe", then calls itself "cat") did
// not change.
func isRename(p *proc, ev *event.Event) bool {
	if ev.Type == event.Exec || ev.Type == event.Fork || ev.Comm == "" || ev.Comm == p.Comm || (ev.TID != 0 && ev.TID != ev.PID) {
		return false
	}
	if !p.forkChild && len(p.Args) > 0 {
		base := path.Base(p.Args[0])
		if len(base) > 15 {
			base = base[:15] // TASK_COMM_LEN - 1
		}
		if ev.Comm == base {
			return false
		}
	}
	return true
}

// shells are the programs spy-users treats as interactive shells.
var shells = map[string]bool{"sh": true, "bash": true, "ash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true,
	"fish": true, "csh": true, "tcsh": true, "rbash": true}

// interactiveShell returns the shell with a terminal that ran the command
// ev execs: the process itself when a shell with a tty replaced itself
// with the command (sh -c 'x' does that for its last command), else its
// nearest shell ancestor with a tty (a shell's forked child is still named
// like the shell until it execs: it is not the shell). The table holds the
// state before ev. ok is false when there is none.
func (t *table) interactiveShell(ev *event.Event) (name string, pid uint32, tty uint32, ok bool) {
	self, found := t.byPID[ev.PID]
	if found && !self.forkChild && shells[self.Comm] && self.TTY != 0 && self.Exited.IsZero() {
		return self.Comm, self.PID, self.TTY, true
	}
	ppid := ev.PPID
	if found && ppid == 0 {
		ppid = self.PPID
	}
	seen := map[uint32]bool{}
	for pid := ppid; pid != 0 && !seen[pid]; {
		seen[pid] = true
		p, found := t.byPID[pid]
		if !found {
			break
		}
		if shells[p.Comm] && p.TTY != 0 {
			return p.Comm, p.PID, p.TTY, true
		}
		pid = p.PPID
	}
	// Processes the capture never saw: the detector's ancestor names and
	// the command's own terminal.
	if ev.TTY != 0 {
		for _, a := range ev.Ancestors {
			if shells[a] {
				return a, 0, ev.TTY, true
			}
		}
	}
	return "", 0, 0, false
}

// procsView prints the process tree at the end.
type procsView struct{ json, filtered bool }

func (v *procsView) start(*printer, capfile.Header)                     {}
func (v *procsView) state(*printer, *capfile.Record)                    {}
func (v *procsView) event(*printer, *table, uint64, *event.Event, bool) {}

// ProcRow is one process of the procs view in JSON.
type ProcRow struct {
	PID      uint32     `json:"pid"`
	PPID     uint32     `json:"ppid"`
	VPID     uint32     `json:"vpid,omitempty"`
	Depth    int        `json:"depth"`
	User     string     `json:"user,omitempty"`
	UID      uint32     `json:"uid"`
	Comm     string     `json:"comm"`
	Exe      string     `json:"exe,omitempty"`
	Args     []string   `json:"args,omitempty"`
	Cmdline  string     `json:"cmdline"`
	TTY      string     `json:"tty,omitempty"`
	Cwd      string     `json:"cwd,omitempty"`
	AtStart  bool       `json:"at_start"`
	Execs    int        `json:"execs"`
	Started  *time.Time `json:"started,omitempty"`
	Exited   *time.Time `json:"exited,omitempty"`
	ExitCode *int64     `json:"exit_code,omitempty"`
}

func (v *procsView) end(p *printer, t *table, _ *capfile.Trailer) {
	keep := map[*proc]bool{}
	for _, pr := range t.all {
		if v.filtered && !pr.matched {
			continue
		}
		// Keep it and its ancestors.
		for cur, hops := pr, 0; cur != nil && !keep[cur] && hops < 4096; hops++ {
			keep[cur] = true
			cur = t.parentOf(cur)
		}
	}
	var roots []*proc
	for _, pr := range t.all {
		pr.children = nil
	}
	for _, pr := range t.all {
		if !keep[pr] {
			continue
		}
		if parent := t.parentOf(pr); parent != nil && keep[parent] {
			parent.children = append(parent.children, pr)
		} else {
			roots = append(roots, pr)
		}
	}
	if !v.json {
		p.line(fmt.Sprintf("%-24s %-8s %-12s %-8s %-33s %s", "PID[:VPID]", "TTY", "USER", "STARTED", "ENDED", "COMMAND"))
	}
	visited := map[*proc]bool{}
	var walk func(pr *proc, depth int)
	walk = func(pr *proc, depth int) {
		if visited[pr] {
			return
		}
		visited[pr] = true
		if v.json {
			row := ProcRow{PID: pr.PID, PPID: pr.PPID, VPID: pr.VPID, Depth: depth, User: pr.User, UID: pr.UID, Comm: pr.Comm,
				Exe: pr.Exe, Args: pr.Args, Cmdline: pr.cmdline(), TTY: TTYName(pr.TTY), Cwd: pr.Cwd, AtStart: pr.AtStart,
				Execs: pr.Execs, ExitCode: pr.ExitCode}
			if !pr.Started.IsZero() {
				s := pr.Started.UTC()
				row.Started = &s
			}
			if !pr.Exited.IsZero() {
				e := pr.Exited.UTC()
				row.Exited = &e
			}
			p.json(row)
		} else {
			id := strings.Repeat("  ", depth) + strconv.FormatUint(uint64(pr.PID), 10)
			if pr.VPID != 0 && pr.VPID != pr.PID {
				id += ":" + strconv.FormatUint(uint64(pr.VPID), 10)
			}
			started := "-"
			switch {
			case pr.AtStart:
				started = "at start"
			case !pr.Started.IsZero():
				started = pr.Started.UTC().Format("15:04:05")
			}
			ended := "running"
			if !pr.Exited.IsZero() {
				ended = pr.Exited.UTC().Format(timeForm)
				if pr.ExitCode != nil {
					ended += " code=" + strconv.FormatInt(*pr.ExitCode, 10)
				}
			}
			user := pr.User
			if user == "" {
				user = strconv.FormatUint(uint64(pr.UID), 10)
			}
			p.line(fmt.Sprintf("%-24s %-8s %-12s %-8s %-33s %s", id, orDash(TTYName(pr.TTY)), user, started, ended, pr.cmdline()))
		}
		sort.SliceStable(pr.children, func(i, j int) bool { return pr.children[i].PID < pr.children[j].PID })
		for _, c := range pr.children {
			walk(c, depth+1)
		}
	}
	sort.SliceStable(roots, func(i, j int) bool { return roots[i].PID < roots[j].PID })
	for _, r := range roots {
		walk(r, 0)
	}
}

// parentOf is the current entry of pr's parent pid, unless that entry is
// pr itself or started after pr (the pid was reused).
func (t *table) parentOf(pr *proc) *proc {
	parent, ok := t.byPID[pr.PPID]
	if !ok || parent == pr || pr.PPID == pr.PID {
		return nil
	}
	if !parent.Started.IsZero() && !pr.Started.IsZero() && parent.Started.After(pr.Started) {
		return nil
	}
	return parent
}

// ConnRow is one connection of the connections view in JSON.
type ConnRow struct {
	Time       time.Time `json:"time"`
	Direction  string    `json:"direction"` // "out" (connect) or "in" (accept)
	PID        uint32    `json:"pid"`
	Comm       string    `json:"comm"`
	Cmdline    string    `json:"cmdline"`
	User       string    `json:"user,omitempty"`
	Family     string    `json:"family,omitempty"`
	Proto      string    `json:"proto,omitempty"`
	Client     string    `json:"client,omitempty"` // ip:port
	Server     string    `json:"server,omitempty"` // ip:port
	LocalAddr  string    `json:"local_addr,omitempty"`
	LocalPort  uint16    `json:"local_port,omitempty"`
	RemoteAddr string    `json:"remote_addr,omitempty"`
	RemotePort uint16    `json:"remote_port,omitempty"`
	Path       string    `json:"path,omitempty"` // unix sockets
	FD         int64     `json:"fd"`
	Result     string    `json:"result"`
}

// connView prints connect and accept events with their addresses.
type connView struct{ json bool }

func (v *connView) start(p *printer, _ capfile.Header) {
	if !v.json {
		p.line(fmt.Sprintf("%-18s %-3s %-5s %-47s %-22s %s", "TIME", "DIR", "PROTO", "CLIENT -> SERVER", "PROCESS", "RESULT"))
	}
}
func (v *connView) state(*printer, *capfile.Record)        {}
func (v *connView) end(*printer, *table, *capfile.Trailer) {}

func (v *connView) event(p *printer, t *table, _ uint64, ev *event.Event, match bool) {
	if !match || (ev.Type != event.Connect && ev.Type != event.Accept) {
		return
	}
	fd := rules.NewEnv(ev).FD
	row := ConnRow{Time: ev.Time.UTC(), Direction: "out", PID: ev.PID, Comm: ev.Comm, Cmdline: t.cmdlineOf(ev), User: ev.User,
		Family: ev.Family, Proto: fd.L4Proto, LocalAddr: ev.LocalAddr, LocalPort: ev.LocalPort, RemoteAddr: ev.RemoteAddr,
		RemotePort: ev.RemotePort, FD: fd.Num, Result: Result(ev.Ret)}
	if ev.Type == event.Accept {
		row.Direction = "in"
		row.Result = "fd " + strconv.FormatInt(ev.Ret, 10)
	} else if ev.Ret == -115 {
		row.Result = "in progress"
	}
	if ev.Family == "unix" {
		row.Path = ev.Path
	} else {
		if fd.CIP != "" || fd.CPort != 0 {
			row.Client = hostPort(fd.CIP, uint16(fd.CPort))
		}
		row.Server = hostPort(fd.SIP, uint16(fd.SPort))
	}
	if v.json {
		p.json(row)
		return
	}
	tuple := row.Client + " -> " + row.Server
	proto := row.Proto
	if ev.Family == "unix" {
		tuple, proto = quoteIfNeeded(row.Path), "unix"
	}
	p.line(fmt.Sprintf("%-18s %-3s %-5s %-47s %-22s %s  %s", ev.Time.UTC().Format("15:04:05.000000"), row.Direction, orDash(proto),
		tuple, fmt.Sprintf("%s(%d)", orDash(ev.Comm), ev.PID), row.Result, strconv.Quote(row.Cmdline)))
}

// SpyRow is one command of the spy-users view in JSON.
type SpyRow struct {
	Time      time.Time `json:"time"`
	User      string    `json:"user,omitempty"`
	UID       uint32    `json:"uid"`
	TTY       string    `json:"tty,omitempty"`
	Shell     string    `json:"shell"`
	ShellPID  uint32    `json:"shell_pid,omitempty"`
	PID       uint32    `json:"pid"`
	Exe       string    `json:"exe,omitempty"`
	Args      []string  `json:"args,omitempty"`
	Cmdline   string    `json:"cmdline"`
	Cwd       string    `json:"cwd,omitempty"`
	Container string    `json:"container,omitempty"`
	// NoExec: the process took the command's name without exec (busybox
	// runs applets in the forked shell); its arguments are unknown.
	NoExec bool `json:"no_exec,omitempty"`
}

// spyView prints the commands run from interactive shells, like sysdig's
// spy_users chisel: execs whose process or an ancestor is a shell with a
// controlling terminal.
type spyView struct{ json bool }

func (v *spyView) start(p *printer, _ capfile.Header) {
	if !v.json {
		p.line(fmt.Sprintf("%-18s %-12s %-8s %-16s %-8s %s", "TIME", "USER", "TTY", "SHELL", "PID", "COMMAND"))
	}
}
func (v *spyView) state(*printer, *capfile.Record)        {}
func (v *spyView) end(*printer, *table, *capfile.Trailer) {}

func (v *spyView) event(p *printer, t *table, _ uint64, ev *event.Event, match bool) {
	if !match {
		return
	}
	// A command is an exec, or a process of a shell taking a new name
	// without exec (busybox applets).
	noExec := false
	if ev.Type != event.Exec {
		pr, found := t.byPID[ev.PID]
		if !found || !isRename(pr, ev) || shells[ev.Comm] {
			return
		}
		noExec = true
	}
	shell, shellPID, tty, ok := t.interactiveShell(ev)
	if !ok {
		return
	}
	if ev.TTY != 0 {
		tty = ev.TTY
	}
	row := SpyRow{Time: ev.Time.UTC(), User: ev.User, UID: ev.EUID, TTY: TTYName(tty), Shell: shell, ShellPID: shellPID, PID: ev.PID,
		Exe: ev.Exe, Args: ev.Args, Cmdline: evCmdline(ev), Cwd: ev.Cwd, Container: ev.Container.Name, NoExec: noExec}
	if noExec {
		row.Exe, row.Args, row.Cmdline = "", nil, ev.Comm+" [no exec]"
	}
	if v.json {
		p.json(row)
		return
	}
	sh := shell
	if shellPID != 0 {
		sh += "(" + strconv.FormatUint(uint64(shellPID), 10) + ")"
	}
	p.line(fmt.Sprintf("%-18s %-12s %-8s %-16s %-8d %s", ev.Time.UTC().Format("15:04:05.000000"), userOf(ev.User, ev.EUID),
		orDash(row.TTY), sh, ev.PID, row.Cmdline))
}

// FileRow is one row of the files view in JSON: an open, or a change to
// the file tree (Op: chmod, symlink, link, unlink, rename, truncate).
type FileRow struct {
	Time    time.Time `json:"time"`
	Op      string    `json:"op"` // "open" or the event type
	PID     uint32    `json:"pid"`
	Comm    string    `json:"comm"`
	User    string    `json:"user,omitempty"`
	Path    string    `json:"path"`
	Target  string    `json:"target,omitempty"` // symlink, link: what the link points at; rename: the new name
	Flags   string    `json:"flags"`
	RawFlag uint64    `json:"flags_raw"`
	Mode    uint32    `json:"mode,omitempty"`
	FD      int64     `json:"fd"`
	Read    bool      `json:"read"`
	Write   bool      `json:"write"`
	Create  bool      `json:"create"`
}

// filesView prints open events and changes to the file tree.
type filesView struct{ json bool }

// treeOps are the file-tree events the files view lists beside opens.
var treeOps = map[string]bool{event.Chmod: true, event.Symlink: true, event.Link: true, event.Unlink: true,
	event.Rename: true, event.Truncate: true}

func (v *filesView) start(p *printer, _ capfile.Header) {
	if !v.json {
		p.line(fmt.Sprintf("%-18s %-22s %-4s %-36s %s", "TIME", "PROCESS", "FD", "FLAGS", "PATH"))
	}
}
func (v *filesView) state(*printer, *capfile.Record)        {}
func (v *filesView) end(*printer, *table, *capfile.Trailer) {}

func (v *filesView) event(p *printer, _ *table, _ uint64, ev *event.Event, match bool) {
	if !match || (ev.Type != event.Open && !treeOps[ev.Type]) {
		return
	}
	if ev.Type != event.Open {
		v.treeEvent(p, ev)
		return
	}
	env := rules.NewEnv(ev)
	row := FileRow{Time: ev.Time.UTC(), Op: event.Open, PID: ev.PID, Comm: ev.Comm, User: ev.User, Path: ev.Path, Flags: rules.OpenFlags(ev.Flags),
		RawFlag: ev.Flags, Mode: ev.Mode, FD: ev.Ret, Read: env.Evt.IsOpenRead, Write: env.Evt.IsOpenWrite, Create: env.Evt.IsOpenCreate}
	if v.json {
		p.json(row)
		return
	}
	p.line(fmt.Sprintf("%-18s %-22s %-4s %-36s %s", ev.Time.UTC().Format("15:04:05.000000"), fmt.Sprintf("%s(%d)", orDash(ev.Comm), ev.PID),
		fdOrRes(ev.Ret), row.Flags, quoteIfNeeded(ev.Path)))
}

// treeEvent prints a change to the file tree: the FLAGS column names the
// change, PATH reads "old -> new" for rename and "link -> target" for
// links.
func (v *filesView) treeEvent(p *printer, ev *event.Event) {
	row := FileRow{Time: ev.Time.UTC(), Op: ev.Type, PID: ev.PID, Comm: ev.Comm, User: ev.User, Path: ev.Path, Target: ev.Target,
		Mode: ev.Mode, FD: ev.FD}
	if v.json {
		p.json(row)
		return
	}
	what, name := ev.Type, quoteIfNeeded(ev.Path)
	switch ev.Type {
	case event.Chmod:
		what += fmt.Sprintf(" %#o", ev.Mode)
	case event.Truncate:
		if len(ev.SysArgs) > 0 {
			what += " " + strconv.FormatInt(ev.SysArgs[0], 10)
		}
	case event.Symlink, event.Link, event.Rename:
		name += " -> " + quoteIfNeeded(ev.Target)
	}
	fd := "-"
	if ev.FD > 0 {
		fd = strconv.FormatInt(ev.FD, 10)
	}
	p.line(fmt.Sprintf("%-18s %-22s %-4s %-36s %s", ev.Time.UTC().Format("15:04:05.000000"), fmt.Sprintf("%s(%d)", orDash(ev.Comm), ev.PID),
		fd, what, name))
}

// ExitCode turns the kernel's exit status (code << 8 | signal) into what a
// shell shows: the code, or 128 + the signal that killed the process.
func ExitCode(status int64) int64 {
	if sig := status & 0x7f; sig != 0 {
		return 128 + sig
	}
	return (status >> 8) & 0xff
}
