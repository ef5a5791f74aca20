#!/usr/bin/env bash
# Cargo benchmark: edgeregistry (the Worker in workerd, local R2/KV/Durable Objects) side by
# side with crates-io-proxy (a caching sparse-index and download proxy for crates.io, built
# from crates.io by this script with `cargo install`), both mirroring the same local origin on
# 127.0.0.1, in one run:
#   1. origin: a static sparse-registry tree (config.json, index files cut down to the pinned
#      versions, .crate files) of the registry crates of this project's Cargo.lock, built once
#      into bench/work/cargo-origin/ (crates fetched by cargo from crates.io, index files from
#      index.crates.io) and kept between runs; served by `python3 -m http.server`;
#   2. mirrors, BENCH_ROUNDS rounds with both fresh: the Worker (CARGO_UPSTREAMS = the origin)
#      and crates-io-proxy (--index-url and --upstream-url = the origin). A cold
#      `cargo fetch --locked` of the lockfile through each, then BENCH_FETCHES warm ones; every
#      fetch with a fresh CARGO_HOME, crates.io replaced by the mirror (source replacement);
#   3. one index file (serde's) fetched BENCH_REQUESTS times at concurrency 16 from each warm
#      mirror (bench/lib/http-bench.mjs), and as many GETs of a constant of the same size from a
#      plain-JS Worker in the same runtime (bench/lib/r2sim: no wasm, no storage), the most any
#      Worker can answer here;
#   4. the Worker's wasm memory high-water mark (GET /-/admin/stats) after each round;
#   5. prints raw figures and ratios. No timing assertions: exits 0 when every step worked.
# Why crates-io-proxy: it builds here with `cargo install` in a few minutes, needs no other
# service, and takes any upstream index and download URL (--index-url, --upstream-url), so it
# fronts the same local origin; kellnr was not tried.
# All servers are stopped on exit, even on failure. Everything lives under bench/work/cargo/.
#
# Usage: bash bench/cargo.sh
#   BENCH_ROUNDS=1 BENCH_FETCHES=2 BENCH_REQUESTS=2000
#   BENCH_SKIP_BUILD=1  use build/worker as it is (no setup.sh, no rebuild)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"

ROUNDS=${BENCH_ROUNDS:-1}
FETCHES=${BENCH_FETCHES:-2}
REQUESTS=${BENCH_REQUESTS:-2000}
WRANGLER_DEV=0
TTL_SECONDS=600
WORK="$ROOT/bench/work/cargo"
ORIGIN_TREE="$ROOT/bench/work/cargo-origin"
TOOLS="$ROOT/bench/work/cargo-tools"
PEER_BIN="$TOOLS/bin/crates-io-proxy"
LIB="$ROOT/bench/lib"
LOGS="$WORK/logs"
INDEX_FILE=se/rd/serde
ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
JWT_SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')

BENCH_NAME=bench/cargo.sh
source "$ROOT/bench/lib/common.sh"
source "$ROOT/bench/lib/servers.sh"
# cargo reads only what this script gives it: its own CARGO_HOME per run, never ~/.cargo's.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(CARGO_|RUSTC_WRAPPER$|RUSTFLAGS$)' || true)
export CARGO_TERM_PROGRESS_WHEN=never CARGO_TERM_COLOR=never

# A project with this repository's dependencies and Cargo.lock and an empty library (only the
# package, feature and dependency tables of the manifest: no test or bench targets).
PROJECT="$WORK/project"
mkdir -p "$PROJECT/src"; : > "$PROJECT/src/lib.rs"
awk '/^\[/{t=$0; gsub(/^\[+|\]+$/, "", t); keep=(t=="package" || t=="features" || t ~ /dependencies$/)} keep' Cargo.toml > "$PROJECT/Cargo.toml"
cp Cargo.lock "$PROJECT/Cargo.lock"
NCRATES=$(grep -c '^source = "registry+' Cargo.lock)

# ---------------------------------------------------------------------------------------------
say "1. build, peer, origin"
ensure_worker_built
if [ ! -x "$PEER_BIN" ]; then
  echo "building crates-io-proxy from crates.io (cargo install, once; kept in $TOOLS)"
  CARGO_HOME="$TOOLS/home" CARGO_TARGET_DIR="$TOOLS/target" cargo install crates-io-proxy --locked --root "$TOOLS" \
    > "$LOGS/peer-install.log" 2>&1 || die "cargo install crates-io-proxy failed (see logs/peer-install.log)"
  rm -rf "$TOOLS/target"
fi
if [ ! -f "$ORIGIN_TREE/.complete" ] || ! cmp -s Cargo.lock "$ORIGIN_TREE/.complete"; then
  echo "fetching the $NCRATES crates of Cargo.lock from crates.io once (kept in $ORIGIN_TREE)"
  rm -rf "$ORIGIN_TREE" "$WORK/download-home"
  (cd "$PROJECT" && CARGO_HOME="$WORK/download-home" cargo fetch --locked) > "$LOGS/origin-download.log" 2>&1 \
    || die "cargo fetch from crates.io failed (see logs/origin-download.log)"
  python3 "$LIB/cargo-origin.py" Cargo.lock "$(echo "$WORK"/download-home/registry/cache/*/)" "$ORIGIN_TREE" \
    || die "building the origin tree failed"
  rm -rf "$WORK/download-home"
  cp Cargo.lock "$ORIGIN_TREE/.complete"
fi
start_origin() { # a static server of the tree; its config.json names its own download URL
  local port; port=$(new_port)
  printf '{"dl":"http://127.0.0.1:%s/api/v1/crates"}\n' "$port" > "$ORIGIN_TREE/config.json"
  setsid python3 -m http.server --bind 127.0.0.1 --directory "$ORIGIN_TREE" "$port" </dev/null >"$LOGS/origin.log" 2>&1 &
  PG=$!; PGIDS+=("$PG"); URL="http://127.0.0.1:$port"
  wait_http "$URL/config.json" 60 "$PG" "the origin"
}
start_peer() { # NAME ORIGIN_URL: crates-io-proxy with a fresh cache in front of the origin
  local dir="$WORK/$1" port; port=$(new_port)
  rm -rf "$dir"; mkdir -p "$dir"
  setsid "$PEER_BIN" --listen "127.0.0.1:$port" --index-url "$2/" --upstream-url "$2/" \
    --proxy-url "http://127.0.0.1:$port/" --cache-dir "$dir" --cache-ttl "$TTL_SECONDS" </dev/null >"$LOGS/$1.log" 2>&1 &
  PG=$!; PGIDS+=("$PG"); URL="http://127.0.0.1:$port"
  wait_http "$URL/index/config.json" 60 "$PG" "crates-io-proxy ($1)"
}
start_origin; ORIGIN=$URL
echo "origin on $ORIGIN: $NCRATES crates, $(du -sh "$ORIGIN_TREE" | cut -f1)"

fetch() { # NAME SPARSE_INDEX_URL: `cargo fetch --locked` with a fresh CARGO_HOME; prints ms
  local name=$1 index=$2 home="$WORK/home-$1"
  rm -rf "$home"; mkdir -p "$home"
  printf '[source.crates-io]\nreplace-with = "mirror"\n\n[source.mirror]\nregistry = "sparse+%s"\n' "$index" > "$home/config.toml"
  echo "+ [$name] cargo fetch ($index)" >> "$LOGS/fetch.log"
  local t0; t0=$(now_ms)
  (cd "$PROJECT" && CARGO_HOME="$home" timeout 600 cargo fetch --locked) >> "$LOGS/fetch.log" 2>&1 \
    || die "[$name] cargo fetch failed (see logs/fetch.log)"
  local ms=$(( $(now_ms) - t0 ))
  local got; got=$(find "$home/registry/cache" -name '*.crate' | wc -l)
  [ "$got" = "$NCRATES" ] || die "[$name] fetched $got crates, expected $NCRATES"
  rm -rf "$home"
  echo "$ms"
}
warm=$(fetch warmup "$ORIGIN/")
echo "warm-up straight from the origin: $warm ms"

# ---------------------------------------------------------------------------------------------
say "2. cargo fetch of $NCRATES crates through each mirror: $ROUNDS rounds of 1 cold + $FETCHES warm"
UP="{\"upstreams\":[{\"id\":\"origin\",\"url\":\"$ORIGIN\"}],\"cache\":{\"defaultTtlSeconds\":$TTL_SECONDS}}"
declare -A COLD WARM RPS P50
for k in worker peer floor; do COLD[$k]=""; WARM[$k]=""; RPS[$k]=""; P50[$k]=""; done
MEM=()
for r in $(seq 1 "$ROUNDS"); do
  start_worker "round$r" "CARGO_UPSTREAMS:$UP"; W_URL=$URL; W_PG=$PG
  start_peer "peer$r" "$ORIGIN"; P_URL=$URL; P_PG=$PG
  order=(worker peer); [ $((r % 2)) = 0 ] && order=(peer worker)
  for i in $(seq 0 "$FETCHES"); do
    for m in "${order[@]}"; do
      if [ "$m" = worker ]; then ms=$(fetch "worker-$r-$i" "$W_URL/cargo/"); else ms=$(fetch "peer-$r-$i" "$P_URL/index/"); fi
      if [ "$i" = 0 ]; then COLD[$m]+="$ms "; kind=cold; else WARM[$m]+="$ms "; kind="warm $i"; fi
      echo "round $r [$m] $kind: $ms ms"
    done
  done

  # 3. One index file from each warm mirror, and the runtime's floor.
  size=$(curl -fsS --max-time 30 "$W_URL/cargo/$INDEX_FILE" | wc -c)
  start_plain_worker "floor$r"; F_URL=$URL; F_PG=$PG
  for m in worker peer floor; do
    case $m in
      worker) url="$W_URL/cargo/$INDEX_FILE" ;;
      peer) url="$P_URL/index/$INDEX_FILE" ;;
      floor) url="$F_URL/const?n=$size" ;;
    esac
    if [ "$m" != floor ]; then
      lines=$(curl -fsS --max-time 30 "$url" | grep -c '"vers"') || die "[$m] GET $url failed"
      [ "$lines" -ge 1 ] || die "[$m] $url has no index lines"
    fi
    res=$(node "$LIB/http-bench.mjs" --requests "$REQUESTS" --concurrency 16 --warmup 200 "$url") || die "[$m] http-bench failed"
    RPS[$m]+="$(json_field rps <<<"$res") "; P50[$m]+="$(json_field p50_ms <<<"$res") "
    echo "round $r [$m] $url: $res"
  done
  MEM+=("$(stats "$W_URL")")
  stop_server "$W_PG"; stop_server "$P_PG"; stop_server "$F_PG"
done

# ---------------------------------------------------------------------------------------------
say "3. results"
echo "machine: $(nproc) cores; $(cargo --version); crates-io-proxy $("$PEER_BIN" --version 2>/dev/null | awk '{print $NF}')"
echo "Worker in workerd via wrangler startWorker (miniflare/worker.mjs), local R2/KV/DO; origin, mirrors and cargo share the machine"
echo "ratio: >1 means the Worker is better (other/worker for times, worker/other for rates)"
echo
head_row "mirror of a local static sparse registry" crates-io-proxy
row "cargo fetch x$NCRATES, cold mirror, median of $ROUNDS (s)" "$(median_s "${COLD[worker]}")" "$(median_s "${COLD[peer]}")" lower
row "cargo fetch x$NCRATES, warm mirror, median of $((ROUNDS * FETCHES)) (s)" "$(median_s "${WARM[worker]}")" "$(median_s "${WARM[peer]}")" lower
row "index file $INDEX_FILE, c=16, median (req/s)" "$(median "${RPS[worker]}")" "$(median "${RPS[peer]}")" higher
row "  median latency (ms)" "$(median "${P50[worker]}")" "$(median "${P50[peer]}")" lower
row "  runtime floor: JS Worker, constant (req/s)" "$(median "${RPS[floor]}")" "$(median "${RPS[peer]}")" higher
echo "  (floor: the same number of bytes from a JavaScript Worker in the same workerd, no wasm and no"
echo "   storage: no Worker can answer faster here; the Worker's index file is $(awk -v a="$(median "${RPS[worker]}")" -v b="$(median "${RPS[floor]}")" 'BEGIN{printf "%.2f", a/b}') of it)"
echo
echo "Worker wasm memory high-water mark (GET /-/admin/stats) after each round: ${MEM[*]} bytes" \
  "($(for b in "${MEM[@]}"; do printf '%s ' "$(mib "$b")"; done)MiB)"
echo
echo "Raw (fetches in ms, each with a fresh CARGO_HOME): worker: cold ${COLD[worker]}| warm ${WARM[worker]}; crates-io-proxy: cold ${COLD[peer]}| warm ${WARM[peer]}"
