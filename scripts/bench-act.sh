#!/usr/bin/env bash
# riposte act container.pause end to end vs a bare Docker pause API call,
# median of 20 each, interleaved, one run. Needs root and dockerd.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/riposte" ./cmd/riposte
go build -o "$tmp/actbench" ./internal/benchtools/actbench
docker image inspect riposte-test:1 >/dev/null 2>&1 || go test -count=1 -run TestEnsureTestImage ./internal/testutil >/dev/null
"$tmp/actbench" -riposte "$tmp/riposte" -data "$tmp/data" -n 20
