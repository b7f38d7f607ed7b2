#!/usr/bin/env bash
# Store write path: what one durably accepted alert costs (CPU, allocations,
# fsyncs, pages written), round 1's checkpointing in the writer ("round1")
# against the background checkpointer ("bg-ckpt"), in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench AcceptCost -benchtime "${BENCH_ALERTS:-40000}x" -count "${BENCH_COUNT:-3}" ./internal/store |
	grep -E '^(Benchmark|ok)'
