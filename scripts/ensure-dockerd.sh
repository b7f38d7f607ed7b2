#!/usr/bin/env bash
# Start dockerd in the background unless a daemon already answers, then wait
# until it does (60 s at most).
set -euo pipefail
if docker info >/dev/null 2>&1; then
	exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
	echo "dockerd not found: apt-get install -y docker.io" >&2
	exit 1
fi
log=${DOCKERD_LOG:-/tmp/riposte-dockerd.log}
echo "starting dockerd (log: $log)"
nohup dockerd >"$log" 2>&1 &
for _ in $(seq 1 60); do
	if docker info >/dev/null 2>&1; then
		exit 0
	fi
	sleep 1
done
echo "dockerd did not answer within 60 s; see $log" >&2
tail -n 20 "$log" >&2 || true
exit 1
