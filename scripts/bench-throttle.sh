#!/usr/bin/env bash
# Notification throttling: the store's cost of folding a burst of one
# incident's notifications (BenchmarkApplyNotify, off vs throttled), and a
# burst of 1,000 alerts of one incident through a served riposte with
# Slack, PagerDuty and SMTP peers (TestE2EThrottleBurst: messages sent and
# time).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench ApplyNotify -benchtime 5000x -count 1 ./internal/store | grep -E '^(Benchmark|ok)'
go test -count=1 -run '^TestE2EThrottleBurst$' -v ./cmd/riposte/assembly 2>/dev/null | grep -E 'burst of|^(ok|FAIL|---)'
