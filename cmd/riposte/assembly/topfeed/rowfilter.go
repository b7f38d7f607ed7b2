package topfeed

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"golang.org/x/sys/unix"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/internal/console"
)

// The fields each kind of console row carries: what an expression filter
// can read of it. A row is turned back into the event it came from, as far
// as the row tells; a field not listed would read as empty there.
var (
	containerFields = []string{"container.id", "container.full_id", "container.name"}
	procFields      = append([]string{"proc.pid", "proc.ppid", "proc.name", "proc.exe", "proc.args", "proc.cmdline", "user.name"},
		containerFields...)
	rowFields = map[string][]string{
		"container": append([]string{"container.image.repository", "container.image.tag"}, containerFields...),
		"proc":      procFields,
		"spy":       procFields,
		"conn": append([]string{"evt.type", "evt.failed", "evt.errno", "fd.name", "fd.type", "fd.l4proto", "fd.sip", "fd.sport",
			"fd.cip", "fd.cport", "fd.lip", "fd.lport", "fd.rip", "fd.rport", "proc.pid", "proc.name"}, containerFields...),
		"file": append([]string{"evt.type", "evt.failed", "evt.errno", "evt.res", "evt.is_open_read", "evt.is_open_write",
			"evt.is_open_create", "evt.arg.name", "evt.arg.mode", "evt.arg.target", "evt.arg.linkpath", "evt.arg.oldpath",
			"evt.arg.newpath", "evt.arg.length", "fd.name", "fd.directory", "fd.filename", "fd.type", "proc.pid", "proc.name"},
			containerFields...),
		"incident": containerFields,
	}
	// envRoots are the rule language's top-level names; other identifiers
	// are functions and variables.
	envRoots = map[string]bool{"evt": true, "proc": true, "fd": true, "container": true, "user": true, "k8s": true}
)

// RowFilter is an expression of the detector's rule language applied to
// the console's rows. It is safe for concurrent use.
type RowFilter struct {
	f      *rules.Filter
	reads  map[string]bool  // row kind: it carries every field read
	errnos map[string]int64 // errno names back to numbers
}

// CompileRowFilter compiles src as a rule condition for the console's /
// filter; an error means src is not one (the console then filters by
// substring).
func CompileRowFilter(src string) (console.Expr, error) {
	f, err := rules.CompileFilter(src)
	if err != nil {
		return nil, err
	}
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parse filter: %w", err)
	}
	c := &fieldCollector{}
	ast.Walk(&tree.Node, c)
	rf := &RowFilter{f: f, reads: map[string]bool{}, errnos: map[string]int64{}}
	for e := syscall.Errno(1); e < 4096; e++ {
		if name := unix.ErrnoName(e); name != "" {
			rf.errnos[name] = int64(e)
		}
	}
	for kind, have := range rowFields {
		rf.reads[kind] = carriesAll(have, c.paths)
	}
	return rf, nil
}

// fieldCollector gathers the dotted paths (evt.arg.mode) an expression
// reads, inner ones (evt.arg) included.
type fieldCollector struct{ paths []string }

func (c *fieldCollector) Visit(n *ast.Node) {
	if p, ok := fieldPath(*n); ok {
		c.paths = append(c.paths, p)
	}
}

func fieldPath(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return n.Value, envRoots[n.Value]
	case *ast.MemberNode:
		prop, ok := n.Property.(*ast.StringNode)
		if !ok {
			return "", false
		}
		base, ok := fieldPath(n.Node)
		return base + "." + prop.Value, ok
	}
	return "", false
}

// carriesAll reports whether every path is a field of have, a part of one
// (evt.arg), or inside one (a map's key).
func carriesAll(have, paths []string) bool {
	for _, p := range paths {
		found := false
		for _, h := range have {
			if h == p || strings.HasPrefix(h, p+".") || strings.HasPrefix(p, h+".") {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Match implements console.Expr.
func (rf *RowFilter) Match(record any) (match, ok bool) {
	var ev event.Event
	var kind string
	switch r := record.(type) {
	case console.Container:
		kind = "container"
		ev.Container = event.Container{ID: r.ID, Name: r.Name}
		ev.Container.Image, ev.Container.Tag = splitImage(r.Image)
	case console.Proc:
		kind = "proc"
		ev = procEvent(r.ContainerID, r.Container, r.PID, r.User, r.Cmdline)
		ev.PPID = r.PPID
	case console.Spy:
		kind = "spy"
		ev = procEvent(r.ContainerID, r.Container, r.PID, r.User, r.Cmdline)
	case console.Conn:
		kind = "conn"
		ev = connEvent(r, rf.errnos)
	case console.File:
		kind = "file"
		ev = fileEvent(r, rf.errnos)
	case console.Incident:
		kind = "incident"
		ev.Container = event.Container{ID: r.ContainerID, Name: r.Container}
	default:
		return false, false
	}
	if !rf.reads[kind] {
		return false, false
	}
	m, err := rf.f.Match(&ev)
	return m && err == nil, true
}

func procEvent(containerID, name string, pid uint32, user, cmd string) event.Event {
	ev := event.Event{Type: event.Exec, PID: pid, User: user, Args: strings.Fields(cmd),
		Container: event.Container{ID: containerID, Name: name}}
	if len(ev.Args) > 0 {
		ev.Comm = ev.Args[0]
	}
	return ev
}

func connEvent(c console.Conn, errnos map[string]int64) event.Event {
	ev := event.Event{Type: event.Connect, PID: c.PID, Comm: c.Comm, Container: event.Container{ID: c.ContainerID, Name: c.Container},
		Ret: resultRet(c.Result, errnos)}
	local, remote := c.Client, c.Server
	if c.Direction == "in" {
		ev.Type, local, remote = event.Accept, c.Server, c.Client
	}
	switch c.Proto {
	case "unix":
		ev.Family, ev.SockType, ev.Path = "unix", "stream", c.Server
		return ev
	case "udp":
		ev.SockType = "dgram"
	case "tcp":
		ev.SockType = "stream"
	}
	ev.Family = "inet"
	if strings.HasPrefix(remote, "[") {
		ev.Family = "inet6"
	}
	ev.LocalAddr, ev.LocalPort = splitHostPort(local)
	ev.RemoteAddr, ev.RemotePort = splitHostPort(remote)
	return ev
}

func fileEvent(f console.File, errnos map[string]int64) event.Event {
	ev := event.Event{Type: f.Op, PID: f.PID, Comm: f.Comm, Path: f.Path, Target: f.Target,
		Container: event.Container{ID: f.ContainerID, Name: f.Container}, Ret: resultRet(f.Result, errnos)}
	switch f.Op {
	case "read":
		ev.Type = event.Open
	case "write":
		ev.Type, ev.Flags = event.Open, unix.O_WRONLY
	case "create":
		ev.Type, ev.Flags = event.Open, unix.O_WRONLY|unix.O_CREAT
	case "delete":
		ev.Type = event.Unlink
	}
	if mode, ok := strings.CutPrefix(f.Detail, "mode "); ok {
		if m, err := strconv.ParseUint(mode, 8, 32); err == nil {
			ev.Mode = uint32(m)
		}
	}
	if length, ok := strings.CutPrefix(f.Detail, "length "); ok {
		if n, err := strconv.ParseInt(length, 10, 64); err == nil {
			ev.SysArgs = []int64{n}
		}
	}
	return ev
}

// resultRet turns a row's result back into the syscall's return value:
// "fd 3" is 3, an errno name its negative number, anything else 0
// (connect's "in progress" is -EINPROGRESS).
func resultRet(result string, errnos map[string]int64) int64 {
	if fd, ok := strings.CutPrefix(result, "fd "); ok {
		n, _ := strconv.ParseInt(fd, 10, 64)
		return n
	}
	if result == "in progress" {
		return -int64(unix.EINPROGRESS)
	}
	if !strings.HasPrefix(result, "E") {
		return 0
	}
	if n, err := strconv.ParseInt(result[1:], 10, 64); err == nil {
		return -n // "E4095": a number without a name
	}
	return -errnos[result]
}

func splitHostPort(hp string) (string, uint16) {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0
	}
	p, _ := strconv.ParseUint(port, 10, 16)
	return host, uint16(p)
}

// splitImage splits "registry/repo:tag" into its repository and tag.
func splitImage(image string) (repo, tag string) {
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		return image[:i], image[i+1:]
	}
	return image, ""
}
