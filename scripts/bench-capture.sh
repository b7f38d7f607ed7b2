#!/usr/bin/env bash
# Capture responder figures (issue 7): events/s recorded without loss and
# the overhead a capture adds (tight exec/open loop in 1, 2, 4 parallel
# loops), file size per minute of a busy container (syscalls and pcap), and
# the ceiling of the recording path alone. Needs root, kernel BTF and
# dockerd, like the integration tests. RIPOSTE_BENCH_WINDOW sets how long
# each phase records (default 15s).
set -euo pipefail
cd "$(dirname "$0")/.."

go test -run '^$' -bench 'Writer' -benchtime 3s -count 1 ./responders/capture/capfile | grep -E '^(Benchmark|ok)'
go test -run '^$' -bench 'Capture' -benchtime 1x -count 1 -timeout 20m ./responders/capture | grep -E '^(Benchmark|ok|    bench_test)'
