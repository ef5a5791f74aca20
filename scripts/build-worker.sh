#!/usr/bin/env bash
# Builds the Worker (Rust → wasm → build/worker/shim.mjs) with the local toolchain only.
# wrangler runs this as its [build] command; EDGEREGISTRY_SKIP_BUILD=1 skips it when the
# test harness has built already.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
if [ "${EDGEREGISTRY_SKIP_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then
  exit 0
fi
exec worker-build --release
