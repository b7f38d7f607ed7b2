#!/usr/bin/env bash
# Store write path: what one durably accepted alert costs (CPU, allocations,
# fsyncs, pages written): round 1 ("round1"), the background checkpointer
# ("bg-ckpt") and the store as shipped ("now", alert index without
# alert.received), in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench AcceptCost -benchtime "${BENCH_ALERTS:-40000}x" -count "${BENCH_COUNT:-3}" ./internal/store |
	grep -E '^(Benchmark|ok)'
