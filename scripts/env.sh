# Sourced by the other scripts: where the toolchain lives and the pinned versions.
export PATH="$HOME/.cargo/bin:$PATH"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=0.2.130
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export ESBUILD_BIN="$ROOT/miniflare/node_modules/@esbuild/linux-x64/bin/esbuild"
export WRANGLER="$ROOT/miniflare/node_modules/.bin/wrangler"
export WRANGLER_SEND_METRICS=false
export CI_TELEMETRY_DISABLED=1
# The Python clients and peer servers of the PyPI tests (scripts/setup-python.sh).
export PYPI_TOOLS="${PYPI_TOOLS:-/opt/pypi-tools}"
