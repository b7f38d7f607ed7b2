#!/usr/bin/env bash
# Store write path: what one durably accepted alert costs (CPU, allocations,
# fsyncs, pages written): round 1 ("round1"), the background checkpointer
# ("bg-ckpt") and the store as shipped ("now", alert index without
# alert.received), in the same run; then alerts settled at accept, on SQLite
# and on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench AcceptCost -benchtime "${BENCH_ALERTS:-40000}x" -count "${BENCH_COUNT:-3}" ./internal/store |
	grep -E '^(Benchmark|ok)'
# Alerts settled at accept (two dry-run plans each, 64 containers): the
# journal's alert index with the settled entries ("indexed", schema 4)
# against without them ("now", schema 5).
go test -run '^$' -bench AcceptSettled -benchtime "${BENCH_ALERTS:-40000}x" -count "${BENCH_COUNT:-3}" ./internal/store |
	grep -E '^(Benchmark|ok)'
# The same on PostgreSQL: one transaction per accept against the two it
# took before, and the alert index with and without the settled entries.
go test -run '^$' -bench SettledIntake -benchtime "${BENCH_PG_ALERTS:-5000}x" -count "${BENCH_COUNT:-3}" ./internal/store/postgres |
	grep -E '^(Benchmark|ok)'
