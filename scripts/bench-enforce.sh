#!/usr/bin/env bash
# In-kernel enforcement latency: a rule marked `enforce: sigkill` on the
# marker program, its cgroup armed; for BENCH_RUNS (>= 5, default 50) execs,
# the time from the exec tracepoint (where the kernel program sends the
# signal) to the process's exit (the kernel's own stamp at
# sched_process_exit: the signal delivered and acted on) and to its parent's
# wait returning with the child killed. Needs root and kernel BTF.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-50}
[ "$runs" -ge 5 ] || { echo "BENCH_RUNS must be at least 5" >&2; exit 2; }
go test -count 1 -run '^$' -bench 'ExecToSignal' -benchtime "${runs}x" ./detector/enforce | awk -v runs="$runs" '
	/^BenchmarkExecToSignal/ {
		for (i = 3; i < NF; i += 2) v[$(i+1)] = $i
		printf "  exec -> exit (kernel), %d execs:        min %6.1f us  median %6.1f us  max %7.1f us\n", runs, v["ns-min-exit"]/1000, v["ns-median-exit"]/1000, v["ns-max-exit"]/1000
		printf "  exec -> parent sees SIGKILL, %d execs: min %6.1f us  median %6.1f us  max %7.1f us\n", runs, v["ns-min-parent"]/1000, v["ns-median-parent"]/1000, v["ns-max-parent"]/1000
		found = 1
	}
	/^(FAIL|---|panic)/ { print; bad = 1 }
	END { if (!found || bad) exit 1 }'
