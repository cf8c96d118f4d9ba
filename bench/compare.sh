#!/usr/bin/env bash
# Side-by-side runs of ../shared/bench in one sitting, interleaved for $ROUNDS rounds
# (default 3), then the table of medians: our server (with its fast path, then without it:
# --no-fast-path), node-seed and flask-socketio (one process each, sessions in memory),
# then, where redis-server is installed, our Redis mode and node-seed's (connect-redis + @socket.io/redis-adapter) on one Redis started for the
# sitting (on CPU 1, beside the load generator). Last, bench/cpu_per_op.py's table: server CPU
# per operation and each of ours against its peer, with the issue's targets.
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS_DIR=${HARNESS_DIR:-../shared/bench}
if [ ! -f "$HARNESS_DIR/run.sh" ]; then  # ../shared is beside the main checkout, not beside a git worktree
  echo "compare.sh: no harness at $HARNESS_DIR/run.sh: set HARNESS_DIR=/path/to/shared/bench" >&2
  exit 2
fi
HARNESS_DIR=$(cd "$HARNESS_DIR" && pwd)  # absolute: BEFORE's run-ours.sh runs from its own checkout
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

# Each server's main run, then a second one that only connects the fan-out's K clients and
# closes them (--fanout-msgs 0, after the connect phase as in the main run), into fanout-connects/:
# the difference in the fan-out phase's server CPU is the broadcasts alone (bench/cpu_per_op.py).
# Ours skips the harness's logout phase: the harness posts the token from the login page, and
# ours binds the logout's XSRF token to the session (a promise, kept), so it would only wait
# out 5 s for a 403; cpu_per_op.py's table says so.
OURS_PHASES=(--phases rss,connect_serial,connect,reject,rtt,fanout)
CONNECTS_ONLY=(--phases connect,fanout --fanout-msgs 0)
connects_only_dir=$RESULTS_DIR/fanout-connects
mkdir -p "$connects_only_dir"
# BEFORE=/path/to/another/checkout (a `git worktree add --detach` of an older commit, say)
# adds that checkout's server beside ours, as tornado-app-before (and tornado-app-redis-before):
# a change's before and after in the same sitting. WITHOUT="name ..." leaves servers out.
wanted() { case " ${WITHOUT:-} " in *" $1 "*) return 1 ;; esac; }
ours_in() {  # ours_in CHECKOUT NAME [run-ours.sh environment...]: the main run, then the connects-only run
  local checkout=$1 name=$2; shift 2
  wanted "$name" || return 0
  echo "== round $round: $name" >&2
  env "$@" HARNESS="$HARNESS_DIR/run.sh" "$checkout/bench/run-ours.sh" --name "$name" "${OURS_PHASES[@]}" >/dev/null
  env "$@" RESULTS_DIR="$connects_only_dir" HARNESS="$HARNESS_DIR/run.sh" "$checkout/bench/run-ours.sh" --name "$name" "${CONNECTS_ONLY[@]}" >/dev/null
}
ours() {  # ours NAME [run-ours.sh environment...]: this checkout's server, and BEFORE's if given
  local name=$1; shift
  wanted "$name" || return 0
  ours_in "$PWD" "$name" "$@"
  if [ -n "${BEFORE:-}" ]; then ours_in "$BEFORE" "$name-before" PYTHON="$PWD/.venv/bin/python" "$@"; fi
}
peer() {  # peer NAME PEER [--name NAME]: the same for a peer of ../shared/bench
  wanted "$1" || return 0
  echo "== round $round: $1" >&2
  shift
  bash "$HARNESS_DIR/run.sh" "$@" >/dev/null
  RESULTS_DIR="$connects_only_dir" bash "$HARNESS_DIR/run.sh" "$@" "${CONNECTS_ONLY[@]}" >/dev/null
}

for round in $(seq "${ROUNDS:-3}"); do
  ours tornado-app
  ours tornado-app-no-fast-path EXTRA_SERVER_ARGS=--no-fast-path
  peer node-seed node-seed
  peer flask-socketio flask-socketio
  if [ -n "$redis_url" ]; then
    ours tornado-app-redis REDIS_URL=$redis_url/0
    REDIS_URL=$redis_url peer node-redis node-seed --name node-redis
  fi
done
node "$HARNESS_DIR/summarize.js" "$RESULTS_DIR"/*.json
echo
.venv/bin/python bench/cpu_per_op.py "$RESULTS_DIR"
