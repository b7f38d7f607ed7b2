#!/usr/bin/env bash
# Containment latency: riposte serve with the detector and a pause-on-shell
# playbook; for >= 50 runs, the exec of a shell in a fresh container to that
# container paused, side by side with a bare Docker pause API call measured
# to the same observable (the daemon's pause event). Also prints the
# engine's share from the journal (alert received -> pause recorded).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-50}
tmp=$(mktemp -d)
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap "kill \$pid 2>/dev/null; echo kept $tmp" EXIT
go build -o "$tmp/riposte" ./cmd/riposte
go build -o "$tmp/containment" ./internal/benchtools/containment
docker image inspect riposte-test:1 >/dev/null 2>&1 || go test -count=1 -run TestEnsureTestImage ./internal/testutil >/dev/null
cat >"$tmp/playbooks.yaml" <<'YAML'
- playbook: bench-pause
  match: {rules: ["Shell spawned in container", "Terminal shell in container"]}
  actions: [{do: container.pause}]
YAML
cat >"$tmp/riposte.yaml" <<YAML
listen: 127.0.0.1:18191
playbooks: [$tmp/playbooks.yaml]
detector: {enabled: true, disable_resources: true}
docker: {protect: {names: ["bench-bare-*"]}}
YAML
export RIPOSTE_TOKEN=bench-token-0123456789abcdef
"$tmp/riposte" serve --config "$tmp/riposte.yaml" --data "$tmp/data" >"$tmp/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:18191/readyz >/dev/null 2>&1 && break; sleep 0.1; done
"$tmp/containment" -n "$runs" -data "$tmp/data"
"$tmp/riposte" journal show --data "$tmp/data" --output json 2>/dev/null | jq -s -r '
	(map(select(.type == "alert.received")) | map({key: .alert_id, value: .time}) | from_entries) as $recv
	| [ .[] | select(.type == "action.succeeded" and .action == "container.pause") | select($recv[.alert_id])
	    | ((.time | sub("\\.[0-9]+Z$"; "Z") | fromdate) + (.time | capture("\\.(?<f>[0-9]+)Z$").f | ("0." + .) | tonumber))
	      - (($recv[.alert_id] | sub("\\.[0-9]+Z$"; "Z") | fromdate) + ($recv[.alert_id] | capture("\\.(?<f>[0-9]+)Z$").f | ("0." + .) | tonumber)) ]
	| sort | if length == 0 then "  journal: no pause recorded" else
	  "  engine share (journal: alert stored -> pause recorded, \(length) pauses): p50 \((.[length/2|floor]*1000*10|round/10)) ms  p99 \((.[(length*0.99|ceil)-1]*1000*10|round/10)) ms" end'
