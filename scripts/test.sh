#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds the Worker, then runs the native
# tests (in-memory platform) and the end-to-end tests (real clients against the Worker in
# workerd). `.ci/run` calls exactly this.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
echo "== clippy: no unwrap, expect, panic or unchecked indexing outside tests (src/lib.rs)"
cargo clippy --quiet --lib
cargo clippy --quiet --lib --target wasm32-unknown-unknown
echo "== build the Worker"
bash scripts/build-worker.sh
echo "== native and end-to-end tests"
# End-to-end tests start their own Workers and spawn clients: keep parallelism modest on 2 cores.
# --no-fail-fast: one failing test binary does not hide the results of the others.
cargo test --features e2e --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
