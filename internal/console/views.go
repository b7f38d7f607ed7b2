package console

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// View is one of the console's six views.
type View int

// The views, in the order of their number keys 1–6.
const (
	Containers View = iota
	Procs
	Connections
	SpyUsers
	Files
	Incidents
	numViews
)

var viewNames = [numViews]string{"containers", "procs", "connections", "spy-users", "files", "incidents"}

func (v View) String() string {
	if v < 0 || v >= numViews {
		return "view(" + strconv.Itoa(int(v)) + ")"
	}
	return viewNames[v]
}

// ParseView reads a view name as --view takes it.
func ParseView(s string) (View, error) {
	for i, n := range viewNames {
		if s == n {
			return View(i), nil
		}
	}
	return 0, fmt.Errorf("parse view %q: want one of %s", s, strings.Join(viewNames[:], ", "))
}

// column is one column of a view; width 0 takes what is left.
type column struct {
	title string
	width int
	num   bool // sort numerically
	right bool // align right
}

// cell is one value: its text and, for numeric columns, its number.
type cell struct {
	text string
	n    float64
}

// row is one line of a view.
type row struct {
	key         string // stable across refreshes: keeps the selection
	containerID string
	incident    string
	at          time.Time // when it happened: a replay's time cursor hides later rows
	depth       int       // procs: tree depth, shown as indentation of the last column
	cells       []cell
	// rec is what an expression filter reads (a Container, Proc, Conn,
	// Spy, File or Incident), set only while one is in use.
	rec any
}

// record is v as a row's rec: nil unless an expression filter is in use,
// so that rows cost no allocation for it otherwise.
func record[T any](m *Model, v T) any {
	if m.expr == nil {
		return nil
	}
	return v
}

func txt(s string) cell            { return cell{text: s} }
func num(s string, n float64) cell { return cell{text: s, n: n} }
func intCell(n int) cell           { return cell{text: strconv.Itoa(n), n: float64(n)} }
func timeCell(t time.Time) cell    { return cell{text: clock(t), n: float64(t.UnixNano())} }
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("15:04:05")
}

// columns of each view, and the column each view sorts by at first (-1:
// the view's own order, the process tree).
var (
	viewColumns = [numViews][]column{
		Containers: {{title: "NAME", width: 20}, {title: "IMAGE", width: 20}, {title: "STATE", width: 19},
			{title: "CPU%", width: 6, num: true, right: true}, {title: "MEM", width: 8, num: true, right: true},
			{title: "PROCS", width: 5, num: true, right: true}, {title: "CONNS", width: 5, num: true, right: true},
			{title: "ALERTS", width: 6, num: true, right: true}, {title: "INCIDENT"}},
		Procs: {{title: "CONTAINER", width: 16}, {title: "PID", width: 7, num: true, right: true}, {title: "PPID", width: 7, num: true, right: true},
			{title: "USER", width: 8}, {title: "START", width: 8, num: true}, {title: "EXIT", width: 14}, {title: "COMMAND"}},
		Connections: {{title: "TIME", width: 8, num: true}, {title: "CONTAINER", width: 16}, {title: "DIR", width: 3}, {title: "PROTO", width: 5},
			{title: "CLIENT -> SERVER", width: 44}, {title: "PROCESS", width: 16}, {title: "RESULT"}},
		SpyUsers: {{title: "TIME", width: 8, num: true}, {title: "CONTAINER", width: 16}, {title: "USER", width: 8}, {title: "TTY", width: 7},
			{title: "SHELL", width: 5}, {title: "PID", width: 7, num: true, right: true}, {title: "COMMAND"}},
		Files: {{title: "TIME", width: 8, num: true}, {title: "CONTAINER", width: 16}, {title: "OP", width: 8}, {title: "PROCESS", width: 16},
			{title: "RESULT", width: 8}, {title: "PATH"}},
		Incidents: {{title: "ID", width: 30}, {title: "CONTAINER", width: 16}, {title: "RULE", width: 28}, {title: "STATE", width: 6},
			{title: "OPENED", width: 8, num: true}, {title: "ALERTS", width: 6, num: true, right: true}, {title: "ACTIONS / PENDING APPROVALS"}},
	}
	defaultSort = [numViews]struct {
		col  int
		desc bool
	}{Containers: {3, true}, Procs: {-1, false}, Connections: {0, true}, SpyUsers: {0, true}, Files: {0, true}, Incidents: {4, true}}
)

// rows builds the rows of view v from the model's data, before filter and
// sort.
func (m *Model) rows(v View) []row {
	switch v {
	case Containers:
		return m.containerRows()
	case Procs:
		return m.procRows()
	case Connections:
		out := make([]row, 0, len(m.conns))
		for i, c := range m.conns {
			c.Container = m.nameOf(c.ContainerID, c.Container)
			out = append(out, row{key: "c" + strconv.FormatUint(m.connBase+uint64(i), 10), containerID: c.ContainerID, at: c.Time, rec: record(m, c),
				cells: []cell{timeCell(c.Time), txt(c.Container), txt(c.Direction), txt(c.Proto),
					txt(c.Client + " -> " + c.Server), txt(fmt.Sprintf("%s(%d)", c.Comm, c.PID)), txt(c.Result)}})
		}
		return out
	case SpyUsers:
		out := make([]row, 0, len(m.spies))
		for i, s := range m.spies {
			s.Container = m.nameOf(s.ContainerID, s.Container)
			out = append(out, row{key: "s" + strconv.FormatUint(m.spyBase+uint64(i), 10), containerID: s.ContainerID, at: s.Time, rec: record(m, s),
				cells: []cell{timeCell(s.Time), txt(s.Container), txt(s.User), txt(dash(s.TTY)), txt(s.Shell),
					num(strconv.FormatUint(uint64(s.PID), 10), float64(s.PID)), txt(s.Cmdline)}})
		}
		return out
	case Files:
		out := make([]row, 0, len(m.files))
		for i, f := range m.files {
			f.Container = m.nameOf(f.ContainerID, f.Container)
			out = append(out, row{key: "f" + strconv.FormatUint(m.fileBase+uint64(i), 10), containerID: f.ContainerID, at: f.Time, rec: record(m, f),
				cells: []cell{timeCell(f.Time), txt(f.Container), txt(f.Op),
					txt(fmt.Sprintf("%s(%d)", f.Comm, f.PID)), txt(f.Result), txt(f.pathText())}})
		}
		return out
	case Incidents:
		out := make([]row, 0, len(m.incidents))
		for _, in := range m.incidents {
			// A held action shows the approval it waits for.
			pending := append([]PendingAppr(nil), in.Pending...)
			var acts []string
			for _, a := range in.Actions {
				s := a.Action + " " + a.State
				if a.State == "held" {
					for i, p := range pending {
						if p.Action == a.Action {
							s = a.Action + " WAITING " + p.ID
							pending = append(pending[:i], pending[i+1:]...)
							break
						}
					}
				}
				acts = append(acts, s)
			}
			for _, p := range pending {
				acts = append(acts, p.Action+" WAITING "+p.ID)
			}
			in.Container = m.nameOf(in.ContainerID, in.Container)
			out = append(out, row{key: "i" + in.ID, containerID: m.fullID(in.ContainerID), incident: in.ID, rec: record(m, in),
				cells: []cell{txt(in.ID), txt(in.Container), txt(in.Rule), txt(in.State),
					timeCell(in.OpenedAt), intCell(in.Alerts), txt(dash(strings.Join(acts, ", ")))}})
		}
		return out
	}
	return nil
}

func (m *Model) containerRows() []row {
	procs := map[string]int{}
	for _, p := range m.procs {
		if m.before(p.Started) && !m.exited(p) {
			procs[p.ContainerID]++
		}
	}
	conns := map[string]int{}
	for _, c := range m.conns {
		if m.before(c.Time) {
			conns[c.ContainerID]++
		}
	}
	open := map[string]string{}
	alerts := map[string]int{} // the detector's alerts seen here, or the incidents' count when larger (a server's)
	incAlerts := map[string]int{}
	for id, n := range m.alerts {
		alerts[m.fullID(id)] += n
	}
	for _, in := range m.incidents {
		id := m.fullID(in.ContainerID)
		if in.State == "open" {
			if _, ok := open[id]; !ok {
				open[id] = in.ID + " " + in.Rule
			}
		}
		incAlerts[id] += in.Alerts
	}
	for id, n := range incAlerts {
		alerts[id] = max(alerts[id], n)
	}
	out := make([]row, 0, len(m.containers))
	for _, c := range m.containers {
		state := c.State
		if c.Quarantined {
			state += ",quarantined"
		}
		if c.Protected {
			state += ",protected"
		}
		out = append(out, row{key: "k" + c.ID, containerID: c.ID, rec: record(m, c),
			cells: []cell{txt(c.Name), txt(c.Image), txt(state),
				num(strconv.FormatFloat(c.CPUPercent, 'f', 1, 64), c.CPUPercent), num(bytes(c.MemoryBytes), float64(c.MemoryBytes)),
				intCell(procs[c.ID]), intCell(conns[c.ID]), intCell(alerts[c.ID]), txt(dash(open[c.ID]))}})
	}
	return out
}

// procRows is the process tree of each container, containers by name,
// children under their parent by pid.
func (m *Model) procRows() []row {
	byCont := map[string][]*Proc{}
	for _, p := range m.procs {
		if m.before(p.Started) {
			byCont[p.ContainerID] = append(byCont[p.ContainerID], p)
		}
	}
	ids := make([]string, 0, len(byCont))
	for id := range byCont {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := m.nameOf(ids[i], ""), m.nameOf(ids[j], "")
		if a != b {
			return a < b
		}
		return ids[i] < ids[j]
	})
	var out []row
	for _, id := range ids {
		ps := byCont[id]
		sort.Slice(ps, func(i, j int) bool {
			if ps[i].PID != ps[j].PID {
				return ps[i].PID < ps[j].PID
			}
			return ps[i].Started.Before(ps[j].Started)
		})
		live := map[uint32]*Proc{} // the newest entry of each pid
		for _, p := range ps {
			live[p.PID] = p
		}
		children := map[*Proc][]*Proc{}
		var roots []*Proc
		for _, p := range ps {
			if parent, ok := live[p.PPID]; ok && parent != p && !parent.Started.After(p.Started) {
				children[parent] = append(children[parent], p)
			} else {
				roots = append(roots, p)
			}
		}
		seen := map[*Proc]bool{}
		var walk func(p *Proc, depth int)
		walk = func(p *Proc, depth int) {
			if seen[p] {
				return
			}
			seen[p] = true
			exit := "running"
			if m.exited(p) {
				exit = clock(*p.Exited)
				if p.ExitCode != nil {
					exit += " " + strconv.FormatInt(*p.ExitCode, 10)
				}
			}
			pr := *p
			pr.Container = m.nameOf(p.ContainerID, p.Container)
			out = append(out, row{key: "p" + procKey(p), containerID: p.ContainerID, depth: depth, rec: record(m, pr),
				cells: []cell{txt(pr.Container), num(strconv.FormatUint(uint64(p.PID), 10), float64(p.PID)),
					num(strconv.FormatUint(uint64(p.PPID), 10), float64(p.PPID)), txt(dash(p.User)), timeCell(p.Started), txt(exit),
					txt(p.Cmdline)}})
			for _, c := range children[p] {
				walk(c, depth+1)
			}
		}
		for _, r := range roots {
			walk(r, 0)
		}
	}
	return out
}

func procKey(p *Proc) string {
	return p.ContainerID + "/" + strconv.FormatUint(uint64(p.PID), 10) + "/" + strconv.FormatInt(p.Started.UnixNano(), 10)
}

// before reports whether t is at or before the replay's time cursor
// (always, live).
func (m *Model) before(t time.Time) bool {
	return m.cursorAt.IsZero() || t.IsZero() || !t.After(m.cursorAt)
}

// exited reports whether p has exited by the time cursor.
func (m *Model) exited(p *Proc) bool { return p.Exited != nil && m.before(*p.Exited) }

// fullID is the full id of the container id names (a short id, as
// incidents and alerts carry it), or id when no container has it.
func (m *Model) fullID(id string) string {
	if _, ok := m.containerByID[id]; ok || len(id) < 12 {
		return id
	}
	for _, c := range m.containers {
		if strings.HasPrefix(c.ID, id) {
			return c.ID
		}
	}
	return id
}

// nameOf is a container's name: the one the runtime reports, else the one
// the row carries, else the short id.
func (m *Model) nameOf(id, fallback string) string {
	if c, ok := m.containerByID[id]; ok && c.Name != "" {
		return c.Name
	}
	if len(id) >= 12 { // an incident names its container by the short id
		for _, c := range m.containers {
			if strings.HasPrefix(c.ID, id) && c.Name != "" {
				return c.Name
			}
		}
	}
	if fallback != "" {
		return fallback
	}
	if len(id) > 12 {
		return id[:12]
	}
	return dash(id)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// bytes prints a size the way top does: 512B, 12.3M, 1.2G.
func bytes(n int64) string {
	const k = 1024
	switch {
	case n < k:
		return strconv.FormatInt(n, 10) + "B"
	case n < k*k:
		return strconv.FormatFloat(float64(n)/k, 'f', 1, 64) + "K"
	case n < k*k*k:
		return strconv.FormatFloat(float64(n)/(k*k), 'f', 1, 64) + "M"
	}
	return strconv.FormatFloat(float64(n)/(k*k*k), 'f', 1, 64) + "G"
}

// pathText is a file row's PATH cell: the path, "old -> new" for a rename,
// "link -> target" for a link, then the mode or length set.
func (f File) pathText() string {
	s := f.Path
	if f.Target != "" {
		s += " -> " + f.Target
	}
	if f.Detail != "" {
		s += "  " + f.Detail
	}
	return s
}

// matches reports whether the row contains the filter (case-insensitive
// substring of any cell).
func (r row) matches(filter string) bool {
	if filter == "" {
		return true
	}
	f := strings.ToLower(filter)
	for _, c := range r.cells {
		if strings.Contains(strings.ToLower(c.text), f) {
			return true
		}
	}
	return false
}

// sortRows sorts by column col (numerically when the column is numeric),
// ties by key so that the order is stable across refreshes.
func sortRows(rs []row, cols []column, col int, desc bool) {
	if col < 0 || col >= len(cols) {
		return
	}
	numeric := cols[col].num
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i].cells[col], rs[j].cells[col]
		var less, eq bool
		if numeric {
			less, eq = a.n < b.n, a.n == b.n
		} else {
			less, eq = a.text < b.text, a.text == b.text
		}
		if eq {
			return rs[i].key < rs[j].key
		}
		if desc {
			return !less
		}
		return less
	})
}

// formatRow lays cells out in the columns, cut to width runes.
func formatRow(cols []column, cells []string, depth, width int) string {
	var b strings.Builder
	for i, c := range cols {
		s := cells[i]
		if i == len(cols)-1 {
			b.WriteString(strings.Repeat("  ", depth))
			b.WriteString(s)
			break
		}
		s = fit(s, c.width)
		if c.right {
			b.WriteString(strings.Repeat(" ", c.width-runeLen(s)))
			b.WriteString(s)
		} else {
			b.WriteString(s)
			b.WriteString(strings.Repeat(" ", c.width-runeLen(s)))
		}
		b.WriteByte(' ')
	}
	return cut(b.String(), width)
}

func runeLen(s string) int { return len([]rune(s)) }

// fit cuts s to w runes, marking the cut with "~".
func fit(s string, w int) string {
	r := []rune(s)
	if len(r) <= w {
		return s
	}
	if w <= 1 {
		return string(r[:w])
	}
	return string(r[:w-1]) + "~"
}

// cut cuts s to w runes and removes trailing spaces.
func cut(s string, w int) string {
	r := []rune(s)
	if len(r) > w {
		r = r[:w]
	}
	return strings.TrimRight(string(r), " ")
}
