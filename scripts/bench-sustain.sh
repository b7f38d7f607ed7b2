#!/usr/bin/env bash
# Processing against intake: how fast the engine works off a full inbox
# (BenchmarkProcess: playbooks shaped like the examples, dry run, 16 containers), then
# intake held at a steady rate for 60 s while the engine runs
# (TestSustainedIntake): the rate processed meanwhile, the inbox backlog, and
# whether it stayed bounded. Rates: BENCH_SUSTAIN_RATES (alerts/s).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench Process -benchtime "${BENCH_ALERTS:-20000}x" -count "${BENCH_COUNT:-3}" ./internal/engine |
	grep -E '^(Benchmark|ok)'
for rate in ${BENCH_SUSTAIN_RATES:-1000 3000 5000}; do
	echo -n "intake $rate/s for ${BENCH_SUSTAIN_SECONDS:-60}s: "
	if out=$(RIPOSTE_SUSTAIN_SECONDS=${BENCH_SUSTAIN_SECONDS:-60} RIPOSTE_SUSTAIN_RATE=$rate \
		go test -count=1 -run '^TestSustainedIntake$' -v -timeout 10m ./internal/engine 2>&1); then
		echo "bounded; $(grep -o 'sustained intake:.*' <<<"$out")"
	else
		echo "NOT bounded; $(grep -E 'sustained intake:|throughput_test.go' <<<"$out" | tr -s ' ' | tr '\n' ' ')"
	fi
done
