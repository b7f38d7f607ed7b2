#!/usr/bin/env bash
# Cluster mode, measured in one run on this machine (a throwaway PostgreSQL
# 15 with fsync on), each figure as median (min–max) over BENCH_REPS runs
# (default 3):
#  - durable intake through `riposte serve` processes: SQLite on one node
#    beside 1, 2 and 3 replicas on one PostgreSQL, 64 HTTP callers spread
#    over the replicas (alerts/s, p50/p99 of the 202, each replica's share);
#  - failover: a replica holding claimed alerts is SIGKILLed; time until the
#    other takes the first over and has finished them all (lease 2s);
#  - the store alone: Accept from 64 callers on 1, 2 and 3 handles;
#  - the journal's alert index with every entry (PostgreSQL schemas 1-2)
#    against without alert.received (schema 3): WAL and index bytes per accepted alert.
set -euo pipefail
cd "$(dirname "$0")/.."
reps="${BENCH_REPS:-3}"

# summary reads `go test -bench` output and prints one markdown row per
# benchmark: each metric as median (min–max) over its runs.
summary() {
	awk '
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
		if (!(name in seen)) { seen[name] = 1; order[++n] = name }
		for (i = 5; i < NF; i += 2) {
			u = $(i + 1)
			if (!((name, u) in cnt)) { units[name] = units[name] " " u }
			v[name, u, ++cnt[name, u]] = $i
		}
	}
	function fmt(x) { return (x >= 100 ? sprintf("%.0f", x) : sprintf("%.3g", x)) }
	END {
		for (k = 1; k <= n; k++) {
			name = order[k]; m = split(units[name], us, " ")
			if (k == 1 || units[name] != units[order[k - 1]]) {
				hdr = "| benchmark |"; sep = "| --- |"
				for (j = 1; j <= m; j++) { hdr = hdr " " us[j] " |"; sep = sep " --- |" }
				print ""; print hdr; print sep
			}
			row = "| " name " |"
			for (j = 1; j <= m; j++) {
				u = us[j]; c = cnt[name, u]
				for (a = 1; a <= c; a++) s[a] = v[name, u, a] + 0
				for (a = 2; a <= c; a++) { x = s[a]; b = a - 1; while (b > 0 && s[b] > x) { s[b + 1] = s[b]; b-- } s[b + 1] = x }
				med = (c % 2) ? s[(c + 1) / 2] : (s[c / 2] + s[c / 2 + 1]) / 2
				row = row " " fmt(med) (c > 1 ? " (" fmt(s[1]) "–" fmt(s[c]) ")" : "") " |"
			}
			print row
		}
	}'
}

# reps runs each in its own process (its own PostgreSQL), so that the
# variants alternate in time on a machine whose load drifts.
each() {
	for _ in $(seq "$reps"); do
		go test -run '^$' "$@" -count 1 | grep -E '^Benchmark'
	done
}

echo "-- serve processes: durable intake and failover ($reps runs, ${RIPOSTE_BENCH_ALERTS:-3000} alerts per intake run)"
each -bench 'ClusterIntake|ClusterFailover' -benchtime 1x ./cmd/riposte/assembly | summary

echo
echo "-- the store alone: Accept, 64 callers ($reps runs of ${BENCH_ALERTS:-5000} alerts)"
each -bench DurableIntake -benchtime "${BENCH_ALERTS:-5000}x" ./internal/store/postgres | summary

echo
echo "-- PostgreSQL journal alert index, with alert.received (schemas 1-2) and without (3) ($reps runs of ${BENCH_ALERTS:-5000} alerts)"
# Each variant in a process of its own, the first one alternating: in one
# process, whichever ran first measured faster.
for r in $(seq "$reps"); do
	if [ $((r % 2)) = 1 ]; then order="full-index partial-index"; else order="partial-index full-index"; fi
	for v in $order; do
		go test -run '^$' -bench "AlertIndex/$v" -benchtime "${BENCH_ALERTS:-5000}x" -count 1 ./internal/store/postgres | grep -E '^Benchmark'
	done
done | sort -s -k1,1 | summary
