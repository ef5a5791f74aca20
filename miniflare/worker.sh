#!/usr/bin/env bash
# Test harness: runs the built Worker (miniflare/worker.mjs: wrangler's startWorker without
# file watching or inspector) for one test process.
#   worker.sh PORT STATE_DIR WATCH_PID [--local-protocol https] [--var NAME:VALUE ...]
# Serves on 127.0.0.1:PORT with local R2/KV/Durable Objects under STATE_DIR, and stops (with
# workerd) as soon as WATCH_PID exits, so a crashed test run leaves nothing behind.
# Start it in its own process group (setsid): the group is killed on exit.
set -u
PORT=$1 STATE=$2 WATCH=$3
shift 3
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
node "$ROOT/miniflare/worker.mjs" --port "$PORT" --persist "$STATE" --log-level warn "$@" &
W=$!
trap 'kill -- -$$ 2>/dev/null' EXIT
while kill -0 "$WATCH" 2>/dev/null && kill -0 "$W" 2>/dev/null; do sleep 1; done
# The test process is gone and nobody will read its Worker's data again: stop the group (but
# not this shell), then remove the data (tests keep their Worker in a static, whose temporary
# directory is never dropped; e2e_oci_large alone leaves ~1.4 GB). A Worker that failed to
# start while its test still runs keeps its log for the test to show.
if ! kill -0 "$WATCH" 2>/dev/null; then
  members=$(pgrep -g $$)
  trap '' TERM
  kill -TERM -- -$$ 2>/dev/null
  for p in $members; do
    [ "$p" = $$ ] && continue
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  done
  [ -n "${EDGEREGISTRY_KEEP_STATE:-}" ] || rm -rf -- "$STATE"
fi
