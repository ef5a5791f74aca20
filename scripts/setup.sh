#!/usr/bin/env bash
# Makes this machine ready to build, run and test the Worker. Idempotent: every step checks
# first and skips what is already there. Everything comes from crates.io, the npm registry
# and Debian's packages.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

step() { printf '\n== %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# clippy runs in the test command (it enforces the no-panic rules of src/lib.rs).
if ! cargo clippy --version >/dev/null 2>&1; then
  step "rust component clippy"
  rustup component add clippy
fi

# It prints its version alone ("0.8.7"); older releases printed "worker-build 0.8.7".
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  step "worker-build $WORKER_BUILD_VERSION"
  cargo install worker-build --version "$WORKER_BUILD_VERSION"
fi

# wasm-bindgen-cli must match the wasm-bindgen crate pinned in Cargo.toml exactly.
if [ "$("$WASM_BINDGEN_BIN" --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  step "wasm-bindgen-cli $WASM_BINDGEN_VERSION (takes a few minutes)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# Container clients for the OCI end-to-end tests, from Debian's packages; oras and crane are
# built from Debian's archive by install-oci-tools.sh (no other download).
missing=()
for tool in skopeo podman buildah python3 setsid; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  step "Debian packages: skopeo podman buildah"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends skopeo podman buildah python3 util-linux
fi
# The Docker engine (tests/e2e_docker.rs starts a private dockerd; the docker CLI may be a newer
# one already on PATH) and CNCF distribution (a real OCI upstream for pull-through tests).
missing=()
for pkg in docker.io docker-registry; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ ! -x /opt/oci-tools/bin/oras ] || [ ! -x /opt/oci-tools/bin/crane ]; then
  step "oras and crane"
  bash scripts/install-oci-tools.sh /opt/oci-tools
fi

bash scripts/setup-python.sh

# npm packages: wrangler/miniflare and the JS clients the tests drive. Reinstall when the
# lockfile changed since the last install.
stamp=miniflare/node_modules/.lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s miniflare/package-lock.json "$stamp"; then
  step "npm packages (wrangler, miniflare, pnpm, yarn)"
  (cd miniflare && npm ci --no-audit --no-fund --loglevel=error)
  cp miniflare/package-lock.json "$stamp"
fi
