#!/usr/bin/env bash
# make cluster-demo: cluster mode on one machine. Starts a throwaway
# PostgreSQL (Debian's postgresql package: initdb + postgres as the postgres
# user, unix socket only, in a temporary directory), two `riposte serve
# --store postgres://...` replicas (dry run, the example playbooks), sends one
# alert to both replicas (a retried webhook), and shows that it was stored
# once, formed one incident, ran its playbook once, and that the one journal
# verifies. Everything is removed at the end.
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

say "two replicas on one database"
for i in 1 2; do
	step "riposte serve --store '$url' --data $tmp/replica-$i --listen 127.0.0.1:1819$i --dry-run"
	"$bin" serve --store "$url" --data "$tmp/replica-$i" --listen "127.0.0.1:1819$i" --playbooks examples/playbooks \
		--dry-run --token "$token" >"$tmp/replica-$i.log" 2>&1 &
	pids+=($!)
done
for i in 1 2; do
	for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:1819$i/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done

say "one alert, sent to both replicas"
alert='{"uuid":"cluster-demo-1","time":"'"$(date -u +%Y-%m-%dT%H:%M:%SZ)"'","rule":"Terminal shell in container","priority":"Warning","source":"syscall","hostname":"node-1","output":"A shell was spawned in a container with an attached terminal","output_fields":{"container.id":"3f9a1c2b4d5e","container.name":"shop","proc.cmdline":"sh -i","user.name":"root"}}'
for i in 1 2; do
	step "curl -X POST http://127.0.0.1:1819$i/v1/alerts"
	curl -fsS -o /dev/null -w 'HTTP %{http_code}\n' -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
		--data "$alert" "http://127.0.0.1:1819$i/v1/alerts"
done
for _ in $(seq 1 100); do
	"$bin" journal show --store "$url" --alert cluster-demo-1 --type playbook.matched -o json | grep -q . && break
	sleep 0.1
done

say "the journal both replicas wrote"
step "riposte journal show --store '$url' --alert cluster-demo-1"
"$bin" journal show --store "$url" --alert cluster-demo-1
step "riposte journal verify --store '$url'"
"$bin" journal verify --store "$url"
