package enforce

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector/rules"
)

// BenchmarkExecToSignal measures, per enforced exec, how long the signal
// takes: from the exec tracepoint (the record's timestamp) to the process's
// exit (the kernel's stamp: the signal delivered and acted on), and to its
// parent's wait returning with the child killed. It reports min, median and
// max of each over b.N execs (run it with -benchtime Nx, N >= 5).
func BenchmarkExecToSignal(b *testing.B) {
	f := newFixture(b)
	e := open(b, f, Options{Entries: []Entry{{Rule: "r", Signal: rules.SigKill, Names: []string{"riposte-mark"}}}, Mode: Armed})
	if err := e.Arm(f.id); err != nil {
		b.Fatal(err)
	}
	var toExit, toParent []time.Duration
	b.ResetTimer()
	for range b.N {
		cmd := f.start(b, f.marker)
		_ = cmd.Wait()
		waited := BootNow()
		if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			b.Fatalf("the marker was not killed: %v", ws)
		}
		rec, found, err := e.Take(uint32(cmd.Process.Pid))
		if err != nil || !found || rec.ExitNanos == 0 {
			b.Fatalf("record of pid %d: %+v found=%v err=%v", cmd.Process.Pid, rec, found, err)
		}
		toExit = append(toExit, time.Duration(rec.ExitNanos-rec.BootNanos))
		toParent = append(toParent, time.Duration(waited-rec.BootNanos))
	}
	b.StopTimer()
	if f.ran() {
		b.Fatal("a killed marker wrote its file")
	}
	report(b, "exit", toExit)
	report(b, "parent", toParent)
}

func report(b *testing.B, what string, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[0].Nanoseconds()), "ns-min-"+what)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "ns-median-"+what)
	b.ReportMetric(float64(d[len(d)-1].Nanoseconds()), "ns-max-"+what)
}
