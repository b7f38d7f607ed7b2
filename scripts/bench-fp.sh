#!/usr/bin/env bash
# The false-positive budget at full length: under the default rules for
# RIPOSTE_FP_DURATION (10 minutes), an ordinary busy container (web server
# answering on loopback, request log with rotation, temporary-file churn)
# with docker's exec health checks and docker inspect/logs/stats/top from
# the host; package-style downloads (a client installing archives from a
# mirror in another container into /usr/lib, /usr/share and /opt, the way a
# package manager does); and image builds (`docker build`, classic builder,
# FROM the local busybox test image, every 30 s). Prints what it saw and how
# many alerts it raised (the budget is 0). The test suite runs the same test
# for 20 seconds. Needs root, kernel BTF and Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
duration=${RIPOSTE_FP_DURATION:-10m}

echo "== false-positive budget ($duration of benign workload) =="
RIPOSTE_REQUIRE_INTEGRATION=1 RIPOSTE_FP_DURATION=$duration $GO test -count=1 -timeout 30m \
	-run '^TestFalsePositiveBudget$' -v ./detector/ 2>&1 |
	grep -E 'false-positive budget:|alerts for a benign|^--- (FAIL|PASS)|^FAIL' | sed -E 's/^ *fpbudget_test.go:[0-9]+: //'
