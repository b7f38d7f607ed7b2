#!/usr/bin/env bash
# make bench: every performance figure riposte reports, measured in one run on
# this machine. Figures print to stdout; the README's performance section
# quotes them.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== playbook matching (go test -bench ./playbooks)"
go test -run '^$' -bench 'Select|Match' -benchmem -count 1 ./playbooks | grep -E '^(Benchmark|ok)'

# One failing script is reported and the others still run.
failed=()
for extra in scripts/bench-*.sh; do
	[ -x "$extra" ] || continue
	echo
	echo "== $(basename "$extra" .sh)"
	"$extra" || failed+=("$(basename "$extra" .sh)")
done
if [ ${#failed[@]} -gt 0 ]; then
	echo
	echo "bench: failed: ${failed[*]}"
	exit 1
fi
