#!/usr/bin/env bash
# Prints the eBPF detector's figures: sustained events/s with no drop,
# exec->alert latency, overhead on an exec+open-heavy loop (detector off vs
# on, interleaved in one run), rule-engine cost and the RSS of
# `riposte detect`. Needs root and kernel BTF. Run it on a quiet machine:
# other load on the (2) cores skews the overhead figure.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}

echo "== detector benchmarks (kernel, real events) =="
RIPOSTE_BENCH=1 $GO test -tags bench -count=1 -timeout 10m -run '^TestBench' -v ./detector/ 2>&1 |
	grep -E 'FIGURE|^--- FAIL|^FAIL|skipping' | sed -E 's/^ *bench_test.go:[0-9]+: //'

echo "== rule engine (user space only) =="
$GO test -count=1 -run '^$' -bench 'BenchmarkRulesMatch' -benchmem ./detector/ | grep -E '^Benchmark'

echo "== RSS of riposte detect (default rules, under an exec+open loop) =="
bin=$(mktemp -d)/riposte
$GO build -o "$bin" ./cmd/riposte
errlog=$(mktemp)
"$bin" detect --output json >/dev/null 2>"$errlog" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$(dirname "$bin")" "$errlog"' EXIT
for _ in $(seq 100); do grep -q 'detector running' "$errlog" && break; sleep 0.1; done
grep -q 'detector running' "$errlog" || { echo "riposte detect did not start:"; cat "$errlog"; exit 1; }
sh -c 'i=0; while [ $i -lt 3000 ]; do cat /etc/hostname /etc/passwd >/dev/null; i=$((i+1)); done'
grep -E '^(VmRSS|VmHWM):' "/proc/$pid/status" | tr -s ' \t' ' ' | sed 's/^/riposte detect /'
kill "$pid"
wait "$pid" 2>/dev/null || true
