package topfeed

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/riposte-sec/riposte/internal/console"
)

func TestCompileRowFilter(t *testing.T) {
	web := console.Container{ID: cid, Name: "web", Image: "shop/web:1.4", State: "running"}
	sh := console.Proc{ContainerID: cid, Container: "web", PID: 200, PPID: 1, User: "root", Cmdline: "sh -i"}
	spy := console.Spy{ContainerID: cid, Container: "web", User: "root", Shell: "sh", PID: 201, Cmdline: "cat /etc/shadow"}
	refused := console.Conn{ContainerID: cid, Container: "web", Direction: "out", Proto: "tcp", Client: "-", Server: "10.0.0.1:81",
		PID: 300, Comm: "nc", Result: "ECONNREFUSED"}
	accepted := console.Conn{ContainerID: cid, Container: "web", Direction: "in", Proto: "tcp", Client: "172.17.0.1:5555",
		Server: "172.17.0.2:80", PID: 100, Comm: "nginx", Result: "accepted"}
	read := console.File{ContainerID: cid, Container: "web", Op: "read", PID: 201, Comm: "cat", Path: "/etc/shadow", Result: "fd 3"}
	rename := console.File{ContainerID: cid, Container: "web", Op: "rename", PID: 204, Comm: "mv", Path: "/tmp/x", Target: "/usr/bin/x", Result: "ok"}
	chmod := console.File{ContainerID: cid, Container: "web", Op: "chmod", PID: 205, Comm: "chmod", Path: "/usr/bin/x", Detail: "mode 04755", Result: "ok"}
	denied := console.File{ContainerID: cid, Container: "web", Op: "delete", PID: 206, Comm: "rm", Path: "/etc/passwd", Result: "EACCES"}
	inc := console.Incident{ID: "inc-1", ContainerID: cid[:12], Container: "web", Rule: "Terminal shell in container"}

	type want struct {
		rec       any
		match, ok bool
	}
	tests := []struct {
		src  string
		want []want
	}{
		{`container.name == "web"`, []want{{web, true, true}, {sh, true, true}, {refused, true, true}, {read, true, true}, {inc, true, true}}},
		{`container.image.repository == "shop/web" && container.image.tag == "1.4"`, []want{{web, true, true}, {sh, false, false}}},
		{`proc.name == "nc"`, []want{{refused, true, true}, {accepted, false, true}, {sh, false, true}, {web, false, false}, {inc, false, false}}},
		{`proc.cmdline contains "shadow"`, []want{{spy, true, true}, {sh, false, true}, {refused, false, false}}},
		{`evt.errno == "ECONNREFUSED"`, []want{{refused, true, true}, {accepted, false, true}, {denied, false, true}, {sh, false, false}}},
		{`evt.failed`, []want{{refused, true, true}, {accepted, false, true}, {denied, true, true}, {read, false, true}}},
		{`evt.type == "accept" && fd.sport == 80`, []want{{accepted, true, true}, {refused, false, true}}},
		{`fd.sip == "10.0.0.1" and fd.sport == 81`, []want{{refused, true, true}, {accepted, false, true}}},
		{`fd.name startsWith "/etc"`, []want{{read, true, true}, {denied, true, true}, {rename, false, true}, {refused, false, true}}},
		{`evt.type == "rename" && evt.arg.newpath startsWith "/usr/bin"`, []want{{rename, true, true}, {chmod, false, true}}},
		{`evt.arg.mode contains "S_ISUID"`, []want{{chmod, true, true}, {rename, false, true}}},
		{`evt.is_open_read && fd.filename == "shadow"`, []want{{read, true, true}, {spy, false, false}}},
		{`user.name == "root" && proc.pid == 201`, []want{{spy, true, true}, {sh, false, true}, {read, false, false}}},
		{`proc.tty != 0`, []want{{spy, false, false}, {sh, false, false}, {refused, false, false}}},
		{`glob(proc.name, "n*")`, []want{{refused, true, true}, {accepted, true, true}, {sh, false, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			e, err := CompileRowFilter(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if match, ok := e.Match(w.rec); match != w.match || ok != w.ok {
					t.Errorf("Match(%T %+v) = %v, %v; want %v, %v", w.rec, w.rec, match, ok, w.match, w.ok)
				}
			}
		})
	}
	// Plain text is not an expression: the console filters by substring.
	for _, src := range []string{"nginx", "postgres", "5432", "/etc/shadow", "ECONNREFUSED", "web 80", `proc.name ==`, "fd.name"} {
		if _, err := CompileRowFilter(src); err == nil {
			t.Errorf("CompileRowFilter(%q) compiled; want it left to the substring filter", src)
		}
	}
}

// TestConsoleExpressionFilter: the / key with the rule language, through
// the console.
func TestConsoleExpressionFilter(t *testing.T) {
	m := console.New(console.Options{View: console.Connections, Compile: CompileRowFilter})
	m.Update(tea.WindowSizeMsg{Width: 132, Height: 12})
	m.Apply(console.Update{Conns: []console.Conn{
		{Time: t0, ContainerID: cid, Container: "web", Direction: "out", Proto: "tcp", Client: "-", Server: "10.0.0.1:81", PID: 300,
			Comm: "nc", Result: "ECONNREFUSED"},
		{Time: t0, ContainerID: cid, Container: "web", Direction: "out", Proto: "tcp", Client: "172.17.0.2:40000", Server: "10.0.0.1:80",
			PID: 301, Comm: "nc", Result: "ok"},
	}})
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/")})
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(`evt.errno == "ECONNREFUSED"`)})
	m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	s := m.View()
	if !strings.Contains(s, "nc(300)") || strings.Contains(s, "nc(301)") || !strings.Contains(s, `expression "evt.errno == \"ECONNREFUSED\""`) {
		t.Errorf("connections filtered by evt.errno:\n%s", s)
	}
}

// BenchmarkRowFilter: one row through an expression filter (the console
// runs it on each row of the view after an update or a key).
func BenchmarkRowFilter(b *testing.B) {
	e, err := CompileRowFilter(`evt.errno == "ECONNREFUSED" && container.name startsWith "web"`)
	if err != nil {
		b.Fatal(err)
	}
	c := console.Conn{ContainerID: cid, Container: "web", Direction: "out", Proto: "tcp", Client: "172.17.0.2:40000",
		Server: "10.0.0.1:81", PID: 300, Comm: "nc", Result: "ECONNREFUSED"}
	b.ReportAllocs()
	for b.Loop() {
		if m, ok := e.Match(c); !m || !ok {
			b.Fatal("no match")
		}
	}
}

// FuzzRowFilter: whatever is typed after /, compiling it and running it on
// rows of every kind never panics, and a compiled filter answers for each.
func FuzzRowFilter(f *testing.F) {
	for _, s := range []string{`container.name == "web"`, `evt.errno == "ECONNREFUSED"`, `fd.name startsWith "/etc"`,
		`evt.arg.mode contains "S_ISUID"`, `glob(proc.name, "n*")`, `container.labels["a"] == "b"`, `proc.anames[0] == "sh"`,
		`nginx`, `5432`, `evt.`, `(`, `fd.sport > 1 and fd.cport < 65535`, `let x = proc.pid; x > 0`, `[1,2] | any(# > 1)`} {
		f.Add(s, "mode 04755", "E4095")
	}
	f.Fuzz(func(t *testing.T, src, detail, result string) {
		e, err := CompileRowFilter(src)
		if err != nil {
			return
		}
		recs := []any{
			console.Container{ID: cid, Name: "web", Image: "a/b:c"},
			console.Proc{ContainerID: cid, PID: 1, Cmdline: detail},
			console.Spy{ContainerID: cid, PID: 2, Cmdline: result},
			console.Conn{ContainerID: cid, Direction: "in", Proto: "tcp", Client: detail, Server: result, Result: result},
			console.Conn{ContainerID: cid, Direction: "out", Proto: "unix", Server: detail, Result: result},
			console.File{ContainerID: cid, Op: "chmod", Path: detail, Target: result, Detail: detail, Result: result},
			console.Incident{ID: "i", ContainerID: cid},
			nil,
		}
		for _, r := range recs {
			if match, ok := e.Match(r); match && !ok {
				t.Errorf("Match(%+v) matched a row it cannot read", r)
			}
		}
	})
}
