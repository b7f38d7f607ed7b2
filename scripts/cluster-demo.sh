#!/usr/bin/env bash
# make cluster-demo: cluster mode on one machine. Starts a throwaway
# PostgreSQL (Debian's postgresql package: initdb + postgres as the postgres
# user, unix socket only, in a temporary directory), two `riposte serve
# --store postgres://...` replicas that route container actions to node
# agents, and two `riposte agent`s (node-1, node-2; dry run: they answer what
# they would do to the container). It sends one alert of node-1 to both
# replicas (a retried webhook): stored once, one incident, its playbook run
# once, its pause run by node-1's agent. Then node-2's agent forwards an
# alert of its own, whose pause comes back to it. The one journal verifies.
# Everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
pgbin=${RIPOSTE_PG_BIN:-/usr/lib/postgresql/15/bin}
bin=${BIN:-bin/riposte}
token=cluster-demo-token-0123456789

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step() { printf '\033[36m$ %s\033[0m\n' "$*"; }

for tool in "$pgbin/initdb" "$pgbin/postgres" "$pgbin/pg_isready"; do
	[ -x "$tool" ] || { echo "cluster-demo needs $tool (scripts/install-deps.sh installs postgresql)" >&2; exit 1; }
done
[ -x "$bin" ] || go build -o "$bin" ./cmd/riposte
tmp=$(mktemp -d /tmp/riposte-cluster-XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

as_pg=()
if [ "$(id -u)" = 0 ]; then
	chown postgres: "$tmp"
	as_pg=(runuser -u postgres --)
fi
say "PostgreSQL 15 in $tmp (unix socket only)"
"${as_pg[@]}" "$pgbin/initdb" -D "$tmp/pg" -U postgres --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
"${as_pg[@]}" "$pgbin/postgres" -D "$tmp/pg" -k "$tmp" -c listen_addresses= >"$tmp/pg.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do "$pgbin/pg_isready" -q -h "$tmp" && break; sleep 0.1; done
url="postgres:///postgres?host=$tmp&user=postgres&sslmode=disable"

say "two replicas on one database, routing container actions to node agents"
# One agent token per node: each is bound to its node.
export RIPOSTE_AGENT_TOKEN_1=cluster-demo-agent-token-node-1 RIPOSTE_AGENT_TOKEN_2=cluster-demo-agent-token-node-2
cat >"$tmp/riposte.yaml" <<'YAML'
cluster: {route_container_actions: true, agent_timeout: 10s}
auth:
  tokens:
    - {name: agent-node-1, scope: agent, env: RIPOSTE_AGENT_TOKEN_1, node: node-1}
    - {name: agent-node-2, scope: agent, env: RIPOSTE_AGENT_TOKEN_2, node: node-2}
notifiers: {fallback: log}
YAML
cat >"$tmp/playbooks.yaml" <<'YAML'
- playbook: freeze-shell
  match: {rules: ["Terminal shell in container"]}
  actions:
    - do: journal.note
      with: {text: "shell in {{ .Field \"container.name\" }} on {{ .Hostname }}"}
    - do: container.pause
YAML
cat "$tmp/riposte.yaml"
for i in 1 2; do
	step "riposte serve --config riposte.yaml --store '$url' --data $tmp/replica-$i --listen 127.0.0.1:1819$i"
	"$bin" serve --config "$tmp/riposte.yaml" --store "$url" --data "$tmp/replica-$i" --listen "127.0.0.1:1819$i" \
		--playbooks "$tmp/playbooks.yaml" --token "$token" >"$tmp/replica-$i.log" 2>&1 &
	pids+=($!)
done
for i in 1 2; do
	for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:1819$i/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done

say "two node agents (dry run: they say what they would do)"
alert2='{"uuid":"cluster-demo-2","time":"'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"'","rule":"Terminal shell in container","priority":"Warning","source":"syscall","output":"A shell was spawned in a container with an attached terminal","output_fields":{"container.id":"9b8c7d6e5f4a","container.name":"cart","proc.cmdline":"sh -i","user.name":"root"}}'
echo "$alert2" >"$tmp/node-2.alerts"
for n in 1 2; do
	input=()
	[ "$n" = 2 ] && input=(--input "$tmp/node-2.alerts")
	step "riposte agent --node node-$n --replica http://127.0.0.1:18191 --replica http://127.0.0.1:18192 --detector=false --dry-run ${input[*]}"
	tokvar="RIPOSTE_AGENT_TOKEN_$n"
	RIPOSTE_AGENT_TOKEN="${!tokvar}" "$bin" agent --node "node-$n" --replica http://127.0.0.1:18191 --replica http://127.0.0.1:18192 --data "$tmp/agent-$n" \
		--detector=false --dry-run "${input[@]}" >"$tmp/agent-$n.log" 2>&1 &
	pids+=($!)
done

say "one alert, sent to both replicas"
alert='{"uuid":"cluster-demo-1","time":"'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"'","rule":"Terminal shell in container","priority":"Warning","source":"syscall","hostname":"node-1","output":"A shell was spawned in a container with an attached terminal","output_fields":{"container.id":"3f9a1c2b4d5e","container.name":"shop","proc.cmdline":"sh -i","user.name":"root"}}'
for i in 1 2; do
	step "curl -X POST http://127.0.0.1:1819$i/v1/alerts"
	curl -fsS -o /dev/null -w 'HTTP %{http_code}\n' -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
		--data "$alert" "http://127.0.0.1:1819$i/v1/alerts"
done
wait_done() {
	for _ in $(seq 1 300); do
		"$bin" journal show --store "$url" --alert "$1" --type action.succeeded -o json | grep -q container.pause && return
		sleep 0.1
	done
}
wait_done cluster-demo-1
wait_done cluster-demo-2

say "the journal both replicas wrote: node-1's pause ran by node-1's agent"
step "riposte journal show --store '$url' --alert cluster-demo-1"
"$bin" journal show --store "$url" --alert cluster-demo-1
say "node-2's alert, forwarded by its agent; its pause ran by node-2's agent"
id2=$("$bin" journal show --store "$url" --type alert.received -o json | grep -o '"alert_id":"[^"]*"' | tail -1 | cut -d'"' -f4)
step "riposte journal show --store '$url' --alert $id2"
"$bin" journal show --store "$url" --alert "$id2"
step "grep 'node action ran' agent-*.log"
grep -h "node action ran" "$tmp"/agent-*.log | sed 's/^/  /'
step "riposte journal verify --store '$url'"
"$bin" journal verify --store "$url"
