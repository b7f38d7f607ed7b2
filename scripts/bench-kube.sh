#!/usr/bin/env bash
# Measure pod.isolate against a real kube-apiserver (scripts/kube-bins.sh
# builds it once), until a watch has seen the quarantine NetworkPolicy
# created and the pod labelled, beside the same two writes made with bare
# client-go calls, interleaved:
#   - from the responder's Run (60 samples);
#   - from a Falco alert posted to /v1/alerts, through the inbox, the
#     playbook and the engine (50 samples).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--mod=mod}
export RIPOSTE_REQUIRE_INTEGRATION=1
RIPOSTE_KUBE_BIN=${RIPOSTE_KUBE_BIN:-$(./scripts/kube-bins.sh)}
export RIPOSTE_KUBE_BIN
go test -run '^$' -bench '^BenchmarkKubeIsolate' -benchtime 1x -count 1 ./responders/kubernetes/ | grep -Ev '^time='
go test -run '^$' -bench '^BenchmarkKubeAlertToIsolation' -benchtime 1x -count 1 ./cmd/riposte/assembly/ | grep -Ev '^time='
