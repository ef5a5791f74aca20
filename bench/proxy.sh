#!/usr/bin/env bash
# Pull-through cache benchmark: edgeregistry (the Worker in workerd, local R2/KV/Durable
# Objects) as a caching mirror, side by side with the usual self-hosted mirrors, all on
# 127.0.0.1, in one run:
#   1. origins: verdaccio 6.8.0 with no uplinks holding BENCH_PACKAGES (<=100) small
#      inter-dependent packages (bench/lib/fixture.mjs, published over HTTP) and one package
#      whose full packument is ~BENCH_PACKUMENT_MB MB as served (thousands of versions, written
#      straight into verdaccio's storage); Debian's docker-registry (CNCF distribution 2.8)
#      holding a one-layer image of BENCH_OCI_SIZE_MB MiB (deterministic pseudo-random bytes,
#      generated while they are pushed, never on disk or all in memory);
#   2. npm, BENCH_ROUNDS rounds, each with both mirrors started fresh (empty caches): the
#      Worker (NPM_UPSTREAMS = the origin) and verdaccio with an uplink to the origin. A cold
#      `npm install` of a project depending on the whole tree through each, then BENCH_INSTALLS
#      warm installs through each (mirror caches filled). Every install: empty npm cache, no
#      node_modules, no lockfile. Both mirrors keep metadata for 10 minutes, so warm installs
#      are cache hits;
#   3. the big packument (Accept: application/json, the full document) through a fresh Worker
#      and a fresh verdaccio mirror, cold then warm, with the Worker's wasm memory high-water
#      mark (GET /-/admin/stats) before and after; then BENCH_CONCURRENT other ~10 MB
#      packuments fetched cold at the same time through one fresh Worker, and its memory (the
#      isolate's 128 MB are shared by concurrent requests);
#   4. OCI, BENCH_OCI_ROUNDS rounds, each with both mirrors fresh: the Worker (OCI_UPSTREAMS =
#      the origin; pulls with a user's token) and docker-registry in proxy mode. A cold pull
#      (manifest by tag, config blob, then the layer GET streamed to nowhere) through each,
#      then BENCH_PULLS warm pulls each, and the Worker's wasm memory after them; then one
#      untimed pull through each with the layer hashed and checked (BENCH_VERIFY=0 skips it);
#   5. prints a table of raw figures and ratios. No timing assertions: exits 0 when every step
#      worked.
# Cold and warm measurements alternate between the mirrors (and which goes first alternates
# between rounds), so drift on the machine hits both alike. All servers are stopped on exit,
# even on failure. Everything lives under bench/work/proxy/ (about 3x the image size on disk
# while the OCI rounds run).
#
# The Worker runs through wrangler's own startWorker API with wrangler.toml, as `wrangler dev`
# runs it, but with wrangler's devtools inspector off (miniflare/worker.mjs says why: under
# `wrangler dev` every chunk of every upstream body becomes a devtools event that is posted to
# the wrangler process, which then dominates cold pulls and runs out of heap on a 1 GiB blob).
# BENCH_WRANGLER_DEV=1 runs the plain `wrangler dev` command instead, to see that.
#
# Usage: bash bench/proxy.sh
#   BENCH_PACKAGES=100 BENCH_ROUNDS=3 BENCH_INSTALLS=2 BENCH_PACKUMENT_MB=30 BENCH_CONCURRENT=6
#   BENCH_OCI_SIZE_MB=1024 BENCH_OCI_ROUNDS=2 BENCH_PULLS=3 BENCH_VERIFY=1
#   BENCH_SKIP_BUILD=1  use build/worker as it is (no setup.sh, no rebuild)
#   BENCH_PARTS="npm packument oci"  which parts to run (e.g. BENCH_PARTS=oci for the pulls only)
#   BENCH_WRANGLER_DEV=1  run the Worker with `wrangler dev` (inspector on)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"

PACKAGES=${BENCH_PACKAGES:-100}
ROUNDS=${BENCH_ROUNDS:-3}
INSTALLS=${BENCH_INSTALLS:-2}
PACKUMENT_MB=${BENCH_PACKUMENT_MB:-30}
CONCURRENT=${BENCH_CONCURRENT:-6}
OCI_SIZE_MB=${BENCH_OCI_SIZE_MB:-1024}
OCI_ROUNDS=${BENCH_OCI_ROUNDS:-2}
PULLS=${BENCH_PULLS:-3}
VERIFY=${BENCH_VERIFY:-1}
WRANGLER_DEV=${BENCH_WRANGLER_DEV:-0}
PARTS=" ${BENCH_PARTS:-npm packument oci} "
TTL_SECONDS=600
WORK="$ROOT/bench/work/proxy"
LIB="$ROOT/bench/lib"
LOGS="$WORK/logs"
VERDACCIO_BIN="$ROOT/miniflare/node_modules/verdaccio/bin/verdaccio"
REGISTRY_BIN=/usr/bin/docker-registry
BIG=bench-big
OCI_REPO=bench/big
OCI_TAG=v1
BENCH_USER=bench
BENCH_PASSWORD="bench-password-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
JWT_SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')

BENCH_NAME=bench/proxy.sh
source "$ROOT/bench/lib/common.sh"
source "$ROOT/bench/lib/servers.sh"
part() { [[ "$PARTS" == *" $1 "* ]]; }

# ---------------------------------------------------------------------------------------------
say "1. build, origins and fixtures"
ensure_worker_built
[ -f "$VERDACCIO_BIN" ] || die "verdaccio is not installed in miniflare/node_modules: run scripts/setup.sh"
if [ ! -x "$REGISTRY_BIN" ]; then
  echo "installing docker-registry (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
fi
[ "$PACKAGES" -ge 2 ] && [ "$PACKAGES" -le 100 ] || die "BENCH_PACKAGES must be 2..100"

if part npm || part packument; then
start_verdaccio origin-verdaccio; ORIGIN_NPM=$URL
echo "origin verdaccio on $ORIGIN_NPM"
OTOKEN=$(curl -fsS --max-time 30 -X PUT "$ORIGIN_NPM/-/user/org.couchdb.user:$BENCH_USER" -H 'Content-Type: application/json' \
  -d "{\"name\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" | json_field token) || die "verdaccio: creating the user failed"
node "$LIB/fixture.mjs" "$WORK/fixture" "$PACKAGES"
node "$LIB/npm-publish.mjs" --registry "$ORIGIN_NPM" --token "$OTOKEN" "$WORK/fixture/packages"/* \
  || die "publishing the fixture to the origin failed"
# verdaccio serves documents pretty-printed, about 4/3 of the stored size.
BIGINFO=$(node "$LIB/big-packument.mjs" "$WORK/origin-verdaccio/storage" "$BIG" "$(awk -v m="$PACKUMENT_MB" 'BEGIN{print m*3/4}')" "$ORIGIN_NPM")
for i in $(seq 1 "$CONCURRENT"); do
  node "$LIB/big-packument.mjs" "$WORK/origin-verdaccio/storage" "$BIG-$i" 7.5 "$ORIGIN_NPM" >/dev/null
done
BIG_SERVED=$(curl -fsS --max-time 120 -o /dev/null -w '%{size_download}' -H 'Accept: application/json' "$ORIGIN_NPM/$BIG") \
  || die "the origin does not serve $BIG"
echo "big package: $BIGINFO; the origin serves its full packument as $BIG_SERVED bytes"
fi

if part oci; then
start_registry origin-registry; ORIGIN_OCI=$URL
echo "origin docker-registry on $ORIGIN_OCI; pushing a $OCI_SIZE_MB MiB one-layer image"
OCI_INFO=$(node "$LIB/oci-origin.mjs" --base "$ORIGIN_OCI" --repo "$OCI_REPO" --tag "$OCI_TAG" --size $((OCI_SIZE_MB * 1024 * 1024))) \
  || die "pushing the image to the origin failed"
echo "image: $OCI_INFO"
fi

# One untimed install from the origin, so npm's own first-run costs hit neither mirror.
part npm && echo "npm client warm-up (from the origin): $(npm_install warmup "$ORIGIN_NPM/" "${ORIGIN_NPM##*:}") ms"

# ---------------------------------------------------------------------------------------------
# The Worker's npm upstream (parts 2 and 3).
if part npm || part packument; then
NPM_UP="{\"upstreams\":[{\"id\":\"origin\",\"url\":\"$ORIGIN_NPM\"}],\"cache\":{\"defaultTtlSeconds\":$TTL_SECONDS}}"
fi
if part npm; then
say "2. npm install x$PACKAGES through each mirror: $ROUNDS rounds of 1 cold + $INSTALLS warm"
declare -A COLD WARM COLD_CPU
MEM_NPM=()
for m in worker verdaccio; do COLD[$m]=""; WARM[$m]=""; COLD_CPU[$m]=""; done
for r in $(seq 1 "$ROUNDS"); do
  start_worker npm "NPM_UPSTREAMS:$NPM_UP"; W_URL=$URL; W_PG=$PG
  start_verdaccio mirror-verdaccio "$ORIGIN_NPM"; V_URL=$URL; V_PG=$PG
  order=(worker verdaccio); [ $((r % 2)) = 0 ] && order=(verdaccio worker)
  for i in $(seq 0 "$INSTALLS"); do
    for m in "${order[@]}"; do
      if [ "$m" = worker ]; then pg=$W_PG; else pg=$V_PG; fi
      c0=$(group_cpu_ticks "$pg")
      if [ "$m" = worker ]; then ms=$(npm_install worker "$W_URL/npm/" "${W_URL##*:}")
      else ms=$(npm_install verdaccio "$V_URL/" "${V_URL##*:}"); fi
      if [ "$i" = 0 ]; then COLD[$m]+="$ms "; COLD_CPU[$m]+="$(( $(group_cpu_ticks "$pg") - c0 ))0 "; kind=cold
      else WARM[$m]+="$ms "; kind="warm $i"; fi
      echo "round $r [$m] $kind: $ms ms"
    done
    if [ "$i" = 0 ]; then mem_cold=$(stats "$W_URL"); fi
  done
  MEM_NPM+=("$mem_cold/$(stats "$W_URL")")
  stop_server "$W_PG"; stop_server "$V_PG"
done
fi

# ---------------------------------------------------------------------------------------------
if part packument; then
say "3. the big packument ($BIG_SERVED bytes), cold then warm, and the Worker's memory"
get_timed() { # NAME URL: one GET of the full packument; sets CODE BYTES SECS XCACHE
  local out
  out=$(curl -sS --max-time 300 -o /dev/null -D "$WORK/headers-$1" -w '%{http_code} %{size_download} %{time_total}' \
    -H 'Accept: application/json' "$2") || die "[$1] GET $2 failed"
  read -r CODE BYTES SECS <<<"$out"
  XCACHE=$(awk 'tolower($1)=="x-cache:"{print $2}' "$WORK/headers-$1" | tr -d '\r')
  [ "$CODE" = 200 ] || die "[$1] GET $2: HTTP $CODE"
}
start_worker memory "NPM_UPSTREAMS:$NPM_UP"; W_URL=$URL; W_PG=$PG
start_verdaccio mirror-verdaccio "$ORIGIN_NPM"; V_URL=$URL; V_PG=$PG
declare -A PK MEM_PK
MEM_PK[before]=$(stats "$W_URL")
echo "[worker] wasm memory before: ${MEM_PK[before]} bytes"
for kind in cold warm; do
  get_timed worker "$W_URL/npm/$BIG"; PK[worker-$kind]=$SECS
  [ "$BYTES" -ge "$BIG_SERVED" ] || die "[worker] $kind GET of $BIG: only $BYTES bytes"
  MEM_PK[$kind]=$(stats "$W_URL")
  echo "[worker] $kind: $SECS s, $BYTES bytes, X-Cache: $XCACHE; wasm memory after it: ${MEM_PK[$kind]} bytes"
  get_timed verdaccio "$V_URL/$BIG"; PK[verdaccio-$kind]=$SECS
  echo "[verdaccio] $kind: $SECS s, $BYTES bytes"
done
stop_server "$W_PG"; stop_server "$V_PG"
if [ "$CONCURRENT" -gt 0 ]; then
  start_worker concurrent "NPM_UPSTREAMS:$NPM_UP"; W_URL=$URL; W_PG=$PG
  MEM_CONC_BEFORE=$(stats "$W_URL")
  pids=()
  for i in $(seq 1 "$CONCURRENT"); do
    curl -sS --max-time 300 -o /dev/null -w '%{http_code} %{size_download} %{time_total}' -H 'Accept: application/json' \
      "$W_URL/npm/$BIG-$i" > "$WORK/concurrent-$i.out" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  for i in $(seq 1 "$CONCURRENT"); do
    read -r code bytes secs < "$WORK/concurrent-$i.out" || true
    [ "${code:-}" = 200 ] || die "concurrent GET of $BIG-$i: $(cat "$WORK/concurrent-$i.out")"
    CONC_BYTES=$bytes
  done
  MEM_CONC=$(stats "$W_URL")
  echo "[worker] $CONCURRENT concurrent cold GETs of $CONC_BYTES-byte packuments: wasm memory $MEM_CONC_BEFORE before, $MEM_CONC after"
  stop_server "$W_PG"
fi
fi

# ---------------------------------------------------------------------------------------------
if part oci; then
say "4. OCI pull of the $OCI_SIZE_MB MiB image through each mirror: $OCI_ROUNDS rounds of 1 cold + $PULLS warm"
OCI_UP="{\"upstreams\":[{\"id\":\"origin\",\"url\":\"$ORIGIN_OCI\"}],\"cache\":{\"defaultTtlSeconds\":$TTL_SECONDS}}"
declare -A PULL
for k in worker-cold registry-cold worker-warm registry-warm; do PULL[$k-s]=""; PULL[$k-mbps]=""; PULL[$k-ttfb]=""; done
MEM_OCI=()
pull() { # NAME BASE_URL [--verify] [--header H]: one pull; prints its JSON line
  local name=$1 base=$2; shift 2
  timeout 1000 node "$LIB/oci-fetch.mjs" --base "$base" --repo "$OCI_REPO" --tag "$OCI_TAG" "$@" 2>>"$LOGS/oci-fetch.log" \
    || die "[$name] pull through $base failed (see logs/oci-fetch.log)"
}
for r in $(seq 1 "$OCI_ROUNDS"); do
  start_worker oci "OCI_UPSTREAMS:$OCI_UP"; W_URL=$URL; W_PG=$PG
  W_PULL=$W_URL
  echo "the Worker's pulls go to $W_PULL"
  admin "$W_URL" users "{\"name\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" >/dev/null || die "admin: creating the user failed"
  WTOKEN=$(admin "$W_URL" tokens "{\"user\":\"$BENCH_USER\",\"protocol\":\"oci\"}" | json_field token) || die "admin: creating the token failed"
  start_registry mirror-registry "$ORIGIN_OCI"; R_URL=$URL; R_PG=$PG
  mem_before=$(stats "$W_URL")
  order=(worker registry); [ $((r % 2)) = 0 ] && order=(registry worker)
  for i in $(seq 0 "$PULLS"); do
    for m in "${order[@]}"; do
      if [ "$m" = worker ]; then res=$(pull worker "$W_PULL" --header "Authorization: Bearer $WTOKEN")
      else res=$(pull registry "$R_URL"); fi
      kind=$([ "$i" = 0 ] && echo cold || echo warm)
      PULL[$m-$kind-s]+="$(json_field total_ms <<<"$res" | awk '{printf "%.0f", $1}') "
      PULL[$m-$kind-mbps]+="$(json_field mbps <<<"$res" | awk '{printf "%.1f", $1}') "
      PULL[$m-$kind-ttfb]+="$(json_field ttfb_ms <<<"$res" | awk '{printf "%.1f", $1}') "
      echo "round $r [$m] $kind$([ "$i" = 0 ] || echo " $i"): $res"
    done
    if [ "$i" = 0 ]; then mem_cold=$(stats "$W_URL"); fi
  done
  mem_warm=$(stats "$W_URL")
  MEM_OCI+=("$mem_before / $mem_cold / $mem_warm")
  echo "round $r: Worker wasm memory before / after the cold pull / after the warm pulls: ${MEM_OCI[-1]} bytes"
  if [ "$VERIFY" = 1 ] && [ "$r" = "$OCI_ROUNDS" ]; then
    echo "verify (untimed): $(pull worker "$W_PULL" --verify --header "Authorization: Bearer $WTOKEN" | json_field digest) through the Worker," \
      "$(pull registry "$R_URL" --verify | json_field digest) through docker-registry"
  fi
  stop_server "$W_PG"; stop_server "$R_PG"
  rm -rf "$WORK/state-oci" "$WORK/mirror-registry"
done
fi

# ---------------------------------------------------------------------------------------------
say "5. results"
r2() { awk -v x="$1" 'BEGIN{printf "%.2f", x}'; }
runner=$([ "$WRANGLER_DEV" = 1 ] && echo "wrangler dev (inspector on)" || echo "wrangler startWorker, inspector off (miniflare/worker.mjs)")
echo "machine: $(nproc) cores, node $(node --version), npm $(npm --version 2>/dev/null); Worker in workerd via $runner, local R2/KV/DO;"
echo "verdaccio 6.8.0 and $("$REGISTRY_BIN" --version 2>/dev/null | awk '{print "docker-registry", $3}'); origins, mirrors and clients share the machine"
echo "ratio: >1 means the Worker is better (other/worker for times, worker/other for rates)"
if part npm || part packument; then
echo
head_row "npm: origin verdaccio, mirror = verdaccio + uplink" verdaccio
fi
if part npm; then
row "npm install x$PACKAGES, cold mirror, median of $ROUNDS (s)" "$(median_s "${COLD[worker]}")" "$(median_s "${COLD[verdaccio]}")" lower
row "  CPU of the mirror's processes, cold (s)" "$(median_s "${COLD_CPU[worker]}")" "$(median_s "${COLD_CPU[verdaccio]}")" lower
row "npm install x$PACKAGES, warm mirror, median of $((ROUNDS * INSTALLS)) (s)" "$(median_s "${WARM[worker]}")" "$(median_s "${WARM[verdaccio]}")" lower
fi
if part packument; then
row "packument $(awk -v b="$BIG_SERVED" 'BEGIN{printf "%.0f", b/1e6}') MB (full), cold mirror (s)" "$(r2 "${PK[worker-cold]}")" "$(r2 "${PK[verdaccio-cold]}")" lower
row "packument $(awk -v b="$BIG_SERVED" 'BEGIN{printf "%.0f", b/1e6}') MB (full), warm mirror (s)" "$(r2 "${PK[worker-warm]}")" "$(r2 "${PK[verdaccio-warm]}")" lower
fi
if part oci; then
echo
head_row "OCI: origin docker-registry, mirror = proxy mode" registry
row "pull $OCI_SIZE_MB MiB image, cold mirror, median of $OCI_ROUNDS (s)" "$(median_s "${PULL[worker-cold-s]}")" "$(median_s "${PULL[registry-cold-s]}")" lower
row "  layer GET, cold (MB/s)" "$(median "${PULL[worker-cold-mbps]}")" "$(median "${PULL[registry-cold-mbps]}")" higher
row "  layer time to first byte, cold (ms)" "$(median "${PULL[worker-cold-ttfb]}")" "$(median "${PULL[registry-cold-ttfb]}")" lower
row "pull $OCI_SIZE_MB MiB image, warm, median of $((OCI_ROUNDS * PULLS)) (s)" "$(median_s "${PULL[worker-warm-s]}")" "$(median_s "${PULL[registry-warm-s]}")" lower
row "  layer GET, warm (MB/s)" "$(median "${PULL[worker-warm-mbps]}")" "$(median "${PULL[registry-warm-mbps]}")" higher
fi
echo
echo "Worker wasm memory high-water mark (GET /-/admin/stats; a fresh Worker for each part):"
part packument && echo "  $BIG_SERVED-byte packument: before ${MEM_PK[before]}, after cold ${MEM_PK[cold]}, after warm ${MEM_PK[warm]} bytes" \
  "($(mib "${MEM_PK[before]}") / $(mib "${MEM_PK[cold]}") / $(mib "${MEM_PK[warm]}") MiB)"
if part packument && [ "$CONCURRENT" -gt 0 ]; then
  echo "  $CONCURRENT concurrent cold $CONC_BYTES-byte packuments: before $MEM_CONC_BEFORE, after $MEM_CONC bytes" \
    "($(mib "$MEM_CONC_BEFORE") / $(mib "$MEM_CONC") MiB)"
fi
part npm && echo "  npm install rounds, after the cold install / after the warm installs: ${MEM_NPM[*]} bytes"
part oci && for r in $(seq 1 "$OCI_ROUNDS"); do
  read -r a _ b _ c <<<"${MEM_OCI[$((r - 1))]}"
  echo "  $OCI_SIZE_MB MiB pull, round $r: before $a, after cold $b, after warm $c bytes ($(mib "$a") / $(mib "$b") / $(mib "$c") MiB)"
done
echo
echo "Raw (npm installs in ms, pulls in ms and MB/s; each install with an empty npm cache, no node_modules, no lockfile):"
part npm && for m in worker verdaccio; do echo "  install $m: cold ${COLD[$m]}| warm ${WARM[$m]}| CPU of the mirror in each cold install (ms): ${COLD_CPU[$m]}"; done
part oci && for m in worker registry; do
  for k in cold warm; do echo "  pull $m $k: ${PULL[$m-$k-s]}| MB/s ${PULL[$m-$k-mbps]}"; done
done
exit 0
