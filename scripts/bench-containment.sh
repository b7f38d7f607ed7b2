#!/usr/bin/env bash
# Containment latency end to end: two riposte serve instances with the
# detector and a pause-on-shell playbook, one pausing by the Docker API
# (pause: docker), one by the cgroup freezer (pause: freezer); each protects
# the other's containers by name. BENCH_RUNS runs (default 5) of BENCH_SAMPLES
# (default 50): a shell exec'd in a fresh container, to that container
# paused (Docker path: the daemon's pause event) or frozen (freezer path: the
# kernel's answer, frozen_at_ns in the journal), interleaved with a bare
# Docker pause API call to its pause event. Prints per run p50/p99 of each
# and the ratio, min/median/max over the runs and whether the targets hold.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${BENCH_RUNS:-5}
samples=${BENCH_SAMPLES:-50}
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	if [ -n "${KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
go build -o "$tmp/riposte" ./cmd/riposte
go build -o "$tmp/containment" ./internal/benchtools/containment
docker image inspect riposte-test:1 >/dev/null 2>&1 || go test -count=1 -run TestEnsureTestImage ./internal/testutil >/dev/null
cat >"$tmp/playbooks.yaml" <<'YAML'
- playbook: bench-pause
  match:
    rules: ["Shell spawned in container", "Terminal shell in container"]
    # Only the benchmark's own containers: the daemon is shared, and a
    # shell in anyone else's container must not pause it.
    when: 'container.name startsWith "bench-dkr-" || container.name startsWith "bench-frz-"'
  actions: [{do: container.pause}]
YAML
export RIPOSTE_TOKEN=bench-token-0123456789abcdef
serve() { # name port pause protected-name-glob
	cat >"$tmp/$1.yaml" <<YAML
listen: 127.0.0.1:$2
playbooks: [$tmp/playbooks.yaml]
detector: {enabled: true, disable_resources: true}
docker: {pause: $3, protect: {names: ["bench-bare-*", "$4"]}}
YAML
	"$tmp/riposte" serve --config "$tmp/$1.yaml" --data "$tmp/$1" >"$tmp/$1.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
	echo "riposte ($1) not ready:" >&2; cat "$tmp/$1.log" >&2; exit 1
}
serve docker 18191 docker "bench-frz-*"
serve freezer 18192 freezer "bench-dkr-*"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$tmp/containment" -runs "$runs" -n "$samples" -docker-data "$tmp/docker" -freezer-data "$tmp/freezer"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
