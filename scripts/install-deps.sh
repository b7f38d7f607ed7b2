#!/usr/bin/env bash
# Install, from Debian's packages, what riposte and its tests need and the
# machine lacks: the Docker engine, busybox-static (test and demo images),
# tshark (capture tests), iproute2, jq and curl (stream recipe tests),
# sqlite3 and python3 (the journal's auditor recipes), postgresql (the
# PostgreSQL store's tests start a throwaway server from its binaries), tmux
# (riposte top's end-to-end test), wrk (make bench's HTTP load generator).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(docker.io busybox-static tshark iproute2 jq curl sqlite3 python3 postgresql tmux wrk)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "missing ${missing[*]} and no apt-get to install them" >&2
	exit 1
fi
echo "installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
