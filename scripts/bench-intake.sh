#!/usr/bin/env bash
# Durable intake side by side with an earlier commit, in one run:
# `riposte serve --dry-run` with the example playbooks (the engine processes
# what is accepted meanwhile, on the same store), unique single-alert
# requests from loadgen at 16 and at 64 connections. Each round starts a
# fresh server of each build in turn, so both see the same machine load.
# Prints every round, then min / median / max of alerts/s and p99 per build
# and the ratio of the medians, and the inbox backlog the load left.
#
#   BENCH_INTAKE_BASE   commit to compare with (default 3036220: the store and
#                       engine before a dry-run playbook became one journal entry)
#   BENCH_ROUNDS        rounds (default 5); BENCH_SECONDS per load (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
base=${BENCH_INTAKE_BASE:-3036220}
rounds=${BENCH_ROUNDS:-5}
dur=${BENCH_SECONDS:-10}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir "$tmp/base"
git archive "$base" | tar -x -C "$tmp/base"
(cd "$tmp/base" && go build -o "$tmp/riposte-base" ./cmd/riposte)
go build -o "$tmp/riposte-head" ./cmd/riposte
go build -o "$tmp/loadgen" ./internal/benchtools/loadgen
export RIPOSTE_TOKEN=bench-token-0123456789abcdef
addr=127.0.0.1:18183
rev=$(git rev-parse --short "$base")

backlog() {
	curl -fs "http://$addr/metrics" | awk '/^riposte_queue_depth\{queue="inbox"\}/ {print $2}'
}

for round in $(seq 1 "$rounds"); do
	for side in base head; do
		rm -rf "$tmp/data"
		"$tmp/riposte-$side" serve --dry-run --data "$tmp/data" --playbooks examples/playbooks --listen "$addr" >"$tmp/serve.log" 2>&1 &
		pid=$!
		for _ in $(seq 1 100); do
			curl -fs "http://$addr/readyz" >/dev/null 2>&1 && break
			sleep 0.1
		done
		for c in 16 64; do
			out=$("$tmp/loadgen" -addr "$addr" -c "$c" -batch 1 -d "${dur}s")
			echo "round $round $side c=$c $out backlog=$(backlog)" | tee -a "$tmp/results"
		done
		kill "$pid"
		wait "$pid" 2>/dev/null || true
		pid=
	done
done

echo "summary (base = $rev): min / median / max over $rounds rounds"
for c in 16 64; do
	for side in base head; do
		grep " $side c=$c " "$tmp/results" | sed -E 's/.*alerts_per_s=([0-9.]+).*p99_ms=([0-9.]+).*/\1 \2/' >"$tmp/$side-$c"
		rate=$(cut -d' ' -f1 "$tmp/$side-$c" | sort -n | awk '{a[NR]=$1} END {printf "%.0f / %.0f / %.0f", a[1], a[int((NR+1)/2)], a[NR]}')
		p99=$(cut -d' ' -f2 "$tmp/$side-$c" | sort -n | awk '{a[NR]=$1} END {printf "%.1f / %.1f / %.1f", a[1], a[int((NR+1)/2)], a[NR]}')
		echo "c=$c $side: alerts/s $rate; p99 ms $p99"
	done
	b=$(cut -d' ' -f1 "$tmp/base-$c" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	h=$(cut -d' ' -f1 "$tmp/head-$c" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	echo "c=$c head/base median alerts/s: $(awk -v b="$b" -v h="$h" 'BEGIN {printf "%.2f", h/b}')"
done
