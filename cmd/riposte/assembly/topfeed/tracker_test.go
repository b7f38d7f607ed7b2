package topfeed

import (
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/internal/console"
)

const cid = "3f9a1c2b7d4e0000000000000000000000000000000000000000000000000001"

var t0 = time.Date(2026, 11, 20, 9, 14, 3, 0, time.UTC)

// pts0 is /dev/pts/0 as the kernel numbers it (major 136).
const pts0 = 136 << 8

func ev(typ string, pid, ppid uint32, comm string, mod func(*event.Event)) event.Event {
	e := event.Event{Type: typ, Time: t0, PID: pid, PPID: ppid, Comm: comm, User: "root",
		Container: event.Container{ID: cid, Name: "web"}}
	if mod != nil {
		mod(&e)
	}
	return e
}

func TestTracker(t *testing.T) {
	shell := ev(event.Exec, 200, 1, "sh", func(e *event.Event) { e.Args = []string{"/bin/sh"}; e.TTY = pts0; e.Ancestors = []string{"runc"} })
	fork := ev(event.Fork, 201, 200, "sh", func(e *event.Event) { e.TTY = pts0 })
	cat := ev(event.Exec, 201, 200, "cat", func(e *event.Event) {
		e.Args = []string{"/bin/cat", "/etc/shadow"}
		e.TTY = pts0
		e.Ancestors = []string{"sh", "runc"}
	})
	exit := ev(event.Exit, 201, 200, "cat", func(e *event.Event) { e.Time = t0.Add(time.Second); e.Ret = 1 << 8 })
	daemon := ev(event.Exec, 300, 1, "nc", func(e *event.Event) { e.Args = []string{"nc", "10.0.0.1", "80"}; e.Ancestors = []string{"sh"} })
	refused := ev(event.Connect, 300, 1, "nc", func(e *event.Event) {
		e.Family, e.SockType, e.LocalAddr, e.LocalPort, e.RemoteAddr, e.RemotePort, e.Ret = "inet", "stream", "172.17.0.2", 40000, "10.0.0.1", 80, -111
	})
	accept := ev(event.Accept, 100, 1, "nginx", func(e *event.Event) {
		e.Family, e.SockType, e.LocalAddr, e.LocalPort, e.RemoteAddr, e.RemotePort, e.Ret = "inet", "stream", "172.17.0.2", 80, "172.17.0.1", 5555, 7
	})
	write := ev(event.Open, 100, 1, "nginx", func(e *event.Event) { e.Path = "/var/log/x"; e.Flags = 0o1101; e.Ret = 4 })
	read := ev(event.Open, 201, 200, "cat", func(e *event.Event) { e.Path = "/etc/shadow"; e.Ret = 3 })
	host := ev(event.Exec, 9, 1, "cron", func(e *event.Event) { e.Container = event.Container{ID: event.HostID}; e.TTY = pts0 })
	// busybox runs ls in the forked shell, without exec.
	lsFork := ev(event.Fork, 210, 200, "sh", func(e *event.Event) { e.TTY = pts0 })
	lsOpen := ev(event.Open, 210, 200, "ls", func(e *event.Event) { e.Path = "/tmp"; e.Ret = 3; e.TID = 210 })

	tr := NewTracker(nil)
	var u console.Update
	for _, e := range []event.Event{shell, fork, cat, read, exit, daemon, refused, accept, write, host, lsFork, lsOpen} {
		tr.Add(&e, &u)
	}
	if len(u.Spies) != 2 || u.Spies[0].Cmdline != "cat /etc/shadow" || u.Spies[0].Shell != "sh" || u.Spies[0].TTY != "pts/0" ||
		u.Spies[0].Container != "web" || u.Spies[1].Cmdline != "ls [no exec]" {
		t.Errorf("spies = %+v, want cat and ls typed in sh (not the shell, not the daemon's nc, not the host)", u.Spies)
	}
	last := map[uint32]console.Proc{}
	for _, p := range u.Procs {
		last[p.PID] = p
	}
	if p := last[201]; p.Cmdline != "cat /etc/shadow" || p.Exited == nil || *p.ExitCode != 1 || p.PPID != 200 {
		t.Errorf("cat's process = %+v", p)
	}
	if p := last[200]; p.Cmdline != "sh" || p.Exited != nil {
		t.Errorf("shell's process = %+v", p)
	}
	if _, ok := last[9]; ok {
		t.Errorf("a host process is shown: %+v", last[9])
	}
	wantConns := []console.Conn{
		{Time: t0, ContainerID: cid, Container: "web", Direction: "out", Proto: "tcp", Client: "172.17.0.2:40000", Server: "10.0.0.1:80",
			PID: 300, Comm: "nc", Result: "ECONNREFUSED"},
		{Time: t0, ContainerID: cid, Container: "web", Direction: "in", Proto: "tcp", Client: "172.17.0.1:5555", Server: "172.17.0.2:80",
			PID: 100, Comm: "nginx", Result: "accepted"},
	}
	if len(u.Conns) != len(wantConns) {
		t.Fatalf("conns = %+v", u.Conns)
	}
	for i := range wantConns {
		if u.Conns[i] != wantConns[i] {
			t.Errorf("conn %d = %+v, want %+v", i, u.Conns[i], wantConns[i])
		}
	}
	if p := last[210]; p.Cmdline != "ls [no exec]" {
		t.Errorf("ls's process = %+v", p)
	}
	if len(u.Files) != 3 || u.Files[0].Op != "read" || u.Files[0].Result != "fd 3" || u.Files[1].Op != "create" || u.Files[1].Path != "/var/log/x" {
		t.Errorf("files = %+v", u.Files)
	}
}

func TestTrackerFilter(t *testing.T) {
	f, err := rules.CompileFilter(`evt.type == "open" && fd.name startsWith "/etc"`)
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(f)
	var u console.Update
	for _, p := range []string{"/etc/passwd", "/tmp/x"} {
		e := ev(event.Open, 5, 1, "cat", func(e *event.Event) { e.Path = p; e.Ret = 3 })
		tr.Add(&e, &u)
	}
	if len(u.Files) != 1 || u.Files[0].Path != "/etc/passwd" {
		t.Errorf("files = %+v, want /etc/passwd only", u.Files)
	}
}

func TestConnResult(t *testing.T) {
	tests := []struct {
		ret  int64
		want string
	}{{0, "ok"}, {-115, "in progress"}, {-111, "ECONNREFUSED"}, {-110, "ETIMEDOUT"}, {-113, "EHOSTUNREACH"}, {-101, "ENETUNREACH"}, {-4095, "E4095"}}
	for _, tt := range tests {
		e := ev(event.Connect, 300, 1, "nc", func(e *event.Event) {
			e.Family, e.SockType, e.RemoteAddr, e.RemotePort, e.Ret = "inet", "stream", "10.0.0.1", 80, tt.ret
		})
		var u console.Update
		NewTracker(nil).Add(&e, &u)
		if len(u.Conns) != 1 || u.Conns[0].Result != tt.want || u.Conns[0].Client != "-" || u.Conns[0].Server != "10.0.0.1:80" {
			t.Errorf("connect returning %d: conns %+v, want result %q from an unbound socket (-) to 10.0.0.1:80", tt.ret, u.Conns, tt.want)
		}
	}
}

func TestTrackerFileOps(t *testing.T) {
	tests := []struct {
		name string
		ev   event.Event
		want console.File
	}{
		{"delete", ev(event.Unlink, 7, 1, "rm", func(e *event.Event) { e.Syscall, e.Path = "unlinkat", "/tmp/x.sh" }),
			console.File{Op: "delete", Comm: "rm", Path: "/tmp/x.sh", Result: "ok"}},
		{"rename old to new", ev(event.Rename, 7, 1, "mv", func(e *event.Event) { e.Path, e.Target = "/tmp/x", "/usr/bin/x" }),
			console.File{Op: "rename", Comm: "mv", Path: "/tmp/x", Target: "/usr/bin/x", Result: "ok"}},
		{"chmod with its mode", ev(event.Chmod, 7, 1, "chmod", func(e *event.Event) { e.Path, e.Mode = "/usr/bin/x", 0o4755 }),
			console.File{Op: "chmod", Comm: "chmod", Path: "/usr/bin/x", Detail: "mode 04755", Result: "ok"}},
		{"fchmod names the descriptor's file", ev(event.Chmod, 7, 1, "python3", func(e *event.Event) { e.Path, e.FD, e.Mode = "x", 3, 0o755 }),
			console.File{Op: "chmod", Comm: "python3", Path: "x", Detail: "mode 0755", Result: "ok"}},
		{"symlink and what it points at", ev(event.Symlink, 7, 1, "ln", func(e *event.Event) { e.Path, e.Target = "/tmp/s", "/etc/shadow" }),
			console.File{Op: "symlink", Comm: "ln", Path: "/tmp/s", Target: "/etc/shadow", Result: "ok"}},
		{"hard link", ev(event.Link, 7, 1, "ln", func(e *event.Event) { e.Path, e.Target = "/tmp/h", "/etc/passwd" }),
			console.File{Op: "link", Comm: "ln", Path: "/tmp/h", Target: "/etc/passwd", Result: "ok"}},
		{"truncate with its length", ev(event.Truncate, 7, 1, "sh", func(e *event.Event) { e.Path, e.SysArgs = "/var/log/auth.log", []int64{0} }),
			console.File{Op: "truncate", Comm: "sh", Path: "/var/log/auth.log", Detail: "length 0", Result: "ok"}},
		{"a failed call names its errno", ev(event.Unlink, 7, 1, "rm", func(e *event.Event) { e.Path, e.Ret = "/etc/passwd", -13 }),
			console.File{Op: "delete", Comm: "rm", Path: "/etc/passwd", Result: "EACCES"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u console.Update
			NewTracker(nil).Add(&tt.ev, &u)
			want := tt.want
			want.Time, want.ContainerID, want.Container, want.PID = t0, cid, "web", 7
			if len(u.Files) != 1 || u.Files[0] != want {
				t.Errorf("files = %+v, want %+v", u.Files, want)
			}
		})
	}
}

func TestTrackerFilterFileOps(t *testing.T) {
	f, err := rules.CompileFilter(`evt.type == "rename" && evt.arg.newpath startsWith "/usr/bin"`)
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker(f)
	var u console.Update
	for _, to := range []string{"/usr/bin/x", "/tmp/y"} {
		e := ev(event.Rename, 5, 1, "mv", func(e *event.Event) { e.Path, e.Target = "/tmp/x", to })
		tr.Add(&e, &u)
	}
	if len(u.Files) != 1 || u.Files[0].Target != "/usr/bin/x" {
		t.Errorf("files = %+v, want the rename to /usr/bin/x only", u.Files)
	}
}
