#!/usr/bin/env bash
# Measure the Docker responder on the local daemon, one run:
#   - a bare ContainerPause API call vs container.pause through Responder.Run
#     (median of 20 each, interleaved, unpaused between samples);
#   - containment, call -> container frozen, 5 runs of 50 (BENCH_RUNS,
#     BENCH_PAUSE_SAMPLES), interleaved in turning order: a bare
#     ContainerPause, container.pause by the Docker path (inspect cache on),
#     and by the freezer path (the container's cgroup frozen by riposte
#     itself, the daemon told after); per run p50/p99 and the ratio, and
#     whether "Docker p99 <= 1.5x bare" and "freezer p99 < 2 ms" hold;
#   - container.snapshot of a container with 50 MiB written (median of 5),
#     without and with commit.
# Needs root and a running dockerd (scripts/ensure-dockerd.sh starts one).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--mod=mod}
export RIPOSTE_REQUIRE_INTEGRATION=1
go test -run '^$' -bench '^BenchmarkDocker' -benchtime 1x -count 1 ./responders/docker/
