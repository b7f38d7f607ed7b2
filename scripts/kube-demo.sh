#!/usr/bin/env bash
# make kube-demo: riposte against a Kubernetes API server on this machine.
# Starts etcd, kube-apiserver (RBAC on) and kwok (a fake node whose pods go
# Running) from scripts/kube-bins.sh's cache, creates a "shop" namespace with
# two pods, serves riposte with a playbook that collects a pod's evidence,
# labels and isolates it, posts a Falco alert about one pod (and one about a
# pod in a protected namespace), and shows what happened: the pod's labels,
# the NetworkPolicy, the evidence bundle and the journal. Everything stays on
# loopback; everything is stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-bin/riposte}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step() { printf '\033[36m$ %s\033[0m\n' "$*"; }
for tool in curl kubectl openssl; do
	command -v "$tool" >/dev/null || { echo "kube-demo needs $tool" >&2; exit 1; }
done
kbin=$(./scripts/kube-bins.sh)
[ -x "$bin" ] || go build -o "$bin" ./cmd/riposte

work=$(mktemp -d)
pids=()
cleanup() {
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; wait "${pids[$i]}" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 1 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; "$@"; }

say "control plane: etcd, kube-apiserver, kwok (logs in $work)"
etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port); riposte_port=$(free_port)
"$kbin/etcd" --name demo --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
	--advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" \
	--initial-advertise-peer-urls "http://127.0.0.1:$peer_port" --initial-cluster "demo=http://127.0.0.1:$peer_port" \
	--log-level error >"$work/etcd.log" 2>&1 &
pids+=($!)
openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
admin=$(openssl rand -hex 16)
echo "$admin,admin,admin,\"system:masters\"" >"$work/tokens.csv"
"$kbin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
	--secure-port "$api_port" --cert-dir "$work/certs" --token-auth-file "$work/tokens.csv" --authorization-mode RBAC \
	--service-account-key-file "$work/sa.key" --service-account-signing-key-file "$work/sa.key" \
	--service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range 10.96.0.0/24 \
	--enable-priority-and-fairness=false --allow-privileged=true >"$work/apiserver.log" 2>&1 &
pids+=($!)
export KUBECONFIG="$work/kubeconfig"
wait_for test -s "$work/certs/apiserver.crt"
kubectl config set-cluster demo --server "https://127.0.0.1:$api_port" --certificate-authority "$work/certs/apiserver.crt" --embed-certs >/dev/null
kubectl config set-credentials admin --token "$admin" >/dev/null
kubectl config set-context demo --cluster demo --user admin >/dev/null
kubectl config use-context demo >/dev/null
wait_for kubectl get --raw /readyz
stage=$kbin/kwok-stage
"$kbin/kwok" --kubeconfig "$KUBECONFIG" --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
	--config "$stage/node/fast/node-initialize.yaml" --config "$stage/node/heartbeat/node-heartbeat.yaml" \
	--config "$stage/pod/fast/pod-ready.yaml" --config "$stage/pod/fast/pod-delete.yaml" >"$work/kwok.log" 2>&1 &
pids+=($!)

say "a node and the shop's pods (kwok plays the kubelet)"
kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata: {name: node-1, annotations: {kwok.x-k8s.io/node: fake}}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: infra, labels: {riposte.protect: "true"}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: default, namespace: infra}
---
apiVersion: v1
kind: Pod
metadata: {name: api-7d9f, namespace: shop, labels: {app: api}}
spec: {nodeName: node-1, containers: [{name: api, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: infra, labels: {app: db}}
spec: {nodeName: node-1, containers: [{name: db, image: busybox}]}
YAML
wait_for kubectl -n shop wait --for=condition=Ready pod/api-7d9f --timeout=1s
step "kubectl get pods -A -o wide"
kubectl get pods -A -o wide

say "riposte serve, with a playbook for shells in pods"
cat >"$work/playbooks.yaml" <<'YAML'
- playbook: contain-shell-in-pod
  match:
    rules: ["Terminal shell in container"]
    when: 'fields["k8s.pod.name"] != nil'
  actions:
    - do: pod.evidence
      with: {log_timeout: 2s}
    - do: pod.label
      with: {labels: ["suspect=true"]}
    - do: pod.isolate
      with: {allow_namespaces: [kube-system]}
YAML
cat >"$work/riposte.yaml" <<YAML
listen: 127.0.0.1:$riposte_port
data: $work/riposte-data
playbooks: [$work/playbooks.yaml]
auth: {token_env: RIPOSTE_DEMO_TOKEN}
notifiers: {fallback: log}
kubernetes:
  kubeconfig: $KUBECONFIG
YAML
export RIPOSTE_DEMO_TOKEN=$(openssl rand -hex 16)
"$bin" serve --config "$work/riposte.yaml" >"$work/riposte.log" 2>&1 &
pids+=($!)
wait_for curl -fs "http://127.0.0.1:$riposte_port/readyz"

post() { # namespace pod container-id
	step "POST /v1/alerts  (Falco: Terminal shell in container, k8s.ns.name=$1 k8s.pod.name=$2)"
	curl -fsS -H "Authorization: Bearer $RIPOSTE_DEMO_TOKEN" -H 'Content-Type: application/json' \
		"http://127.0.0.1:$riposte_port/v1/alerts" -d @- <<JSON
{"uuid":"demo-$2","time":"$(date -u +%Y-%m-%dT%H:%M:%S.000000000Z)","rule":"Terminal shell in container","priority":"Warning","source":"syscall",
 "hostname":"node-1","output":"A shell was spawned in a container with an attached terminal",
 "output_fields":{"container.id":"$3","k8s.ns.name":"$1","k8s.pod.name":"$2","proc.cmdline":"sh -i"}}
JSON
	echo
}
say "an attacker opens a shell in shop/api-7d9f, and one in the protected infra/db-0"
post shop api-7d9f 9c2e7b1a0f3d
post infra db-0 4b1d0e6f2a7c
has_policy() { [ -n "$(kubectl get networkpolicy -n shop -o name)" ]; }
wait_for has_policy
refused() { [ "$("$bin" journal show --data "$work/riposte-data" --type action.blocked_protected | grep -c db-0)" -ge 3 ]; }
wait_for refused

say "what riposte did"
step "kubectl get pods -A --show-labels"
kubectl get pods -A --show-labels
step "kubectl -n shop get networkpolicy -o yaml"
kubectl -n shop get networkpolicy -o yaml | sed -n '/^  spec:/,/^kind:/p'
step "ls the evidence bundle"
find "$work/riposte-data/evidence" -type f | sed "s|$work/||" | sort
step "riposte journal show"
"$bin" journal show --data "$work/riposte-data" | tail -n 14
step "riposte journal verify"
"$bin" journal verify --data "$work/riposte-data"
