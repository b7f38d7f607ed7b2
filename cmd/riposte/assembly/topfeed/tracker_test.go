package topfeed

import (
	"strings"
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
			PID: 300, Comm: "nc", Result: "refused"},
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

func TestExitCode(t *testing.T) {
	tests := []struct{ status, want int64 }{{0, 0}, {1 << 8, 1}, {255 << 8, 255}, {9, 137}, {15, 143}, {6 | 0x80, 134}}
	for _, tt := range tests {
		if got := exitCode(tt.status); got != tt.want {
			t.Errorf("exitCode(%#x) = %d, want %d", tt.status, got, tt.want)
		}
	}
}

func TestResultOf(t *testing.T) {
	tests := []struct {
		ret  int64
		want string
	}{{0, "ok"}, {-115, "in progress"}, {-111, "refused"}, {-113, "failed -113(EHOSTUNREACH)"}}
	for _, tt := range tests {
		if got := resultOf(tt.ret); got != tt.want || strings.Contains(got, "\n") {
			t.Errorf("resultOf(%d) = %q, want %q", tt.ret, got, tt.want)
		}
	}
}
