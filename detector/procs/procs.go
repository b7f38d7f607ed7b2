package procs

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Proc is one process.
type Proc struct {
	PID, PPID uint32
	Comm      string   // kernel comm
	Exe       string   // executable path as exec'd (or /proc/PID/exe when seeded)
	Args      []string // argv
	TTY       uint32
	// Cwd is the working directory as the process sees it: read from
	// /proc when the process entered the table, inherited on fork, kept
	// across exec, changed by Chdir. "" when unknown (after an fchdir).
	Cwd    string
	Exited time.Time // zero while alive
}

// Table maps pids to processes.
type Table struct {
	procRoot string
	max      int
	grace    time.Duration
	m        map[uint32]*Proc
}

// New returns an empty table reading /proc from procRoot, holding at most
// max processes and keeping exited ones for grace.
func New(procRoot string, max int, grace time.Duration) *Table {
	if max <= 0 {
		max = 1 << 16
	}
	return &Table{procRoot: procRoot, max: max, grace: grace, m: make(map[uint32]*Proc)}
}

// Len is the number of processes held, exited ones included.
func (t *Table) Len() int { return len(t.m) }

// Seed adds every process under procRoot. Processes that vanish while being
// read are skipped.
func (t *Table) Seed() error {
	ents, err := os.ReadDir(t.procRoot)
	if err != nil {
		return fmt.Errorf("seed process table: %w", err)
	}
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if p, err := t.read(uint32(pid)); err == nil {
			t.put(p)
		}
	}
	return nil
}

// Lookup returns the process, reading it from /proc when the table does not
// know it yet (started before the detector and missed by Seed). It returns
// nil when the process is unknown and gone.
func (t *Table) Lookup(pid uint32) *Proc {
	if p, ok := t.m[pid]; ok {
		return p
	}
	p, err := t.read(pid)
	if err != nil {
		return nil
	}
	t.put(p)
	return p
}

// Get returns the process without reading /proc, or nil.
func (t *Table) Get(pid uint32) *Proc { return t.m[pid] }

// Fork records a new process that inherits its parent's image.
func (t *Table) Fork(pid, ppid uint32, comm string, tty uint32) *Proc {
	p := &Proc{PID: pid, PPID: ppid, Comm: comm, TTY: tty}
	if parent := t.Lookup(ppid); parent != nil {
		p.Exe, p.Args, p.Cwd = parent.Exe, parent.Args, parent.Cwd
	}
	t.put(p)
	return p
}

// Exec records that pid now runs exe with args. The working directory
// stays: exec does not change it.
func (t *Table) Exec(pid, ppid uint32, comm, exe string, args []string, tty uint32) *Proc {
	p := &Proc{PID: pid, PPID: ppid, Comm: comm, Exe: exe, Args: args, TTY: tty}
	if old := t.Lookup(pid); old != nil {
		p.Cwd = old.Cwd
	}
	t.put(p)
	return p
}

// Chdir records pid's new working directory: dir as chdir was given it,
// relative to the one before; "" makes it unknown (fchdir names only the
// directory's last component).
func (t *Table) Chdir(pid uint32, dir string) {
	p := t.Lookup(pid)
	if p == nil {
		return
	}
	switch {
	case dir == "":
		p.Cwd = ""
	case strings.HasPrefix(dir, "/"):
		p.Cwd = path.Clean(dir)
	case p.Cwd != "":
		p.Cwd = path.Join(p.Cwd, dir)
	}
}

// Exit marks pid as exited at now; Sweep removes it after the grace period.
func (t *Table) Exit(pid uint32, now time.Time) {
	if p, ok := t.m[pid]; ok {
		p.Exited = now
	}
}

// Sweep removes processes that exited more than the grace period before now.
func (t *Table) Sweep(now time.Time) {
	for pid, p := range t.m {
		if !p.Exited.IsZero() && now.Sub(p.Exited) > t.grace {
			delete(t.m, pid)
		}
	}
}

// IsRuntimeHelper reports whether comm is one of runc's transient
// processes (runc itself, runc:[0:PARENT], runc:[1:CHILD], runc:[2:INIT]).
// They start a container's processes and exit at once; the started process
// is then reparented to the container's shim, its lasting parent.
func IsRuntimeHelper(comm string) bool {
	return comm == "runc" || strings.HasPrefix(comm, "runc:[")
}

// Parent returns the parent of a process whose parent pid is ppid: the
// first ancestor that is not a runtime helper (IsRuntimeHelper), so that
// the same `docker exec` yields the same parent (the shim) whether runc had
// exited by the time of the event or not. Nil when unknown.
func (t *Table) Parent(ppid uint32) *Proc {
	p := t.Lookup(ppid)
	for hops := 0; p != nil && IsRuntimeHelper(p.Comm) && hops < 4; hops++ {
		if p.PPID == 0 || p.PPID == p.PID {
			return p
		}
		next := t.Lookup(p.PPID)
		if next == nil {
			return p
		}
		p = next
	}
	return p
}

// ParentOf returns the parent of pid, whose parent pid was ppid at the
// event: Parent(ppid) or, when that process is unknown and gone (runc exits
// as soon as it has started a process), the parent pid has now in /proc,
// the shim it was reparented to. Nil when neither is known.
func (t *Table) ParentOf(pid, ppid uint32) *Proc {
	if p := t.Parent(ppid); p != nil {
		return p
	}
	cur, err := t.read(pid)
	if err != nil || cur.PPID == ppid || cur.PPID == 0 {
		return nil
	}
	return t.Parent(cur.PPID)
}

// Ancestors returns the names of pid's parent, grandparent, ... at most n,
// runtime helpers skipped as in Parent.
func (t *Table) Ancestors(pid uint32, n int) []string {
	var out []string
	p := t.Get(pid)
	for p != nil && len(out) < n && p.PPID != 0 && p.PPID != p.PID {
		p = t.Parent(p.PPID)
		if p == nil {
			break
		}
		out = append(out, p.Comm)
	}
	return out
}

func (t *Table) put(p *Proc) {
	if _, ok := t.m[p.PID]; !ok && len(t.m) >= t.max {
		t.Sweep(time.Now().Add(t.grace))
		if len(t.m) >= t.max {
			for pid := range t.m { // full of live processes: forget one
				delete(t.m, pid)
				break
			}
		}
	}
	t.m[p.PID] = p
}

// read builds a Proc from /proc/<pid>.
func (t *Table) read(pid uint32) (*Proc, error) {
	dir := filepath.Join(t.procRoot, strconv.FormatUint(uint64(pid), 10))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return nil, fmt.Errorf("read process %d: %w", pid, err)
	}
	p, err := ParseStat(stat)
	if err != nil {
		return nil, err
	}
	if cmd, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		p.Args = SplitArgv(cmd)
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		p.Exe = exe
	}
	if cwd, err := os.Readlink(filepath.Join(dir, "cwd")); err == nil {
		p.Cwd = cwd
	}
	return p, nil
}

// ParseStat parses /proc/<pid>/stat: pid, comm, ppid and tty_nr.
func ParseStat(b []byte) (*Proc, error) {
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return nil, fmt.Errorf("parse stat: no comm in %q", b)
	}
	pid, err := strconv.ParseUint(strings.TrimSpace(string(b[:open])), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse stat: bad pid: %w", err)
	}
	// After ") ": state ppid pgrp session tty_nr ...
	f := strings.Fields(string(b[close+1:]))
	if len(f) < 5 {
		return nil, fmt.Errorf("parse stat: %d fields after comm, want at least 5", len(f))
	}
	ppid, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse stat: bad ppid: %w", err)
	}
	tty, _ := strconv.ParseInt(f[4], 10, 64)
	return &Proc{PID: uint32(pid), PPID: uint32(ppid), Comm: string(b[open+1 : close]), TTY: uint32(tty)}, nil
}

// SplitArgv splits a NUL-separated argv (as in /proc/<pid>/cmdline and the
// sensor's exec events) into its arguments.
func SplitArgv(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}
