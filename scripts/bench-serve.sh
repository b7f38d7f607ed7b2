#!/usr/bin/env bash
# Intake benchmark: riposte serve --dry-run with the example playbooks on
# loopback, unique alerts from loadgen, durable (SQLite WAL, synchronous=FULL)
# before every 202. Prints alerts/s, p50/p99 accept latency and the server's
# RSS at the end. Runs on this machine's cores next to the load generator.
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${BENCH_SECONDS:-10}
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/riposte" ./cmd/riposte
go build -o "$tmp/loadgen" ./internal/benchtools/loadgen
export RIPOSTE_TOKEN=bench-token-0123456789abcdef
"$tmp/riposte" serve --dry-run --data "$tmp/data" --playbooks examples/playbooks --listen 127.0.0.1:18181 >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
	curl -fs http://127.0.0.1:18181/readyz >/dev/null 2>&1 && break
	sleep 0.1
done
for spec in "1 64" "20 16"; do
	set -- $spec
	echo -n "batch=$1: "
	"$tmp/loadgen" -addr 127.0.0.1:18181 -c "$2" -batch "$1" -d "${dur}s"
done
# Let the engine catch up, then report memory.
for _ in $(seq 1 600); do
	q=$(curl -fs http://127.0.0.1:18181/metrics | awk '/^riposte_queue_depth\{queue="inbox"\}/ {print $2}')
	[ "${q:-1}" = "0" ] && break
	sleep 0.5
done
echo "engine backlog after load: ${q:-?} alerts (queue drained: $([ "${q:-1}" = 0 ] && echo yes || echo no))"
grep -E 'VmRSS|VmHWM' /proc/$pid/status | tr -s ' \t' ' '
