package procs

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Proc
		wantErr bool
	}{
		{"plain", "1234 (bash) S 1000 1234 1234 34816 1234 4194304", Proc{PID: 1234, PPID: 1000, Comm: "bash", TTY: 34816}, false},
		{"comm with spaces and parens", "77 (my (odd) prog) R 1 77 77 0 -1 0", Proc{PID: 77, PPID: 1, Comm: "my (odd) prog"}, false},
		{"no comm", "77 R 1", Proc{}, true},
		{"short", "77 (x) R", Proc{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestSplitArgv(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"sh\x00-c\x00cat /etc/shadow\x00", []string{"sh", "-c", "cat /etc/shadow"}},
		{"sleep\x00", []string{"sleep"}},
		{"a\x00\x00b\x00", []string{"a", "", "b"}},
		{"", nil},
		{"\x00\x00", nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := SplitArgv([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("SplitArgv(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTableTree(t *testing.T) {
	tab := New(t.TempDir(), 10, time.Second) // empty /proc: nothing is read from it
	tab.Exec(10, 1, "containerd-shim", "/usr/bin/containerd-shim", []string{"containerd-shim"}, 0)
	tab.Exec(20, 10, "sh", "/bin/sh", []string{"sh", "-c", "x"}, 0)
	child := tab.Fork(30, 20, "sh", 0)
	if child.Exe != "/bin/sh" || !reflect.DeepEqual(child.Args, []string{"sh", "-c", "x"}) {
		t.Fatalf("fork did not inherit the parent's image: %+v", child)
	}
	tab.Exec(30, 20, "cat", "/bin/cat", []string{"cat", "/etc/shadow"}, 0)
	if got := tab.Ancestors(30, 8); !reflect.DeepEqual(got, []string{"sh", "containerd-shim"}) {
		t.Fatalf("ancestors = %q", got)
	}
	now := time.Now()
	tab.Exit(20, now)
	tab.Sweep(now.Add(500 * time.Millisecond))
	if tab.Get(20) == nil {
		t.Fatal("exited process removed before its grace period")
	}
	tab.Sweep(now.Add(2 * time.Second))
	if tab.Get(20) != nil {
		t.Fatal("exited process kept after its grace period")
	}
	if tab.Lookup(999999) != nil {
		t.Fatal("Lookup of an unknown, absent pid returned a process")
	}
}

// TestParentSkipsRuntimeHelpers: a process runc started has the shim as
// its parent, whether runc is still in the table or it already exited and
// the process was reparented to the shim.
func TestParentSkipsRuntimeHelpers(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(tab *Table)
		ppid   uint32
		parent string
		anames []string
	}{
		{"runc still running", func(tab *Table) {
			tab.Exec(40, 10, "runc", "/usr/bin/runc", []string{"runc", "exec"}, 0)
			tab.Exec(41, 40, "sh", "/bin/sh", []string{"sh"}, 0)
		}, 40, "containerd-shim", []string{"containerd-shim", "containerd"}},
		{"runc init's chain", func(tab *Table) {
			tab.Exec(40, 10, "runc", "/usr/bin/runc", nil, 0)
			tab.Exec(42, 40, "runc:[2:INIT]", "/proc/self/exe", nil, 0)
			tab.Exec(41, 42, "sh", "/bin/sh", []string{"sh"}, 0)
		}, 42, "containerd-shim", []string{"containerd-shim", "containerd"}},
		{"reparented to the shim", func(tab *Table) {
			tab.Exec(41, 10, "sh", "/bin/sh", []string{"sh"}, 0)
		}, 10, "containerd-shim", []string{"containerd-shim", "containerd"}},
		{"a shell parent is kept", func(tab *Table) {
			tab.Exec(40, 10, "bash", "/bin/bash", nil, 0)
			tab.Exec(41, 40, "sh", "/bin/sh", []string{"sh"}, 0)
		}, 40, "bash", []string{"bash", "containerd-shim", "containerd"}},
		{"runc whose parent is unknown", func(tab *Table) {
			tab.Exec(40, 999999, "runc", "/usr/bin/runc", nil, 0)
			tab.Exec(41, 40, "sh", "/bin/sh", []string{"sh"}, 0)
		}, 40, "runc", []string{"runc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := New(t.TempDir(), 0, time.Second)
			tab.Exec(5, 0, "containerd", "/usr/bin/containerd", nil, 0)
			tab.Exec(10, 5, "containerd-shim", "/usr/bin/containerd-shim-runc-v2", nil, 0)
			tt.setup(tab)
			if p := tab.Parent(tt.ppid); p == nil || p.Comm != tt.parent {
				t.Fatalf("Parent(%d) = %+v, want %s", tt.ppid, p, tt.parent)
			}
			if got := tab.Ancestors(41, 8); !reflect.DeepEqual(got, tt.anames) {
				t.Fatalf("Ancestors = %q, want %q", got, tt.anames)
			}
		})
	}
}

// TestParentOfReparented: when the event's parent (runc) is gone and
// unknown, the parent is the one /proc shows now (the shim).
func TestParentOfReparented(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "41"), 0o755); err != nil {
		t.Fatal(err)
	}
	stat := "41 (telnet) S 10 41 41 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0 0"
	if err := os.WriteFile(filepath.Join(root, "41", "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	tab := New(root, 0, time.Second)
	tab.Exec(10, 1, "containerd-shim", "/usr/bin/containerd-shim-runc-v2", nil, 0)
	if p := tab.ParentOf(41, 40); p == nil || p.Comm != "containerd-shim" {
		t.Fatalf("ParentOf(41, 40) = %+v, want the shim", p)
	}
	if p := tab.ParentOf(41, 10); p == nil || p.Comm != "containerd-shim" {
		t.Fatalf("ParentOf(41, 10) = %+v, want the shim", p)
	}
	if p := tab.ParentOf(99, 98); p != nil {
		t.Fatalf("ParentOf of an unknown process = %+v, want nil", p)
	}
}

func TestTableBounded(t *testing.T) {
	tab := New(t.TempDir(), 3, time.Second)
	for pid := uint32(1); pid <= 10; pid++ {
		tab.Exec(pid, 0, "p", "/p", nil, 0)
	}
	if tab.Len() > 3 {
		t.Fatalf("table holds %d processes, max 3", tab.Len())
	}
}

func TestSeedFromProc(t *testing.T) {
	tab := New("/proc", 0, time.Second)
	if err := tab.Seed(); err != nil {
		t.Fatal(err)
	}
	self := tab.Get(uint32(os.Getpid()))
	if self == nil || self.Exe == "" || len(self.Args) == 0 || self.PPID != uint32(os.Getppid()) {
		t.Fatalf("seeded self = %+v", self)
	}
	if wd, err := os.Getwd(); err != nil || self.Cwd != wd {
		t.Fatalf("seeded self's cwd = %q, want %q (%v)", self.Cwd, wd, err)
	}
}

// TestWorkingDirectory: the table follows a process's working directory
// through fork, exec and chdir, without /proc.
func TestWorkingDirectory(t *testing.T) {
	tab := New(t.TempDir(), 10, time.Second) // empty /proc: nothing is read from it
	tab.Exec(20, 1, "sh", "/bin/sh", []string{"sh"}, 0)
	steps := []struct {
		name string
		do   func()
		pid  uint32
		want string
	}{
		{"unknown at first", func() {}, 20, ""},
		{"absolute chdir", func() { tab.Chdir(20, "/usr//local/") }, 20, "/usr/local"},
		{"relative chdir", func() { tab.Chdir(20, "../bin") }, 20, "/usr/bin"},
		{"inherited on fork", func() { tab.Fork(30, 20, "sh", 0) }, 30, "/usr/bin"},
		{"kept across exec", func() { tab.Exec(30, 20, "tar", "/bin/tar", []string{"tar", "-x"}, 0) }, 30, "/usr/bin"},
		{"the child's chdir leaves the parent", func() { tab.Chdir(30, "/") }, 20, "/usr/bin"},
		{"fchdir makes it unknown", func() { tab.Chdir(20, "") }, 20, ""},
		{"relative chdir from unknown stays unknown", func() { tab.Chdir(20, "lib") }, 20, ""},
		{"unknown process", func() { tab.Chdir(99, "/tmp") }, 99, ""},
	}
	for _, st := range steps {
		st.do()
		got := ""
		if p := tab.Get(st.pid); p != nil {
			got = p.Cwd
		}
		if got != st.want {
			t.Errorf("%s: cwd of %d = %q, want %q", st.name, st.pid, got, st.want)
		}
	}
}
