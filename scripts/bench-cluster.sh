#!/usr/bin/env bash
# Cluster mode's store: durable intake (alerts/s, p50, p99 of the 202) on
# PostgreSQL with 1, 2 and 3 store handles on one database, beside SQLite on
# one node, in the same run (a throwaway PostgreSQL 15 with fsync on).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench DurableIntake -benchtime "${BENCH_ALERTS:-5000}x" -count "${BENCH_COUNT:-1}" ./internal/store/postgres |
	grep -E '^(Benchmark|ok)'
