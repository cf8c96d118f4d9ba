#!/usr/bin/env bash
# Run the shared side-by-side harness (../shared/bench, see its README) against our plain
# server: start it pinned to CPU 0 on a free port, hand its URL and PID to run.sh, stop it.
# With REDIS_URL set, the server runs in its multi-process mode on that Redis (sessions,
# events and presence shared), as the Node peer does with the same variable.
# EXTRA_SERVER_ARGS go to the server as they are (e.g. --no-fast-path).
#   [REDIS_URL=redis://127.0.0.1:PORT/0] bench/run-ours.sh [--name NAME] [load options...]
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench/run.sh}
PYTHON=${PYTHON:-.venv/bin/python}
log=$(mktemp)
redis_args=()
name=tornado-app
if [ -n "${REDIS_URL:-}" ]; then
  redis_args=(--redis-url "$REDIS_URL" --cookie-secret "$("$PYTHON" -c "import secrets; print(secrets.token_urlsafe(32))")")
  name=tornado-app-redis
fi
# The Node peer gets REDIS_URL from the environment too: keep it out of ours' way.
env -u REDIS_URL taskset -c "${SERVER_CPU:-0}" "$PYTHON" -m tornado_app --port 0 --log-level warning --max-sessions 100000 --max-connections-per-ip 1000000 --max-sockets-per-ip 1000000 --login-rate off --connect-rate off --chat-rate off ${EXTRA_SERVER_ARGS:-} "${redis_args[@]}" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "Serving on" "$log" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if ! grep -q "Serving on" "$log"; then  # as deploy/app_process.py says a failed start: the end of its log
  echo "run-ours.sh: the server did not start; the end of its log:" >&2
  tail -n 40 "$log" | sed 's/^/  /' >&2
  exit 1
fi
url=$(grep -o "http://[^ ]*" "$log" | head -1)
url=${url%/}
for arg in "$@"; do [ "$arg" = "--name" ] && name=""; done
env -u REDIS_URL bash "$HARNESS" --url "$url" --pid "$pid" ${name:+--name "$name"} "$@"
