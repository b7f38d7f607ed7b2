#!/usr/bin/env bash
# make run: the main job on a fresh machine (as root). Starts dockerd when no
# daemon answers, then runs riposte serve with the example configuration and
# the embedded SQLite store under ./riposte-data.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-bin/riposte}
config=${2:-examples/riposte.yaml}
data=${3:-riposte-data}

if [ "$(id -u)" -ne 0 ]; then
	echo "make run needs root: the eBPF detector loads kernel programs and the responders use the Docker socket" >&2
	exit 1
fi
./scripts/install-deps.sh
./scripts/ensure-dockerd.sh
mkdir -p "$data"
exec "$bin" serve --config "$config" --data "$data"
