package docker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
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

// BenchmarkDockerContainment compares, interleaved in one run, the three
// ways to freeze a running container, each timed from the call until the
// container's tasks are frozen (every one of them returns only then): a
// bare ContainerPause API call; container.pause through Responder.Run with
// the Docker path (inspect, guardrails, pause, wait for the daemon's state);
// and with the freezer path (inspect, guardrails, the container's cgroup
// frozen by this process). The freezer path's own share (cgroup write until
// the kernel reports frozen) is its Result's frozen_us. Reported: p50 and
// p99 of BENCH_PAUSE_SAMPLES (default 50) each, in ms.
//
//	go test -run '^$' -bench DockerContainment -benchtime 1x ./responders/docker
func BenchmarkDockerContainment(b *testing.B) {
	cli := testutil.DockerClient(b)
	cgroupctltest.Freezer(b)
	viaDocker := benchResponder(b, cli)
	viaFreezer, err := New(Config{DataDir: b.TempDir(), Pause: PauseFreezer}, Deps{Docker: cli, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	id, _ := startContainer(b, cli, "bench-contain", nil)
	ctx := context.Background()
	samples := 50
	if s := os.Getenv("BENCH_PAUSE_SAMPLES"); s != "" {
		if samples, err = strconv.Atoi(s); err != nil || samples < 1 {
			b.Fatalf("BENCH_PAUSE_SAMPLES=%q: want a positive number", s)
		}
	}
	for b.Loop() {
		var bare, docker, freezer, kernel []time.Duration
		for range samples {
			start := time.Now()
			if err := cli.ContainerPause(ctx, id); err != nil {
				b.Fatal(err)
			}
			bare = append(bare, time.Since(start))
			unpauseSettled(b, cli, id)

			start = time.Now()
			res, err := viaDocker.Run(ctx, actions.Request{Action: "container.pause", Container: id[:12], Actor: "bench"})
			if err != nil || res.Note != "paused" {
				b.Fatalf("pause through the Docker path: %v %q", err, res.Note)
			}
			docker = append(docker, time.Since(start))
			unpauseSettled(b, cli, id)

			start = time.Now()
			res, err = viaFreezer.Run(ctx, actions.Request{Action: "container.pause", Container: id[:12], Actor: "bench"})
			if err != nil || res.Note != "frozen (cgroup freezer)" {
				b.Fatalf("pause through the freezer path: %v %q", err, res.Note)
			}
			freezer = append(freezer, time.Since(start))
			us, _ := res.Detail["frozen_us"].(int64)
			kernel = append(kernel, time.Duration(us)*time.Microsecond)
			if res, err := viaFreezer.Run(ctx, actions.Request{Action: "container.unpause", Container: id[:12], Actor: "bench"}); err != nil || res.Note != "thawed (cgroup freezer)" {
				b.Fatalf("thaw: %v %q", err, res.Note)
			}
		}
		fmt.Fprintf(os.Stdout, "\ncontainment, call -> container frozen, %d samples each, interleaved in one run:\n", samples)
		for _, row := range []struct {
			name string
			d    []time.Duration
			unit string
		}{
			{"bare ContainerPause API call", bare, "bare"},
			{"container.pause, Docker path", docker, "docker"},
			{"container.pause, freezer path", freezer, "freezer"},
			{"  of which cgroup write -> frozen", kernel, "cgroup"},
		} {
			p50, p99 := latency.Quantile(row.d, 0.50), latency.Quantile(row.d, 0.99)
			b.ReportMetric(ms(p50), row.unit+"-p50-ms")
			b.ReportMetric(ms(p99), row.unit+"-p99-ms")
			fmt.Fprintf(os.Stdout, "  %-34s p50 %7.2f ms  p99 %7.2f ms  (min %.2f, max %.2f)\n", row.name, ms(p50), ms(p99), ms(slices.Min(row.d)), ms(slices.Max(row.d)))
		}
		fmt.Fprintf(os.Stdout, "  freezer path / bare call: p50 %.2fx, p99 %.2fx\n",
			ms(latency.Quantile(freezer, 0.5))/ms(latency.Quantile(bare, 0.5)), ms(latency.Quantile(freezer, 0.99))/ms(latency.Quantile(bare, 0.99)))
	}
}

// unpauseSettled unpauses id and waits until the daemon's state says so
// (it applies containerd's events asynchronously), so that the next
// sample's inspect sees a running container.
func unpauseSettled(b *testing.B, cli *client.Client, id string) {
	ctx := context.Background()
	if err := cli.ContainerUnpause(ctx, id); err != nil {
		b.Fatal(err)
	}
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
