package docker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/benchtools/latency"
	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// Run with scripts/bench-docker.sh (go test -run '^$' -bench BenchmarkDocker
// -benchtime 1x). Each benchmark iteration takes every sample itself and
// reports medians, so one iteration is the measurement.

const pauseSamples = 20

// BenchmarkDockerPause compares a bare ContainerPause API call with
// container.pause through Responder.Run (inspect, guardrails, pause, log),
// interleaved so both see the same daemon, unpausing between samples.
func BenchmarkDockerPause(b *testing.B) {
	cli := testutil.DockerClient(b)
	r := benchResponder(b, cli)
	id, _ := startContainer(b, cli, "bench-pause", nil)
	ctx := context.Background()
	for b.Loop() {
		var bare, run []time.Duration
		for range pauseSamples {
			start := time.Now()
			if err := cli.ContainerPause(ctx, id); err != nil {
				b.Fatal(err)
			}
			bare = append(bare, time.Since(start))
			unpauseSettled(b, cli, id)

			start = time.Now()
			// As an alert gives it: Falco's 12-character container.id.
			res, err := r.Run(ctx, actions.Request{Action: "container.pause", Container: id[:12], Actor: "bench"})
			if err != nil || res.Note != "paused" {
				b.Fatalf("pause through Run: %v %q", err, res.Note)
			}
			run = append(run, time.Since(start))
			if err := cli.ContainerUnpause(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
		mb, mr := median(bare), median(run)
		b.ReportMetric(ms(mb), "bare-median-ms")
		b.ReportMetric(ms(mr), "run-median-ms")
		fmt.Fprintf(os.Stdout, "\npause, median of %d (min–max), one run, interleaved:\n"+
			"  bare ContainerPause API call   %7.2f ms  (%.2f–%.2f)\n"+
			"  container.pause through Run    %7.2f ms  (%.2f–%.2f)\n"+
			"  overhead of the responder      %7.2f ms\n",
			pauseSamples, ms(mb), ms(slices.Min(bare)), ms(slices.Max(bare)),
			ms(mr), ms(slices.Min(run)), ms(slices.Max(run)), ms(mr-mb))
	}
}

// BenchmarkDockerContainment compares, interleaved, the three ways to
// freeze a running container, each timed from the call until the container
// is frozen: a bare ContainerPause API call until it returns (runc has
// frozen the cgroup by then); container.pause through Responder.Run by the
// Docker path (inspect cache on, as riposte serve runs it) until its
// ContainerPause returned (the Result's frozen_at_ns: Run then waits for
// the daemon's state to follow, which contains nothing); and by the freezer
// path until the kernel reported the cgroup frozen (frozen_at_ns again). BENCH_RUNS runs (default 5) of BENCH_PAUSE_SAMPLES
// samples of each (default 50): per run p50 and p99 of each and the Docker
// path's p99 over the bare call's; then min, median and max over the runs,
// and whether "Docker path p99 <= 1.5x bare in every run" and "freezer p99
// < 2 ms in every run" hold.
//
//	go test -run '^$' -bench DockerContainment -benchtime 1x ./responders/docker
func BenchmarkDockerContainment(b *testing.B) {
	cli := testutil.DockerClient(b)
	cgroupctltest.Freezer(b)
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	viaDocker, err := New(Config{DataDir: b.TempDir()}, Deps{Docker: cli, Events: cli, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	defer viaDocker.Close()
	viaFreezer, err := New(Config{DataDir: b.TempDir(), Pause: PauseFreezer}, Deps{Docker: cli, Events: cli, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	defer viaFreezer.Close()
	// One container per path: a container paused and unpaused in quick
	// succession can have the daemon apply containerd's late pause event
	// after the unpause (it then says paused while runc says running), so
	// each container rests while the other two are worked on.
	bareID, _ := startContainer(b, cli, "bench-bare", nil)
	dockerID, _ := startContainer(b, cli, "bench-docker", nil)
	freezerID, _ := startContainer(b, cli, "bench-freezer", nil)
	ctx := context.Background()
	samples, runs := envInt(b, "BENCH_PAUSE_SAMPLES", 50), envInt(b, "BENCH_RUNS", 5)
	for _, r := range []*Responder{viaDocker, viaFreezer} {
		deadline := time.Now().Add(10 * time.Second)
		for n, live := r.Cached(); !live || n < 3; n, live = r.Cached() {
			if time.Now().After(deadline) {
				b.Fatal("the inspect cache did not fill in 10s")
			}
			time.Sleep(time.Millisecond) // polling the watcher
		}
	}
	frozenAt := func(res actions.Result) time.Time {
		ns, ok := res.Detail["frozen_at_ns"].(int64)
		if !ok {
			b.Fatalf("result without frozen_at_ns: %v", res.Detail)
		}
		return time.Unix(0, ns)
	}
	type run struct{ bare, docker, freezer, kernel []time.Duration }
	for b.Loop() {
		var all []run
		for range runs {
			var rn run
			for i := range samples {
				bare := func() {
					start := time.Now()
					if err := cli.ContainerPause(ctx, bareID); err != nil {
						b.Fatal(err)
					}
					rn.bare = append(rn.bare, time.Since(start))
				}
				docker := func() {
					start := time.Now()
					res, err := viaDocker.Run(ctx, actions.Request{Action: "container.pause", Container: dockerID[:12], Actor: "bench"})
					if err != nil || res.Note != "paused" {
						b.Fatalf("pause through the Docker path: %v %q", err, res.Note)
					}
					rn.docker = append(rn.docker, frozenAt(res).Sub(start))
				}
				freezer := func() {
					start := time.Now()
					res, err := viaFreezer.Run(ctx, actions.Request{Action: "container.pause", Container: freezerID[:12], Actor: "bench"})
					if err != nil || !strings.HasPrefix(res.Note, "frozen (cgroup freezer)") {
						b.Fatalf("pause through the freezer path: %v %q", err, res.Note)
					}
					rn.freezer = append(rn.freezer, frozenAt(res).Sub(start))
					us, _ := res.Detail["frozen_us"].(int64)
					rn.kernel = append(rn.kernel, time.Duration(us)*time.Microsecond)
				}
				// The order turns each sample: a pause lands on a daemon
				// still busy with the one before (containerd's event, the
				// state written to disk), which no path should always pay.
				order := [][3]func(){{bare, docker, freezer}, {docker, freezer, bare}, {freezer, bare, docker}}[i%3]
				for _, f := range order {
					f()
				}

				unpauseSettled(b, cli, bareID)
				unpauseSettled(b, cli, dockerID)
				if res, err := viaFreezer.Run(ctx, actions.Request{Action: "container.unpause", Container: freezerID[:12], Actor: "bench"}); err != nil {
					b.Fatalf("unpause after the freezer path: %v %q", err, res.Note)
				}
				waitUnpaused(b, cli, freezerID)
			}
			all = append(all, rn)
		}
		fmt.Fprintf(os.Stdout, "\ncontainment, call -> container frozen, %d runs of %d samples each, interleaved (p50 / p99, ms):\n", runs, samples)
		fmt.Fprintf(os.Stdout, "  %-4s %-17s %-17s %-17s %-8s %s\n", "run", "bare pause", "Docker path", "freezer path", "ratio", "freezer: cgroup write -> frozen")
		var ratios, fp99 []float64
		for i, rn := range all {
			q := func(d []time.Duration, p float64) float64 { return ms(latency.Quantile(d, p)) }
			ratio := q(rn.docker, 0.99) / q(rn.bare, 0.99)
			ratios, fp99 = append(ratios, ratio), append(fp99, q(rn.freezer, 0.99))
			fmt.Fprintf(os.Stdout, "  %-4d %6.2f / %7.2f  %6.2f / %7.2f  %6.3f / %6.3f  %5.2fx   %.3f / %.3f\n", i+1,
				q(rn.bare, 0.5), q(rn.bare, 0.99), q(rn.docker, 0.5), q(rn.docker, 0.99),
				q(rn.freezer, 0.5), q(rn.freezer, 0.99), ratio, q(rn.kernel, 0.5), q(rn.kernel, 0.99))
		}
		slices.Sort(ratios)
		slices.Sort(fp99)
		fmt.Fprintf(os.Stdout, "  Docker path p99 / bare p99 over the runs: min %.2fx  median %.2fx  max %.2fx\n", ratios[0], ratios[len(ratios)/2], ratios[len(ratios)-1])
		fmt.Fprintf(os.Stdout, "  freezer path p99 over the runs:          min %.3f ms  median %.3f ms  max %.3f ms\n", fp99[0], fp99[len(fp99)/2], fp99[len(fp99)-1])
		fmt.Fprintf(os.Stdout, "  Docker path p99 <= 1.5x bare in every run: %s; freezer path p99 < 2 ms in every run: %s\n",
			held(ratios[len(ratios)-1] <= 1.5), held(fp99[len(fp99)-1] < 2))
		b.ReportMetric(ratios[len(ratios)-1], "max-p99-ratio")
		b.ReportMetric(fp99[len(fp99)-1], "max-freezer-p99-ms")
	}
}

func held(ok bool) string {
	if ok {
		return "holds"
	}
	return "does NOT hold"
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// unpauseSettled unpauses id and waits until the daemon's state says so
// (it applies containerd's events asynchronously), so that the next
// sample's inspect sees a running container.
func unpauseSettled(b *testing.B, cli *client.Client, id string) {
	ctx := context.Background()
	if err := cli.ContainerUnpause(ctx, id); err != nil {
		b.Fatal(err)
	}
	waitUnpaused(b, cli, id)
}

// waitUnpaused waits until the daemon's state says id is not paused.
func waitUnpaused(b *testing.B, cli *client.Client, id string) {
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := cli.ContainerInspect(ctx, id)
		if err == nil && info.State != nil && !info.State.Paused {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("container %s still paused 5s after unpause (%v)", id, err)
		}
		time.Sleep(time.Millisecond) // polling the daemon's state
	}
}

// BenchmarkDockerSnapshot50MB times container.snapshot of a container that
// wrote 50 MiB of random data: with the default parts (inspect, logs, top,
// diff, export) and with commit on top.
func BenchmarkDockerSnapshot50MB(b *testing.B) {
	cli := testutil.DockerClient(b)
	r := benchResponder(b, cli)
	id, _ := startContainer(b, cli, "bench-snap", nil)
	if code, out := execIn(b, cli, id, "dd", "if=/dev/urandom", "of=/tmp/blob", "bs=1048576", "count=50"); code != 0 {
		b.Fatalf("write 50 MiB in the container: %s", out)
	}
	ctx := context.Background()
	const samples = 5
	for b.Loop() {
		for _, commit := range []bool{false, true} {
			var took []time.Duration
			var size int64
			for range samples {
				start := time.Now()
				res, err := r.Run(ctx, actions.Request{Action: "container.snapshot", Container: id, Incident: "bench",
					Params: actions.Params{"commit": commit}})
				if err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
				size, _ = res.Detail["bytes"].(int64)
				if ref, ok := res.Detail["image"].(string); ok {
					if _, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true}); err != nil {
						b.Fatal(err)
					}
				}
				if err := os.RemoveAll(res.Detail["dir"].(string)); err != nil {
					b.Fatal(err)
				}
			}
			name := "snapshot (inspect, logs, top, diff, export)"
			metric := "snapshot-median-ms"
			if commit {
				name, metric = "snapshot + commit", "snapshot-commit-median-ms"
			}
			b.ReportMetric(ms(median(took)), metric)
			fmt.Fprintf(os.Stdout, "\n%s of a container with 50 MiB written, median of %d (min–max):\n"+
				"  %7.0f ms  (%.0f–%.0f), bundle %.1f MiB\n",
				name, samples, ms(median(took)), ms(slices.Min(took)), ms(slices.Max(took)), float64(size)/(1<<20))
		}
	}
}

// benchResponder logs as in production (one JSON line per action), to a
// discarding writer so the figures are not about the terminal.
func benchResponder(b *testing.B, cli *client.Client) *Responder {
	r, err := New(Config{DataDir: b.TempDir()}, Deps{Docker: cli, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
