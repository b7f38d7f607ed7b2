package capture_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/responders/capture"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
	"github.com/riposte-sec/riposte/responders/docker"
)

// The benchmarks below measure a real capture of a real container; run
// them with scripts/bench-capture.sh (go test -bench Capture -benchtime 1x).
// Each runs its scenario once, whatever b.N, and reports its figures with
// b.ReportMetric.

// benchWindow is how long each phase records.
var benchWindow = envDuration("RIPOSTE_BENCH_WINDOW", 15*time.Second)

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

func benchDetector(b *testing.B, cli *client.Client) *detector.Detector {
	b.Helper()
	d, err := detector.New(detector.Config{DisableResources: true}, detector.Deps{Docker: cli})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, func(alert.Alert) {}) }()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case <-d.Ready():
	case err := <-done:
		b.Fatal(err)
	case <-time.After(30 * time.Second):
		b.Fatal("detector not ready")
	}
	return d
}

// count counts a container's events through a bare subscription, to know
// what the detector saw while a capture recorded.
func count(d *detector.Detector, id string) (execs, all *atomic.Uint64, stop func()) {
	ch, cancel := d.Subscribe(id, 1<<16)
	execs, all = new(atomic.Uint64), new(atomic.Uint64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			all.Add(1)
			if ev.Type == event.Exec {
				execs.Add(1)
			}
		}
	}()
	return execs, all, func() { cancel(); <-done }
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type lost struct{ kernel, queue, sub uint64 }

func lossOf(d *detector.Detector) lost {
	s := d.Stats()
	var k uint64
	for _, n := range s.KernelDrops {
		k += n
	}
	return lost{k, s.QueueDrops, s.SubscriberDrops}
}

// BenchmarkCaptureExecLoop: containers running a tight exec/open loop
// (busybox sh: fork, exec cat, open, exit, as fast as it goes), N loops in
// parallel. Phase 1 counts the events the detector delivers without a
// capture; phase 2 records them with capture.start. Reported: events/s
// recorded, events lost, the workload's exec rate with and without the
// capture (the overhead it sees), riposte's CPU per second for the
// detector alone and with the capture, and the syscall file's size per
// minute.
func BenchmarkCaptureExecLoop(b *testing.B) {
	for _, loops := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("loops=%d", loops), func(b *testing.B) {
			cli := testutil.DockerClient(b)
			testutil.Integration(b, testutil.Root, testutil.BPF, testutil.Docker)
			d := benchDetector(b, cli)
			script := strings.Repeat("(while :; do cat /etc/hostname; done >/dev/null) & ", loops) + "wait"
			id := testutil.RunContainer(b, cli, testutil.UniqueName(fmt.Sprintf("cap-bench-loop%d", loops)), nil, "sh", "-c", script)
			time.Sleep(time.Second)

			// Phase 1: the detector alone.
			execs, all, stop := count(d, id)
			cpu0, l0, t0 := cpuTime(), lossOf(d), time.Now()
			time.Sleep(benchWindow)
			stop()
			el := time.Since(t0).Seconds()
			baseExec, baseAll, baseCPU := float64(execs.Load())/el, float64(all.Load())/el, (cpuTime()-cpu0).Seconds()/el
			baseLoss := lossOf(d)
			_ = l0

			// Phase 2: with the capture.
			guard, err := docker.New(docker.Config{DataDir: b.TempDir()}, docker.Deps{Docker: cli})
			if err != nil {
				b.Fatal(err)
			}
			c, err := capture.New(capture.Config{EvidenceDir: b.TempDir()}, capture.Deps{Events: d, Docker: cli, Guard: guard})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			execs, all, stop = count(d, id)
			cpu0, t0 = cpuTime(), time.Now()
			res, err := c.Run(context.Background(), actions.Request{Action: capture.ActionStart, Container: id, Incident: "bench",
				Params: actions.Params{"duration": benchWindow.String(), "network": false, "wait": true, "max_bytes": "1GiB"}})
			if err != nil {
				b.Fatal(err)
			}
			el = time.Since(t0).Seconds()
			stop()
			capCPU := (cpuTime() - cpu0).Seconds() / el
			recorded := res.Detail["events"].(uint64)
			ll := res.Detail["lost"].(capfile.Lost)
			size := res.Evidence[0].Size
			after := lossOf(d)
			b.ReportMetric(float64(recorded)/el, "events/s")
			b.ReportMetric(float64(ll.Total()), "lost")
			b.ReportMetric(baseAll, "seen/s-nocapture")
			b.ReportMetric(float64(all.Load())/el, "seen/s-capture")
			b.ReportMetric(baseExec, "execs/s-nocapture")
			b.ReportMetric(float64(execs.Load())/el, "execs/s-capture")
			b.ReportMetric(baseCPU, "cpu-detector")
			b.ReportMetric(capCPU, "cpu-detector+capture")
			b.ReportMetric(float64(size)/el*60/(1<<20), "MiB/min")
			b.ReportMetric(float64(size)/float64(recorded), "B/event")
			b.Logf("loops=%d: recorded %d events in %.1fs (%.0f/s) into %d bytes; lost during capture kernel=%d queue=%d subscriber=%d (detector totals before capture %+v, after %+v)",
				loops, recorded, el, float64(recorded)/el, size, ll.Kernel, ll.Queue, ll.Subscriber, baseLoss, after)
		})
	}
}

// BenchmarkCaptureBusyContainer: a container that loops over shell
// commands and a request/response to a server on the bridge gateway (1KiB
// answer), recorded with syscalls and network: file sizes per minute.
func BenchmarkCaptureBusyContainer(b *testing.B) {
	cli := testutil.DockerClient(b)
	testutil.Integration(b, testutil.Root, testutil.BPF, testutil.Docker)
	d := benchDetector(b, cli)
	ctx := context.Background()
	id := testutil.RunContainer(b, cli, testutil.UniqueName("cap-bench-busy"), nil)
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		b.Fatal(err)
	}
	gw := info.NetworkSettings.Networks["bridge"].Gateway
	ln, err := net.Listen("tcp", net.JoinHostPort(gw, "0"))
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var served atomic.Uint64
	answer := strings.Repeat("x", 1023) + "\n"
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
					conn.Write([]byte(answer))
					served.Add(1)
				}
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	loop := fmt.Sprintf("while :; do cat /etc/passwd >/dev/null; ls / >/dev/null; echo GET | nc %s %d >/dev/null; done", gw, port)
	go dockerExecB(b, cli, id, "sh", "-c", loop)
	time.Sleep(time.Second)

	guard, err := docker.New(docker.Config{DataDir: b.TempDir()}, docker.Deps{Docker: cli})
	if err != nil {
		b.Fatal(err)
	}
	c, err := capture.New(capture.Config{EvidenceDir: b.TempDir()}, capture.Deps{Events: d, Docker: cli, Guard: guard})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s0 := served.Load()
	t0 := time.Now()
	res, err := c.Run(ctx, actions.Request{Action: capture.ActionStart, Container: id, Incident: "bench",
		Params: actions.Params{"duration": benchWindow.String(), "wait": true, "max_bytes": "1GiB"}})
	if err != nil {
		b.Fatal(err)
	}
	el := time.Since(t0).Seconds()
	perMin := func(n int64) float64 { return float64(n) / el * 60 / (1 << 20) }
	sys, pcap := res.Evidence[0], res.Evidence[1]
	b.ReportMetric(perMin(sys.Size), "syscalls-MiB/min")
	b.ReportMetric(perMin(pcap.Size), "pcap-MiB/min")
	b.ReportMetric(float64(res.Detail["events"].(uint64))/el, "events/s")
	b.ReportMetric(float64(res.Detail["packets"].(uint64))/el, "packets/s")
	b.ReportMetric(float64(served.Load()-s0)/el, "requests/s")
	b.Logf("%s: %s; %s", filepath.Base(res.Detail["dir"].(string)), res.Note, describe(res.Evidence))
}

func dockerExecB(b *testing.B, cli *client.Client, id string, cmd ...string) {
	ctx := context.Background()
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return
	}
	resp, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return
	}
	defer resp.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := resp.Reader.Read(buf); err != nil {
			return
		}
	}
}
