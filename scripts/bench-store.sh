#!/usr/bin/env bash
# Store write path: what one durably accepted alert costs (CPU, allocations,
# fsyncs, pages written): round 1 ("round1"), the background checkpointer
# ("bg-ckpt") and the store as shipped ("now", alert index without
# alert.received), in the same run; then alerts settled at accept, on SQLite
# and on PostgreSQL; then the claim of an action, ordinary against urgent.
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
# The claim of an action right before it runs, one at a time, ordinary
# against urgent (store.Urgent) side by side, on PostgreSQL with fsync on
# (synchronous_commit off for the urgent one) and on SQLite (answered at
# COMMIT, before the fsync).
go test -run '^$' -bench UrgentClaim -benchtime "${BENCH_CLAIMS:-2000}x" -count "${BENCH_COUNT:-3}" ./internal/store/postgres |
	grep -E '^(Benchmark|ok)'
