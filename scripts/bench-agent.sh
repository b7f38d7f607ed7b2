#!/usr/bin/env bash
# Cluster mode's node agents: forwarding latency (an alert handed to the
# agent until a replica answered 202: spool fsync, POST, PostgreSQL commit)
# and an action's round trip through an agent (alert posted to a replica
# until the pause its node's agent ran is journaled; ms-action is the
# action's own part: request queued to outcome seen). One replica and one
# agent in one process on a throwaway PostgreSQL 15; the agent's pause
# answers at once, so Docker's time is not in it.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench 'BenchmarkAgent' -benchtime "${BENCH_ALERTS:-300}x" -count "${BENCH_COUNT:-1}" ./cmd/riposte/assembly |
	grep -E '^(Benchmark|ok)'
