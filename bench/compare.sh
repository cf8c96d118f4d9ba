#!/usr/bin/env bash
# Side-by-side runs of ../shared/bench: our server, node-seed and flask-socketio, interleaved
# for $ROUNDS rounds (default 3) in one sitting, then the table of medians.
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS_DIR=${HARNESS_DIR:-../shared/bench}
export RESULTS_DIR=${RESULTS_DIR:-$PWD/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS_DIR"
for round in $(seq "${ROUNDS:-3}"); do
  echo "== round $round: tornado-app" >&2
  HARNESS="$HARNESS_DIR/run.sh" bench/run-ours.sh >/dev/null
  echo "== round $round: node-seed" >&2
  bash "$HARNESS_DIR/run.sh" node-seed >/dev/null
  echo "== round $round: flask-socketio" >&2
  bash "$HARNESS_DIR/run.sh" flask-socketio >/dev/null
done
node "$HARNESS_DIR/summarize.js" "$RESULTS_DIR"/*.json
