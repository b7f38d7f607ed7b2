package enforce

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector/cgroup"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// fixture is a cgroup of the hierarchy the detector attributes by, made
// for one test, and a marker program: a shell script whose first act is
// to write its marker file.
type fixture struct {
	mode   cgroup.Mode
	dir    string // the cgroup's directory
	id     uint64 // its kernfs id
	marker string // the script's path; its name is "riposte-mark"
	out    string // the file it writes
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	testutil.Integration(t, testutil.Root, testutil.BPF)
	mode, err := cgroup.DetectMode("/")
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := cgroup.ReadMounts()
	if err != nil {
		t.Fatal(err)
	}
	base := mounts.V2
	if mode == cgroup.V1 {
		base = mounts.V1["pids"]
	}
	if base == "" {
		testutil.SkipOrFail(t, "no pids cgroup (v1) or cgroup2 mount to make a test cgroup in")
	}
	dir := filepath.Join(base, testutil.UniqueName("riposte-enforce"))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("make test cgroup: %v", err)
	}
	t.Cleanup(func() {
		// The cgroup's processes have been waited for; rmdir may still see
		// a zombie being reaped for a moment.
		var err error
		testutil.Eventually(t, 5*time.Second, func() bool { err = os.Remove(dir); return err == nil }, "remove test cgroup %s: %v", dir, &err)
	})
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	f := &fixture{mode: mode, dir: dir, id: st.Ino, marker: filepath.Join(tmp, "riposte-mark"), out: filepath.Join(tmp, "marker")}
	script := "#!/bin/sh\necho ran > " + f.out + "\n"
	if err := os.WriteFile(f.marker, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// start runs prog in the fixture's cgroup: a shell moves itself there and
// execs prog.
func (f *fixture) start(t testing.TB, prog string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$1/cgroup.procs" && exec "$2"`, "sh", f.dir, prog)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", prog, err)
	}
	return cmd
}

// run runs prog in the cgroup and returns how it ended.
func (f *fixture) run(t testing.TB, prog string) (signal syscall.Signal, err error) {
	t.Helper()
	cmd := f.start(t, prog)
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal(), nil
	}
	return 0, err
}

func (f *fixture) ran() bool {
	_, err := os.Stat(f.out)
	return err == nil
}

func open(t testing.TB, f *fixture, opts Options) *Enforcer {
	t.Helper()
	opts.Cgroup = f.mode
	e, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return e
}

func TestEnforce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entry   func(f *fixture) Entry
		mode    Mode
		arm     bool
		killed  bool
		outcome Outcome
	}{
		{"by name, armed", func(*fixture) Entry { return Entry{Rule: "r", Signal: rules.SigKill, Names: []string{"riposte-mark"}} },
			Armed, true, true, Signalled},
		{"by path, armed", func(f *fixture) Entry { return Entry{Rule: "r", Signal: rules.SigKill, Paths: []string{f.marker}} },
			Armed, true, true, Signalled},
		{"dry run", func(*fixture) Entry { return Entry{Rule: "r", Signal: rules.SigKill, Names: []string{"riposte-mark"}} },
			DryRun, true, false, WouldSignal},
		{"cgroup not armed", func(*fixture) Entry { return Entry{Rule: "r", Signal: rules.SigKill, Names: []string{"riposte-mark"}} },
			Armed, false, false, ""},
		{"other program", func(*fixture) Entry { return Entry{Rule: "r", Signal: rules.SigKill, Names: []string{"nc"}} },
			Armed, true, false, ""},
		{"off", func(*fixture) Entry { return Entry{Rule: "r", Signal: rules.SigKill, Names: []string{"riposte-mark"}} },
			Off, true, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			e := open(t, f, Options{Entries: []Entry{tc.entry(f)}, Mode: tc.mode})
			if tc.arm {
				if err := e.Arm(f.id); err != nil {
					t.Fatal(err)
				}
			}
			cmd := f.start(t, f.marker)
			_ = cmd.Wait()
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL; killed != tc.killed {
				t.Fatalf("killed = %v (status %v), want %v", killed, ws, tc.killed)
			}
			if f.ran() == tc.killed {
				t.Fatalf("marker written = %v, want %v: the program ran %s", f.ran(), !tc.killed, map[bool]string{true: "after the signal", false: "not at all"}[f.ran()])
			}
			rec, found, err := e.Take(uint32(cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			if !found {
				if tc.outcome != "" {
					t.Fatalf("no record for pid %d, want %s", cmd.Process.Pid, tc.outcome)
				}
				return
			}
			if tc.outcome == "" {
				t.Fatalf("record %+v, want none", rec)
			}
			if rec.Outcome != tc.outcome || rec.PID != uint32(cmd.Process.Pid) || rec.Comm != "riposte-mark" || rec.Path != f.marker ||
				rec.CgroupID != f.id || rec.Signal != rules.SigKill || rec.Rule != 0 {
				t.Fatalf("record %+v, want outcome %s for pid %d in cgroup %d", rec, tc.outcome, cmd.Process.Pid, f.id)
			}
			if rec.ExitNanos < rec.BootNanos {
				t.Fatalf("exit stamped at %d, before the exec at %d", rec.ExitNanos, rec.BootNanos)
			}
		})
	}
}

// TestBudget: with a budget of 2 per hour the third match is recorded as
// budget_exhausted and runs.
func TestBudget(t *testing.T) {
	f := newFixture(t)
	e := open(t, f, Options{Entries: []Entry{{Rule: "r", Signal: rules.SigKill, Names: []string{"riposte-mark"}}},
		Mode: Armed, Budget: 2, Window: time.Hour})
	if err := e.Arm(f.id); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		sig, err := f.run(t, f.marker)
		got = append(got, fmt.Sprintf("%v/%v", sig, err))
	}
	want := []string{"killed/<nil>", "killed/<nil>", "signal 0/<nil>"}
	if !slices.Equal(got, want) {
		t.Fatalf("three runs ended %v, want %v", got, want)
	}
	if !f.ran() {
		t.Fatal("the run beyond the budget did not write its marker")
	}
	st, err := e.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Signalled != 2 || st.BudgetExhausted != 1 || st.Matched != 3 {
		t.Fatalf("stats %+v, want 2 signalled, 1 over budget, 3 matched", st)
	}
}

// TestStop: SIGSTOP leaves the process stopped before its first
// instruction.
func TestStop(t *testing.T) {
	f := newFixture(t)
	e := open(t, f, Options{Entries: []Entry{{Rule: "r", Signal: rules.SigStop, Names: []string{"riposte-mark"}}}, Mode: Armed})
	if err := e.Arm(f.id); err != nil {
		t.Fatal(err)
	}
	cmd := f.start(t, f.marker)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	stat := fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)
	testutil.Eventually(t, 5*time.Second, func() bool {
		b, err := os.ReadFile(stat)
		// pid (comm) state ...
		_, rest, _ := strings.Cut(string(b), ") ")
		return err == nil && strings.HasPrefix(rest, "T")
	}, "pid %d is not stopped", cmd.Process.Pid)
	if f.ran() {
		t.Fatal("the stopped program wrote its marker")
	}
	rec, found, err := e.Peek(uint32(cmd.Process.Pid))
	if err != nil || !found || rec.Outcome != Signalled || rec.Signal != rules.SigStop || rec.ExitNanos != 0 {
		t.Fatalf("record %+v found=%v err=%v, want SIGSTOP signalled and no exit", rec, found, err)
	}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"budget without window", Options{Budget: 3}, "enforcement: a budget of 3 signals needs a window of at least 1ms, got 0s"},
		{"long name", Options{Entries: []Entry{{Rule: "r", Signal: rules.SigKill, Names: []string{"sixteen-bytes-xx"}}}},
			`enforcement: rule "r": name "sixteen-bytes-xx" is not 1 to 15 bytes`},
		{"bad signal", Options{Entries: []Entry{{Rule: "r", Signal: 15, Names: []string{"nc"}}}},
			`enforcement: rule "r": signal signal 15 is neither SIGKILL nor SIGSTOP`},
		{"bad mode", Options{Mode: 7}, "enforcement: unknown mode 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.opts)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestStale: a decision nobody took is handed out once by Stale, and a
// young one is left.
func TestStale(t *testing.T) {
	f := newFixture(t)
	e := open(t, f, Options{Entries: []Entry{{Rule: "r", Signal: rules.SigKill, Names: []string{"riposte-mark"}}}, Mode: Armed})
	if err := e.Arm(f.id); err != nil {
		t.Fatal(err)
	}
	cmd := f.start(t, f.marker)
	_ = cmd.Wait()
	pid := uint32(cmd.Process.Pid)
	if recs, err := e.Stale(time.Hour); err != nil || len(recs) != 0 {
		t.Fatalf("Stale(1h) = %+v, %v; want nothing", recs, err)
	}
	if _, found, _ := e.Peek(pid); !found {
		t.Fatal("Stale took a young record")
	}
	recs, err := e.Stale(0)
	if err != nil {
		t.Fatal(err)
	}
	var mine []Record
	for _, r := range recs {
		if r.PID == pid {
			mine = append(mine, r)
		}
	}
	if len(mine) != 1 || mine[0].Outcome != Signalled || mine[0].Path != f.marker {
		t.Fatalf("Stale(0) = %+v, want the killed marker's record once", recs)
	}
	if again, _ := e.Stale(0); len(again) != 0 {
		t.Fatalf("Stale handed out %+v twice", again)
	}
}
