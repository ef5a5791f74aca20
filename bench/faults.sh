#!/usr/bin/env bash
# How fast the pull-through cache stays when its upstream misbehaves: a warm `npm install` of
# BENCH_PACKAGES inter-dependent packages through the Worker whose cached metadata has passed
# both its TTL and its stale window, with the upstream (a forwarding proxy in front of a
# verdaccio origin, bench/lib/fault-proxy.mjs) healthy, refusing connections, answering 500,
# or accepting requests and never answering. Prints each faulty install as a ratio to the
# healthy one (the aim: at most 1.2). No assertions: exits 0 when every install produced the
# right tree.
#
# Each round, for each mode: a fresh Worker (its circuit breaker closed) whose cache is warmed
# through a healthy upstream, then the install runs after the metadata expired (TTL BENCH_TTL_S, stale window BENCH_STALE_S), with an empty
# npm cache, no node_modules and no lockfile. Modes alternate order between rounds.
#
# Usage: bash bench/faults.sh
#   BENCH_PACKAGES=100 BENCH_ROUNDS=2 BENCH_TTL_S=2 BENCH_STALE_S=2 BENCH_DEADLINE_MS= (engine default)
#   BENCH_MODES="healthy down error hang"  the upstream behaviours measured (healthy first: the others are ratios to it)
#   BENCH_SKIP_BUILD=1  use build/worker as it is
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"

PACKAGES=${BENCH_PACKAGES:-100}
ROUNDS=${BENCH_ROUNDS:-2}
TTL_S=${BENCH_TTL_S:-2}
STALE_S=${BENCH_STALE_S:-2}
DEADLINE_MS=${BENCH_DEADLINE_MS:-}
WRANGLER_DEV=0
WORK="$ROOT/bench/work/faults"
LIB="$ROOT/bench/lib"
LOGS="$WORK/logs"
VERDACCIO_BIN="$ROOT/miniflare/node_modules/verdaccio/bin/verdaccio"
REGISTRY_BIN=/usr/bin/docker-registry
BENCH_USER=bench
BENCH_PASSWORD="bench-password-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
JWT_SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')

BENCH_NAME=bench/faults.sh
source "$ROOT/bench/lib/common.sh"
source "$ROOT/bench/lib/servers.sh"

say "1. build, origin, fixture and the fault proxy"
ensure_worker_built
[ -f "$VERDACCIO_BIN" ] || die "verdaccio is not installed in miniflare/node_modules: run scripts/setup.sh"
[ "$PACKAGES" -ge 2 ] && [ "$PACKAGES" -le 100 ] || die "BENCH_PACKAGES must be 2..100"
start_verdaccio origin-verdaccio; ORIGIN_NPM=$URL
OTOKEN=$(curl -fsS --max-time 30 -X PUT "$ORIGIN_NPM/-/user/org.couchdb.user:$BENCH_USER" -H 'Content-Type: application/json' \
  -d "{\"name\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" | json_field token) || die "verdaccio: creating the user failed"
node "$LIB/fixture.mjs" "$WORK/fixture" "$PACKAGES"
node "$LIB/npm-publish.mjs" --registry "$ORIGIN_NPM" --token "$OTOKEN" "$WORK/fixture/packages"/* \
  || die "publishing the fixture to the origin failed"
setsid node "$LIB/fault-proxy.mjs" "$ORIGIN_NPM" </dev/null >"$WORK/fault-proxy.json" 2>"$LOGS/fault-proxy.log" &
PGIDS+=("$!")
for _ in $(seq 1 50); do [ -s "$WORK/fault-proxy.json" ] && break; sleep 0.1; done
FAULT_PORT=$(json_field port < "$WORK/fault-proxy.json") || die "the fault proxy did not start"
CONTROL=$(json_field control < "$WORK/fault-proxy.json")
set_mode() { curl -fsS --max-time 10 -X PUT "http://127.0.0.1:$CONTROL/$1" >/dev/null || die "fault proxy: mode $1 refused"; }
echo "origin $ORIGIN_NPM behind the fault proxy on 127.0.0.1:$FAULT_PORT"
echo "npm client warm-up (from the origin): $(npm_install warmup "$ORIGIN_NPM/" "${ORIGIN_NPM##*:}") ms"

RESILIENCE='"timeoutMs":30000,"maxRetries":3'
[ -n "$DEADLINE_MS" ] && RESILIENCE+=",\"deadlineMs\":$DEADLINE_MS"
NPM_UP="{\"upstreams\":[{\"id\":\"origin\",\"url\":\"http://127.0.0.1:$FAULT_PORT\"}],\
\"cache\":{\"defaultTtlSeconds\":$TTL_S,\"staleMaxAgeSeconds\":$STALE_S},\"resilience\":{$RESILIENCE}}"
read -r -a MODES <<<"${BENCH_MODES:-healthy down error hang}"
declare -A T
for m in "${MODES[@]}"; do T[$m]=""; done

say "2. warm npm install x$PACKAGES with expired metadata: $ROUNDS rounds over ${MODES[*]}"
for r in $(seq 1 "$ROUNDS"); do
  order=("${MODES[@]}")
  if [ $((r % 2)) = 0 ]; then order=(); for ((k = ${#MODES[@]} - 1; k >= 0; k--)); do order+=("${MODES[k]}"); done; fi
  for m in "${order[@]}"; do
    # A fresh Worker per mode (its breaker closed), its cache warmed through a healthy upstream.
    start_worker faults "NPM_UPSTREAMS:$NPM_UP"; W_URL=$URL; W_PG=$PG
    set_mode healthy
    warm=$(npm_install worker "$W_URL/npm/" "${W_URL##*:}")
    # Past the TTL and the stale window: every packument must be refreshed before it is fresh.
    sleep $((TTL_S + STALE_S + 1))
    set_mode "$m"
    ms=$(npm_install worker "$W_URL/npm/" "${W_URL##*:}")
    T[$m]+="$ms "
    echo "round $r [$m]: $ms ms (cache warmed in $warm ms)"
    set_mode healthy
    stop_server "$W_PG"
  done
done

say "3. results (ratio = faulty install time / healthy install time; aim <= 1.2)"
healthy=$(median_s "${T[healthy]}")
printf '%-34s %10s %8s\n' "upstream" "install s" "ratio"
for m in "${MODES[@]}"; do
  s=$(median_s "${T[$m]}")
  printf '%-34s %10s %8s\n' "$m (median of $ROUNDS)" "$s" "$(awk -v a="$s" -v b="$healthy" 'BEGIN{printf "%.2f", a/b}')"
done
