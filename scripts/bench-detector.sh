#!/usr/bin/env bash
# Prints the eBPF detector's figures: sustained events/s with no drop,
# exec->alert latency, overhead on an exec+open-heavy loop (detector off vs
# on, interleaved in one run), rule-engine cost and the RSS of
# `riposte detect`. Needs root and kernel BTF. Run it on a quiet machine:
# other load on the (2) cores skews the overhead figure.
#
# Each benchmark runs on its own: one that fails is reported and the others
# still run; the script exits non-zero at the end if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
failed=()

# step NAME COMMAND...: runs COMMAND, remembers NAME when it fails.
step() {
	local name=$1
	shift
	echo "== $name =="
	if ! "$@"; then
		echo "FAILED: $name"
		failed+=("$name")
	fi
}

kernel_bench() {
	local out
	out=$(RIPOSTE_BENCH=1 $GO test -tags bench -count=1 -timeout 10m -run "^$1\$" -v ./detector/ 2>&1)
	local rc=$?
	grep -E 'FIGURE|^--- FAIL|^FAIL|skipping|panic:' <<<"$out" | sed -E 's/^ *bench_test.go:[0-9]+: //'
	return $rc
}

rules_bench() {
	local out
	out=$($GO test -count=1 -run '^$' -bench 'BenchmarkRulesMatch' -benchmem ./detector/ 2>&1)
	local rc=$?
	grep -E '^Benchmark|^FAIL' <<<"$out"
	return $rc
}

rss() {
	local dir bin errlog pid
	dir=$(mktemp -d)
	bin=$dir/riposte
	errlog=$dir/err
	$GO build -o "$bin" ./cmd/riposte || { rm -rf "$dir"; return 1; }
	"$bin" detect --output json >/dev/null 2>"$errlog" &
	pid=$!
	for _ in $(seq 100); do grep -q 'detector running' "$errlog" && break; sleep 0.1; done
	if ! grep -q 'detector running' "$errlog"; then
		echo "riposte detect did not start:"
		cat "$errlog"
		kill "$pid" 2>/dev/null
		rm -rf "$dir"
		return 1
	fi
	sh -c 'i=0; while [ $i -lt 3000 ]; do cat /etc/hostname /etc/passwd >/dev/null; i=$((i+1)); done'
	grep -E '^(VmRSS|VmHWM):' "/proc/$pid/status" | tr -s ' \t' ' ' | sed 's/^/riposte detect /'
	kill "$pid"
	wait "$pid" 2>/dev/null
	tail -1 "$errlog" | sed 's/^/riposte detect /'
	rm -rf "$dir"
}

step "detector throughput (kernel, real events)" kernel_bench TestBenchThroughput
step "exec->alert latency" kernel_bench TestBenchLatency
step "overhead on an exec+open loop" kernel_bench TestBenchOverhead
step "detector RSS under load (in-process)" kernel_bench TestBenchRSS
step "rule engine (user space only)" rules_bench
step "RSS of riposte detect (default rules, under an exec+open loop)" rss

if [ ${#failed[@]} -gt 0 ]; then
	echo "bench-detector: ${#failed[@]} failed: ${failed[*]}"
	exit 1
fi
