#!/usr/bin/env bash
# Two builds of the Worker side by side: is this build slower than another one (a checkout of
# an older commit, built there with scripts/build-worker.sh)? Both Workers run at once on
# 127.0.0.1 with fresh state, get the same ~50 published packages, then face the same load in
# alternating short rounds (A B B A A B …), so a busy machine slows both alike; the ratio of
# each pair is printed and their median summarised. No timing assertions.
#   bash bench/ab.sh OTHER_CHECKOUT
#   BENCH_ROUNDS=8 BENCH_REQUESTS=1000 BENCH_CONCURRENCY=16 BENCH_PACKAGES=50 BENCH_KINDS="packument tarball"
#   BENCH_SKIP_BUILD=1  use build/worker of this checkout as it is
#   BENCH_A_VARS="EDGE_CACHE:off" BENCH_B_VARS=…  settings for one side (NAME:VALUE, space-separated):
#     `bash bench/ab.sh . ` with BENCH_B_VARS=EDGE_CACHE:off measures what one setting gives
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"

OTHER=${1:?usage: bench/ab.sh OTHER_CHECKOUT (built with scripts/build-worker.sh)}
OTHER=$(cd "$OTHER" && pwd)
[ -f "$OTHER/build/worker/shim.mjs" ] && [ -f "$OTHER/miniflare/worker.mjs" ] || {
  echo "bench/ab.sh: $OTHER has no built Worker (run scripts/build-worker.sh there)" >&2; exit 2; }
ROUNDS=${BENCH_ROUNDS:-8}
REQUESTS=${BENCH_REQUESTS:-1000}
CONCURRENCY=${BENCH_CONCURRENCY:-16}
PACKAGES=${BENCH_PACKAGES:-50}
BENCH_NAME=bench/ab.sh
source "$ROOT/bench/lib/common.sh"
WORK="$ROOT/bench/work/ab"
LIB="$ROOT/bench/lib"
mkdir -p "$WORK/logs"
ACCEPT_ABBREV='application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*'

PGIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
  for pg in "${PGIDS[@]}"; do stop_group "$pg"; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_worker_built
declare -A URL TOKEN
start() { # LABEL CHECKOUT VARS
  local label=$1 dir=$2 port admin extra=()
  for v in $3; do extra+=(--var "$v"); done
  port=$(free_port)
  admin=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  rm -rf "$WORK/state-$label"
  (cd "$dir" && exec setsid node miniflare/worker.mjs --port "$port" --persist "$WORK/state-$label" --log-level warn \
    --var "ADMIN_TOKEN:$admin" "${extra[@]}") </dev/null >"$WORK/logs/$label.log" 2>&1 &
  PGIDS+=($!)
  URL[$label]="http://127.0.0.1:$port"
  wait_http "${URL[$label]}/-/health" 120 "${PGIDS[-1]}" "Worker $label"
  URL[$label]=$(worker_direct_url "$WORK/logs/$label.log")
  curl -fsS -X POST "${URL[$label]}/-/admin/users" -H "Authorization: Bearer $admin" \
    -d '{"name":"bench","password":"bench-password-123"}' >/dev/null
  TOKEN[$label]=$(curl -fsS -X POST "${URL[$label]}/-/admin/tokens" -H "Authorization: Bearer $admin" \
    -d '{"user":"bench","protocol":"npm"}' | json_field token)
}
say "two Workers: A = this checkout ${BENCH_A_VARS:-}, B = $OTHER ${BENCH_B_VARS:-}"
start A "$ROOT" "${BENCH_A_VARS:-}"
start B "$OTHER" "${BENCH_B_VARS:-}"

node "$LIB/fixture.mjs" "$WORK/fixture" "$PACKAGES"
mapfile -t NAMES < <(cd "$WORK/fixture/packages" && ls -1 | sort)
for l in A B; do
  node "$LIB/npm-publish.mjs" --registry "${URL[$l]}/npm" --token "${TOKEN[$l]}" "${NAMES[@]/#/$WORK/fixture/packages/}" >/dev/null
done

load() { # LABEL KIND → requests per second
  local l=$1 kind=$2 urls=()
  for n in "${NAMES[@]}"; do
    case $kind in
      packument) urls+=("${URL[$l]}/npm/$n") ;;
      tarball) urls+=("${URL[$l]}/npm/$n/-/$n-1.0.0.tgz") ;;
    esac
  done
  node "$LIB/http-bench.mjs" --requests "$REQUESTS" --concurrency "$CONCURRENCY" --warmup 100 \
    --header "Accept: $ACCEPT_ABBREV" "${urls[@]}" | json_field rps
}
say "$ROUNDS alternating rounds of $REQUESTS GETs, concurrency $CONCURRENCY"
for kind in ${BENCH_KINDS:-packument tarball}; do
  ratios=()
  for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then a=$(load A $kind); b=$(load B $kind); else b=$(load B $kind); a=$(load A $kind); fi
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", a/b}')
    ratios+=("$ratio")
    printf '%-9s round %d: A %8.0f req/s  B %8.0f req/s  A/B %s\n' "$kind" "$r" "$a" "$b" "$ratio"
  done
  printf '%s\n' "${ratios[@]}" | sort -n | awk -v k="$kind" '{v[NR]=$1} END{m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2;
    printf "%s GET: median A/B throughput %.3f (min %.3f, max %.3f, %d rounds)\n", k, m, v[1], v[NR], NR}'
done
