#!/usr/bin/env bash
# Run the shared side-by-side harness (../shared/bench, see its README) against our plain
# server: start it pinned to CPU 0 on a free port, hand its URL and PID to run.sh, stop it.
#   bench/run-ours.sh [--name NAME] [load options...]
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench/run.sh}
PYTHON=${PYTHON:-.venv/bin/python}
log=$(mktemp)
taskset -c "${SERVER_CPU:-0}" "$PYTHON" -m tornado_app --port 0 --log-level warning --max-sessions 100000 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "Serving on" "$log" && break; sleep 0.1; done
url=$(grep -o "http://[^ ]*" "$log" | head -1)
url=${url%/}
name=tornado-app
for arg in "$@"; do [ "$arg" = "--name" ] && name=""; done
bash "$HARNESS" --url "$url" --pid "$pid" ${name:+--name "$name"} "$@"
