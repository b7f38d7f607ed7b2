#!/usr/bin/env bash
# Durable intake side by side with an earlier commit, in one run:
# `riposte serve --dry-run` with the example playbooks (the engine processes
# what is accepted meanwhile, on the same store), unique alerts from wrk
# (scripts/wrk/alerts.lua, one thread, as Falco Talon's comparison was
# measured): 1 alert per request at 16 and at 64 connections, and NDJSON
# batches of 20 at 64 connections. Each round starts a fresh server of each
# build in turn, so both see the same machine load. Per load and build:
# accepted alerts/s, processed alerts/s (accepted less the inbox backlog the
# load left, over its duration: what the engine kept up with), p99, the
# server's CPU per accepted alert (user + system, from /proc: work left in
# the backlog is not in it), its peak RSS, and the backlog. Prints every round, then min / median /
# max per build and the ratio of the medians.
#
#   BENCH_INTAKE_BASE   commit to compare with (default 633a3c4: the store
#                       and engine before alerts were settled at accept)
#   BENCH_ROUNDS        rounds (default 5); BENCH_SECONDS per load (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench-intake: needs wrk (scripts/install-deps.sh installs it)" >&2; exit 1; }
base=${BENCH_INTAKE_BASE:-633a3c4}
rounds=${BENCH_ROUNDS:-5}
dur=${BENCH_SECONDS:-10}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir "$tmp/base"
git archive "$base" | tar -x -C "$tmp/base"
(cd "$tmp/base" && go build -o "$tmp/riposte-base" ./cmd/riposte)
go build -o "$tmp/riposte-head" ./cmd/riposte
export RIPOSTE_TOKEN=bench-token-0123456789abcdef
addr=127.0.0.1:18183
rev=$(git rev-parse --short "$base")
loads=("16 1" "64 1" "64 20")

backlog() {
	curl -fs "http://$addr/metrics" | awk '/^riposte_queue_depth\{queue="inbox"\}/ {print $2}'
}
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

for round in $(seq 1 "$rounds"); do
	for side in base head; do
		for load in "${loads[@]}"; do
			read -r c batch <<<"$load"
			rm -rf "$tmp/data"
			"$tmp/riposte-$side" serve --dry-run --data "$tmp/data" --playbooks examples/playbooks --listen "$addr" >"$tmp/serve.log" 2>&1 &
			pid=$!
			for _ in $(seq 1 100); do
				curl -fs "http://$addr/readyz" >/dev/null 2>&1 && break
				sleep 0.1
			done
			t0=$(cputicks "$pid")
			out=$(RUN="$side$round$c$batch" BATCH=$batch wrk -t1 -c"$c" -d"${dur}s" --latency -s scripts/wrk/alerts.lua "http://$addr/")
			t1=$(cputicks "$pid")
			rss=$(awk '/VmHWM/ {printf "%d", $2 / 1024}' "/proc/$pid/status")
			left=$(backlog)
			kill "$pid"
			wait "$pid" 2>/dev/null || true
			pid=
			rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
			p99=$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; print v}' <<<"$out")
			bad=$(awk '/Non-2xx/ {print $4}' <<<"$out")
			ticks=$(getconf CLK_TCK)
			awk -v s="$side" -v r="$round" -v c="$c" -v b="$batch" -v rps="$rps" -v p99="$p99" -v t=$((t1 - t0)) -v hz="$ticks" -v d="$dur" -v rss="$rss" -v left="$left" -v bad="${bad:-0}" \
				'BEGIN {a = rps * b; printf "round %d %s c=%d batch=%d alerts_per_s=%.0f processed_per_s=%.0f p99_ms=%.2f cpu_us_per_alert=%.0f peak_rss_mb=%d backlog=%s non_2xx=%s\n", r, s, c, b, a, a - left / d, p99, t / hz * 1e6 / (a * d), rss, left, bad}' |
				tee -a "$tmp/results"
		done
	done
done

stat() { # field -> "min / median / max"
	sed -E "s/.* $1=([0-9.]+).*/\1/" | sort -n | awk '{a[NR] = $1} END {printf "%s / %s / %s", a[1], a[int((NR + 1) / 2)], a[NR]}'
}
median() { sed -E "s/.* $1=([0-9.]+).*/\1/" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "summary (base = $rev, head = $(git rev-parse --short HEAD)): min / median / max over $rounds rounds"
for load in "${loads[@]}"; do
	read -r c batch <<<"$load"
	for side in base head; do
		sel=$(grep " $side c=$c batch=$batch " "$tmp/results")
		echo "c=$c batch=$batch $side: alerts/s $(stat alerts_per_s <<<"$sel"); processed/s $(stat processed_per_s <<<"$sel"); p99 ms $(stat p99_ms <<<"$sel"); CPU µs/alert $(stat cpu_us_per_alert <<<"$sel"); peak RSS MB $(stat peak_rss_mb <<<"$sel"); backlog $(stat backlog <<<"$sel")"
	done
	b=$(grep " base c=$c batch=$batch " "$tmp/results" | median alerts_per_s)
	h=$(grep " head c=$c batch=$batch " "$tmp/results" | median alerts_per_s)
	bc=$(grep " base c=$c batch=$batch " "$tmp/results" | median cpu_us_per_alert)
	hc=$(grep " head c=$c batch=$batch " "$tmp/results" | median cpu_us_per_alert)
	bp=$(grep " base c=$c batch=$batch " "$tmp/results" | median processed_per_s)
	hp=$(grep " head c=$c batch=$batch " "$tmp/results" | median processed_per_s)
	echo "c=$c batch=$batch head/base median: accepted alerts/s $(awk -v b="$b" -v h="$h" 'BEGIN {printf "%.2f", h / b}'), processed alerts/s $(awk -v b="$bp" -v h="$hp" 'BEGIN {printf "%.2f", h / b}'), CPU per accepted alert $(awk -v b="$bc" -v h="$hc" 'BEGIN {printf "%.2f", h / b}')"
done
