#!/usr/bin/env bash
# Side-by-side runs of ../shared/bench in one sitting, interleaved for $ROUNDS rounds
# (default 3), then the table of medians: our server (with its fast path, then without it:
# --no-fast-path), node-seed and flask-socketio (one process each, sessions in memory),
# then, where redis-server is installed, our Redis mode and node-seed's (connect-redis + @socket.io/redis-adapter) on one Redis started for the
# sitting (on CPU 1, beside the load generator).
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS_DIR=${HARNESS_DIR:-../shared/bench}
export RESULTS_DIR=${RESULTS_DIR:-$PWD/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS_DIR"

redis_url=""
if redis=$(command -v redis-server || command -v /usr/sbin/redis-server || command -v /usr/bin/redis-server); then
  redis_dir=$(mktemp -d)
  redis_port=$(.venv/bin/python -c 'from deploy.services import free_port; print(free_port())')
  taskset -c "${LOAD_CPU:-1}" "$redis" --port "$redis_port" --bind 127.0.0.1 --dir "$redis_dir" --save '' --appendonly no >/dev/null &
  redis_pid=$!
  trap 'kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$redis_dir"' EXIT
  redis_url=redis://127.0.0.1:$redis_port
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$redis_port) 2>/dev/null && break; sleep 0.1; done
else
  echo "== redis-server is not installed: the Redis rounds are left out (sudo make system-deps)" >&2
fi

for round in $(seq "${ROUNDS:-3}"); do
  echo "== round $round: tornado-app" >&2
  HARNESS="$HARNESS_DIR/run.sh" bench/run-ours.sh >/dev/null
  echo "== round $round: tornado-app with --no-fast-path" >&2
  EXTRA_SERVER_ARGS=--no-fast-path HARNESS="$HARNESS_DIR/run.sh" bench/run-ours.sh --name tornado-app-no-fast-path >/dev/null
  echo "== round $round: node-seed" >&2
  bash "$HARNESS_DIR/run.sh" node-seed >/dev/null
  echo "== round $round: flask-socketio" >&2
  bash "$HARNESS_DIR/run.sh" flask-socketio >/dev/null
  if [ -n "$redis_url" ]; then
    echo "== round $round: tornado-app-redis" >&2
    REDIS_URL=$redis_url/0 HARNESS="$HARNESS_DIR/run.sh" bench/run-ours.sh >/dev/null
    echo "== round $round: node-redis" >&2
    REDIS_URL=$redis_url bash "$HARNESS_DIR/run.sh" node-seed --name node-redis >/dev/null
  fi
done
node "$HARNESS_DIR/summarize.js" "$RESULTS_DIR"/*.json
