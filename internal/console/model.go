package console

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode"

	tea "github.com/charmbracelet/bubbletea"
)

// Limits on what the console keeps: the newest rows win.
const (
	maxEvents = 5000 // connections, commands and file operations, each
	maxProcs  = 20000
)

// Options configure a Model.
type Options struct {
	View  View   // the view to start in
	Actor Actor  // nil: actions are off (replay)
	Title string // shown in the status line: "in-process detector", "server 127.0.0.1:8080"
	// ActTimeout bounds one action; 0 means 2 minutes.
	ActTimeout time.Duration
	// Replay: the data is a recording; [ and ] (1s), { and } (10s) move a
	// time cursor through it and the views show what was true then.
	Replay bool
	// Compile turns the text typed after / into an expression filter;
	// when it fails (or Compile is nil) the text filters as a plain,
	// case-insensitive substring.
	Compile func(src string) (Expr, error)
}

type mode int

const (
	modeNormal  mode = iota
	modeFilter       // typing a filter after /
	modeMenu         // the action menu is open
	modeConfirm      // a destructive action waits for y
	modeInput        // typing the capture duration
	modeViews        // the F2 view menu is open
)

// menuItem is one action of the menu.
type menuItem struct {
	key         string
	label       string
	action      string
	destructive bool // asks for y
}

var menu = []menuItem{
	{"p", "pause", "container.pause", true},
	{"u", "unpause", "container.unpause", false},
	{"q", "quarantine", "container.quarantine", true},
	{"r", "release", "container.release", false},
	{"k", "kill", "container.kill", true},
	{"s", "snapshot", "container.snapshot", false},
	{"c", "capture", "capture.start", false},
	{"A", "approve", "approve", true},
	{"D", "deny", "deny", false},
}

// Model is the console: the data the Source sent, the current view, its
// selection, sort and filter, and the action in progress.
type Model struct {
	opts Options

	containers    []Container
	containerByID map[string]Container
	incidents     []Incident
	procs         map[string]*Proc
	conns         []Conn
	spies         []Spy
	files         []File
	connBase      uint64 // sequence number of conns[0]: keys survive trimming
	spyBase       uint64
	fileBase      uint64
	alerts        map[string]int
	stats         Stats
	srcErr        string

	view     View
	scope    string // drill-down: only this container's rows
	filter   string
	expr     Expr   // filter compiled, nil for a substring
	exprNA   bool   // the view's rows lack a field expr reads: it does not filter them
	input    string // the line being typed (filter, duration)
	mode     mode
	sortCol  [numViews]int
	sortDesc [numViews]bool
	selected [numViews]string // key of the selected row
	offset   [numViews]int    // first row shown

	pending Request // the action waiting for confirmation or input
	target  string  // its container's name, for messages
	message string  // the message line
	busy    int     // actions running

	width, height int

	// The replay's time cursor and the span of the recording.
	cursorAt, first, last time.Time

	// visible's last answer, and what it depended on: a key press and the
	// screen drawn after it build the rows once.
	dataGen  uint64 // counts Apply calls
	visKey   visKey
	visRows  []row
	visValid bool
}

type visKey struct {
	view          View
	scope, filter string
	sortCol       int
	sortDesc      bool
	cursorAt      time.Time
	dataGen       uint64
}

// New returns a Model showing opts.View.
func New(opts Options) *Model {
	if opts.ActTimeout <= 0 {
		opts.ActTimeout = 2 * time.Minute
	}
	m := &Model{opts: opts, view: opts.View, containerByID: map[string]Container{}, procs: map[string]*Proc{},
		alerts: map[string]int{}, width: 120, height: 30}
	if m.view < 0 || m.view >= numViews {
		m.view = Containers
	}
	for v := range numViews {
		m.sortCol[v], m.sortDesc[v] = defaultSort[v].col, defaultSort[v].desc
	}
	return m
}

// UpdateMsg carries an Update from the Source into bubbletea.
type UpdateMsg Update

// actDone is the outcome of an action.
type actDone struct {
	req    Request
	target string
	note   string
	err    error
}

// Init implements tea.Model.
func (m *Model) Init() tea.Cmd { return nil }

// Apply adds an Update to the model's data.
func (m *Model) Apply(u Update) {
	m.dataGen++
	if u.ContainersSet {
		m.containers = append(m.containers[:0], u.Containers...)
		m.containerByID = make(map[string]Container, len(u.Containers))
		for _, c := range u.Containers {
			m.containerByID[c.ID] = c
		}
	}
	if u.IncidentsSet {
		m.incidents = append(m.incidents[:0], u.Incidents...)
	}
	for i := range u.Procs {
		p := u.Procs[i]
		k := procKey(&p)
		if old, ok := m.procs[k]; ok {
			*old = p
			continue
		}
		if len(m.procs) >= maxProcs {
			m.dropExitedProc()
		}
		m.procs[k] = &p
	}
	m.conns, m.connBase = appendCapped(m.conns, u.Conns, m.connBase)
	m.spies, m.spyBase = appendCapped(m.spies, u.Spies, m.spyBase)
	m.files, m.fileBase = appendCapped(m.files, u.Files, m.fileBase)
	for _, a := range u.Alerts {
		m.alerts[a.ContainerID]++
	}
	if u.Stats != nil {
		m.stats = *u.Stats
	}
	if m.opts.Replay {
		m.span(u)
	}
	if u.Connected {
		m.srcErr = ""
	}
	if u.Err != "" {
		m.srcErr = u.Err
	}
}

func appendCapped[T any](s, add []T, base uint64) ([]T, uint64) {
	s = append(s, add...)
	if over := len(s) - maxEvents; over > 0 {
		s = append(s[:0:0], s[over:]...)
		base += uint64(over)
	}
	return s, base
}

// dropExitedProc forgets the process that exited first (or, when none
// has, any) to make room.
func (m *Model) dropExitedProc() {
	var oldest string
	var at time.Time
	for k, p := range m.procs {
		if p.Exited != nil && (oldest == "" || p.Exited.Before(at)) {
			oldest, at = k, *p.Exited
		}
	}
	if oldest == "" {
		for k := range m.procs {
			oldest = k
			break
		}
	}
	delete(m.procs, oldest)
}

// span widens the recording's time span to u's rows; the cursor starts at
// the end.
func (m *Model) span(u Update) {
	see := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if m.first.IsZero() || t.Before(m.first) {
			m.first = t
		}
		if t.After(m.last) {
			m.last = t
		}
	}
	for _, p := range u.Procs {
		see(p.Started)
		if p.Exited != nil {
			see(*p.Exited)
		}
	}
	for _, c := range u.Conns {
		see(c.Time)
	}
	for _, s := range u.Spies {
		see(s.Time)
	}
	for _, f := range u.Files {
		see(f.Time)
	}
	m.cursorAt = m.last
}

// moveCursor moves the replay's time cursor by d, within the recording.
func (m *Model) moveCursor(d time.Duration) {
	if !m.opts.Replay || m.last.IsZero() {
		return
	}
	c := m.cursorAt.Add(d)
	if c.Before(m.first) {
		c = m.first
	}
	if c.After(m.last) {
		c = m.last
	}
	m.cursorAt = c
}

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case UpdateMsg:
		m.Apply(Update(msg))
	case actDone:
		m.busy--
		m.message = actMessage(msg)
	case tea.KeyMsg:
		return m, m.key(msg)
	}
	return m, nil
}

func actMessage(d actDone) string {
	what := d.req.Action + " " + d.target
	if d.err != nil {
		return what + ": REFUSED OR FAILED: " + d.err.Error()
	}
	if d.note == "" {
		d.note = "done"
	}
	return what + ": " + d.note + " (journaled)"
}

func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	// Keys typed quickly (or sent by a script) arrive as one message:
	// "/web" is /, w, e, b; an escape just before a key arrives as alt+key.
	if k.Type == tea.KeyRunes && !k.Paste && (len(k.Runes) > 1 || k.Alt) {
		var cmds []tea.Cmd
		if k.Alt {
			cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyEsc}))
		}
		for _, r := range k.Runes {
			cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}}))
		}
		return tea.Batch(cmds...)
	}
	s := k.String()
	if s == "ctrl+c" {
		return tea.Quit
	}
	switch m.mode {
	case modeFilter:
		return m.typing(k, func(line string) tea.Cmd {
			m.setFilter(line)
			m.selected[m.view] = ""
			return nil
		})
	case modeInput:
		return m.typing(k, func(line string) tea.Cmd {
			if line == "" {
				line = "30s"
			}
			if d, err := time.ParseDuration(line); err != nil || d <= 0 {
				m.message = "capture " + m.target + ": duration " + strconv.Quote(line) + ": want a positive duration like 30s or 2m"
				return nil
			}
			m.pending.With = map[string]string{"duration": line}
			return m.run()
		})
	case modeMenu:
		m.mode = modeNormal
		m.message = ""
		for _, it := range menu {
			if s == it.key {
				return m.choose(it)
			}
		}
		return nil
	case modeViews:
		m.mode = modeNormal
		m.message = ""
		if len(s) == 1 && s[0] >= '1' && s[0] < '1'+byte(numViews) {
			m.view = View(s[0] - '1')
		}
		return nil
	case modeConfirm:
		m.mode = modeNormal
		if s == "y" {
			return m.run()
		}
		m.message = m.pending.Action + " " + m.target + ": cancelled"
		return nil
	}
	switch s {
	case "q":
		return tea.Quit
	case "1", "2", "3", "4", "5", "6":
		m.view = View(s[0] - '1')
	case "tab":
		m.view = (m.view + 1) % numViews
	case "f2":
		m.mode = modeViews
		var b strings.Builder
		b.WriteString("view:")
		for v := range numViews {
			b.WriteString(" " + strconv.Itoa(int(v)+1) + " " + v.String())
		}
		b.WriteString("  (esc cancels)")
		m.message = b.String()
	case "shift+tab":
		m.view = (m.view + numViews - 1) % numViews
	case "up", "k":
		m.move(-1)
	case "down", "j":
		m.move(1)
	case "pgup":
		m.move(-m.pageRows())
	case "pgdown":
		m.move(m.pageRows())
	case "home", "g":
		m.move(-1 << 30)
	case "end", "G":
		m.move(1 << 30)
	case "enter":
		m.drill()
	case "esc":
		switch {
		case m.filter != "":
			m.setFilter("")
		case m.scope != "":
			m.scope = ""
		}
		m.message = ""
	case "/":
		m.mode, m.input = modeFilter, m.filter
	case "<", ",":
		m.setSort(-1)
	case ">", ".":
		m.setSort(1)
	case "i":
		m.sortDesc[m.view] = !m.sortDesc[m.view]
	case "[":
		m.moveCursor(-time.Second)
	case "]":
		m.moveCursor(time.Second)
	case "{":
		m.moveCursor(-10 * time.Second)
	case "}":
		m.moveCursor(10 * time.Second)
	case "a", "f8":
		r, ok := m.current()
		if !ok {
			m.message = "no row selected: nothing to act on"
			return nil
		}
		if m.opts.Actor == nil {
			m.message = "actions are off here (a replay acts on nothing)"
			return nil
		}
		m.mode = modeMenu
		var b strings.Builder
		b.WriteString("act on " + m.nameOf(r.containerID, "") + ":")
		for _, it := range menu {
			b.WriteString(" " + it.key + " " + it.label)
		}
		b.WriteString("  (esc cancels)")
		m.message = b.String()
	}
	return nil
}

// typing edits m.input; Enter calls done with it, Esc cancels.
func (m *Model) typing(k tea.KeyMsg, done func(string) tea.Cmd) tea.Cmd {
	switch k.Type {
	case tea.KeyEnter:
		m.mode = modeNormal
		return done(m.input)
	case tea.KeyEsc:
		m.mode = modeNormal
		m.message = ""
	case tea.KeyBackspace:
		if r := []rune(m.input); len(r) > 0 {
			m.input = string(r[:len(r)-1])
		}
	case tea.KeyRunes, tea.KeySpace:
		for _, r := range k.Runes {
			if unicode.IsPrint(r) {
				m.input += string(r)
			}
		}
	}
	return nil
}

// choose starts the menu item it on the selected row.
func (m *Model) choose(it menuItem) tea.Cmd {
	r, ok := m.current()
	if !ok {
		return nil
	}
	m.pending = Request{Action: it.action, Container: r.containerID, Incident: r.incident}
	m.target = m.nameOf(r.containerID, "")
	if r.incident == "" {
		m.pending.Incident = m.openIncident(r.containerID)
	}
	if it.action == "approve" || it.action == "deny" {
		ap, action, ok := m.pendingApproval(r)
		if !ok {
			m.message = it.label + ": no action waits for approval on " + m.target
			return nil
		}
		m.pending.Approval = ap
		m.target = action + " on " + m.target + " (" + ap + ")"
	}
	if it.action == "capture.start" {
		m.mode, m.input = modeInput, ""
		m.message = "capture " + m.target + " for how long? (enter: 30s, esc cancels)"
		return nil
	}
	if it.destructive {
		m.mode = modeConfirm
		m.message = it.label + " " + m.target + "? press y to confirm, any other key cancels"
		return nil
	}
	return m.run()
}

// run sends the pending request to the Actor.
func (m *Model) run() tea.Cmd {
	req, target, actor, timeout := m.pending, m.target, m.opts.Actor, m.opts.ActTimeout
	m.busy++
	m.message = req.Action + " " + target + ": running..."
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		note, err := actor.Act(ctx, req)
		return actDone{req: req, target: target, note: note, err: err}
	}
}

// openIncident is the newest open incident of a container.
func (m *Model) openIncident(id string) string {
	for _, in := range m.incidents {
		if m.fullID(in.ContainerID) == id && in.State == "open" {
			return in.ID
		}
	}
	return ""
}

// pendingApproval finds the held action of the selected incident, or of
// the selected container's incidents.
func (m *Model) pendingApproval(r row) (id, action string, ok bool) {
	for _, in := range m.incidents {
		if (r.incident != "" && in.ID != r.incident) || (r.incident == "" && m.fullID(in.ContainerID) != r.containerID) {
			continue
		}
		if len(in.Pending) > 0 {
			return in.Pending[0].ID, in.Pending[0].Action, true
		}
	}
	return "", "", false
}

// drill narrows every view to the selected row's container and shows its
// processes (from containers and incidents).
func (m *Model) drill() {
	r, ok := m.current()
	if !ok || r.containerID == "" {
		return
	}
	m.scope = r.containerID
	if m.view == Containers || m.view == Incidents {
		m.view = Procs
	}
}

func (m *Model) setSort(d int) {
	n := len(viewColumns[m.view])
	c := m.sortCol[m.view] + d
	if c < 0 {
		c = n - 1
	}
	if c >= n {
		c = 0
	}
	m.sortCol[m.view] = c
}

// setFilter sets the filter: an expression of the detector's rule
// language when it compiles as one, else a substring.
func (m *Model) setFilter(line string) {
	m.filter, m.expr = line, nil
	if line != "" && m.opts.Compile != nil {
		if e, err := m.opts.Compile(line); err == nil {
			m.expr = e
		}
	}
	m.visValid = false
}

// visible is the current view's rows after scope, filter and sort.
// Callers do not modify the result.
func (m *Model) visible() []row {
	k := visKey{view: m.view, scope: m.scope, filter: m.filter, sortCol: m.sortCol[m.view], sortDesc: m.sortDesc[m.view],
		cursorAt: m.cursorAt, dataGen: m.dataGen}
	if m.visValid && k == m.visKey {
		return m.visRows
	}
	m.visRows, m.visKey, m.visValid = m.build(), k, true
	return m.visRows
}

func (m *Model) build() []row {
	all := m.rows(m.view)
	out := all[:0]
	m.exprNA = false
	for _, r := range all {
		if m.scope != "" && r.containerID != m.scope {
			continue
		}
		if !r.at.IsZero() && !m.before(r.at) {
			continue
		}
		if m.expr != nil {
			match, ok := m.expr.Match(r.rec)
			if !ok {
				m.exprNA = true
			} else if !match {
				continue
			}
		} else if !r.matches(m.filter) {
			continue
		}
		out = append(out, r)
	}
	if m.sortCol[m.view] >= 0 {
		for i := range out {
			out[i].depth = 0 // a sorted tree is a list
		}
	}
	sortRows(out, viewColumns[m.view], m.sortCol[m.view], m.sortDesc[m.view])
	return out
}

// cursor is the index of the selected row in rs (the first when the
// selected row is gone).
func (m *Model) cursor(rs []row) int {
	for i, r := range rs {
		if r.key == m.selected[m.view] {
			return i
		}
	}
	return 0
}

func (m *Model) current() (row, bool) {
	rs := m.visible()
	if len(rs) == 0 {
		return row{}, false
	}
	return rs[m.cursor(rs)], true
}

func (m *Model) move(d int) {
	rs := m.visible()
	if len(rs) == 0 {
		return
	}
	i := m.cursor(rs) + d
	i = max(0, min(i, len(rs)-1))
	m.selected[m.view] = rs[i].key
}

// pageRows is how many rows fit: the screen minus the tab line, the
// column titles, the message line and the status line.
func (m *Model) pageRows() int { return max(1, m.height-4) }

// View implements tea.Model.
func (m *Model) View() string {
	w := max(20, m.width)
	var b strings.Builder
	// Tabs.
	var tabs []string
	for v := range numViews {
		t := strconv.Itoa(int(v)+1) + " " + v.String()
		if v == m.view {
			t = "[" + t + "]"
		} else {
			t = " " + t + " "
		}
		tabs = append(tabs, t)
	}
	b.WriteString(cut(strings.Join(tabs, " ")+"   a/F8 act  / filter  </> sort  enter drill  q quit", w))
	b.WriteByte('\n')
	// Titles, the sort column marked.
	cols := viewColumns[m.view]
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
		if i == m.sortCol[m.view] {
			if m.sortDesc[m.view] {
				titles[i] += "v"
			} else {
				titles[i] += "^"
			}
		}
	}
	b.WriteString(cut("  "+formatRow(cols, titles, 0, w-2), w))
	b.WriteByte('\n')
	// Rows.
	rs := m.visible()
	page := m.pageRows()
	cur := m.cursor(rs)
	off := m.offset[m.view]
	if cur < off {
		off = cur
	}
	if cur >= off+page {
		off = cur - page + 1
	}
	off = max(0, min(off, max(0, len(rs)-page)))
	m.offset[m.view] = off
	lines := 0
	for i := off; i < len(rs) && lines < page; i++ {
		cells := make([]string, len(rs[i].cells))
		for j, c := range rs[i].cells {
			cells[j] = clean(c.text)
		}
		mark := "  "
		if i == cur {
			mark = "> "
		}
		b.WriteString(cut(mark+formatRow(cols, cells, rs[i].depth, w-2), w))
		b.WriteByte('\n')
		lines++
	}
	if len(rs) == 0 {
		b.WriteString("  (nothing yet)\n")
		lines++
	}
	for ; lines < page; lines++ {
		b.WriteByte('\n')
	}
	// Message line.
	switch m.mode {
	case modeFilter:
		b.WriteString(cut("/"+m.input+"_", w))
	case modeInput:
		b.WriteString(cut(clean(m.message)+" "+m.input+"_", w))
	default:
		b.WriteString(cut(clean(m.message), w))
	}
	b.WriteByte('\n')
	b.WriteString(cut(m.status(len(rs)), w))
	return b.String()
}

func (m *Model) status(n int) string {
	parts := []string{m.view.String() + " " + strconv.Itoa(n)}
	if m.scope != "" {
		parts = append(parts, "container "+m.nameOf(m.scope, "")+" (esc: all)")
	}
	switch {
	case m.expr != nil && m.exprNA:
		parts = append(parts, "expression "+strconv.Quote(m.filter)+" (not on this view's fields)")
	case m.expr != nil:
		parts = append(parts, "expression "+strconv.Quote(m.filter))
	case m.filter != "":
		parts = append(parts, "filter "+strconv.Quote(m.filter))
	}
	parts = append(parts, strconv.FormatFloat(m.stats.EventsPerSec, 'f', 0, 64)+" ev/s",
		strconv.FormatUint(m.stats.Drops, 10)+" drops")
	if m.opts.Replay && !m.last.IsZero() {
		parts = append(parts, "at "+m.cursorAt.UTC().Format("15:04:05.000")+" of "+clock(m.first)+"-"+clock(m.last)+" ([ ] 1s, { } 10s)")
	}
	if m.busy > 0 {
		parts = append(parts, strconv.Itoa(m.busy)+" action(s) running")
	}
	src := m.opts.Title
	if m.stats.Source != "" {
		src = m.stats.Source
	}
	if src != "" {
		parts = append(parts, src)
	}
	if m.srcErr != "" {
		parts = append(parts, "! "+m.srcErr)
	}
	return clean(strings.Join(parts, " | "))
}

// clean replaces control and format characters (escape sequences from a
// container's command line must not reach the terminal) with '?'.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) || r == unicode.ReplacementChar {
			return '?'
		}
		return r
	}, s)
}

// Run runs the console on the terminal until the user quits or ctx ends,
// fed by src.
func Run(ctx context.Context, m *Model, src Source, opts ...tea.ProgramOption) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := tea.NewProgram(m, append([]tea.ProgramOption{tea.WithAltScreen(), tea.WithContext(ctx)}, opts...)...)
	srcDone := make(chan error, 1)
	go func() {
		srcDone <- src.Run(ctx, func(u Update) { p.Send(UpdateMsg(u)) })
	}()
	go func() {
		if err := <-srcDone; err != nil && ctx.Err() == nil {
			p.Send(UpdateMsg{Err: "source stopped: " + err.Error()})
		}
	}()
	_, err := p.Run()
	if err != nil && ctx.Err() != nil && err == tea.ErrProgramKilled {
		return nil
	}
	return err
}
