#!/usr/bin/env bash
# Not part of make bench (scripts/bench.sh runs scripts/bench-*.sh): it needs arguments.
# Side by side: one Go benchmark of this tree against the same benchmark on
# an earlier commit, in one run, alternating the two binaries so that both
# see the same machine load. The earlier tree gets this tree's _test.go
# files for the package when it lacks them, so a new benchmark measures old
# code too; BENCH_VS_COPY names more files (paths from the top) to copy over
# the earlier tree's, when the measuring code itself changed.
#
#   scripts/compare-bench.sh BASE PACKAGE BENCH [go test -test.* flags...]
#   scripts/compare-bench.sh main ./internal/engine Process -test.benchtime=20000x
#   RIPOSTE_SUSTAIN_RATE=800 scripts/compare-bench.sh main ./internal/engine TestSustainedIntake
#
# A BENCH starting with Test runs that test instead and prints its log lines.
# BENCH_ROUNDS (default 5) rounds; prints each round's lines, base first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { echo "usage: $0 BASE PACKAGE BENCH [flags...]" >&2; exit 2; }
base=$1 pkg=$2 bench=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/base"
git archive "$base" | tar -x -C "$tmp/base"
for f in "$pkg"/*_test.go; do
	[ -e "$tmp/base/$f" ] || cp "$f" "$tmp/base/$f"
done
for f in ${BENCH_VS_COPY:-}; do
	cp "$f" "$tmp/base/$f"
done
(cd "$tmp/base" && go test -c -o "$tmp/base.test" "$pkg")
go test -c -o "$tmp/head.test" "$pkg"
rev=$(git rev-parse --short "$base")
for round in $(seq 1 "${BENCH_ROUNDS:-5}"); do
	for side in base head; do
		name=$side
		[ "$side" = base ] && name="base($rev)"
		case $bench in
		Test*) (cd "$pkg" && "$tmp/$side.test" -test.run "$bench" -test.v "$@" || true) |
			grep -E '^\s+\S+_test\.go:[0-9]+:' | sed "s/^ */round $round $name: /" ;;
		*) (cd "$pkg" && "$tmp/$side.test" -test.run '^$' -test.bench "$bench" "$@") |
			grep -E '^Benchmark' | sed "s/^/round $round $name: /" ;;
		esac
	done
done
