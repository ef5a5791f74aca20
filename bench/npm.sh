#!/usr/bin/env bash
# npm benchmark: edgeregistry (Worker in workerd as `wrangler dev` runs it, via miniflare/worker.mjs) against verdaccio 6.8.0,
# side by side on 127.0.0.1, in one run:
#   1. builds the Worker if stale, starts it (fresh state in bench/work/wrangler-state), makes a
#      user and an npm token through the admin API;
#   2. installs verdaccio 6.8.0 into bench/work/verdaccio (once), starts it with no uplinks
#      (fresh storage), makes a user with `PUT /-/user/org.couchdb.user:NAME`;
#   3. generates ~50 small inter-dependent packages and `npm publish`es them to both;
#   4. measures packument GET (abbreviated) and tarball GET throughput with a keep-alive Node
#      client, then `npm install` of a project depending on all of them (one warm-up, then the
#      median of K installs, each with no node_modules, no lockfile and an empty npm cache),
#      once with the token in .npmrc and once anonymous;
#   5. prints a table. No timing assertions: exits 0 when every step worked.
# Both servers are stopped on exit, even on failure. Everything lives under bench/work/.
#
# Usage: bash bench/npm.sh
#   BENCH_REQUESTS=2000 BENCH_CONCURRENCY=16 BENCH_INSTALLS=3 BENCH_PACKAGES=50
#   BENCH_SKIP_BUILD=1  use build/worker as it is (no setup.sh, no rebuild)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"

REQUESTS=${BENCH_REQUESTS:-2000}
CONCURRENCY=${BENCH_CONCURRENCY:-16}
INSTALLS=${BENCH_INSTALLS:-3}
PACKAGES=${BENCH_PACKAGES:-50}
VERDACCIO_VERSION=6.8.0
WORK="$ROOT/bench/work"
LIB="$ROOT/bench/lib"
LOGS="$WORK/logs"
VD="$WORK/verdaccio"
ACCEPT_ABBREV='application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*'
BENCH_USER=bench
BENCH_PASSWORD="bench-password-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"

# Settings inherited from `npm run` or the shell must not redirect the npm clients used here.
while read -r v; do unset "$v"; done < <(compgen -e | grep -i '^npm_config_' || true)
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

mkdir -p "$WORK" "$LOGS"
: > "$LOGS/npm.log"

BENCH_NAME=bench/npm.sh
source "$ROOT/bench/lib/common.sh"

# --- cleanup: both servers run in their own session (setsid), so each whole group is stopped.
PGIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
  for pg in "${PGIDS[@]}"; do stop_group "$pg"; done
  if [ "$rc" != 0 ]; then
    for f in worker.log verdaccio.log npm.log; do
      [ -s "$LOGS/$f" ] && { echo "--- last lines of bench/work/logs/$f" >&2; tail -n 25 "$LOGS/$f" >&2; }
    done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
say "1. the Worker"
ensure_worker_built
WPORT=$(free_port)
ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
rm -rf "$WORK/wrangler-state"
# miniflare/worker.mjs: as `wrangler dev` runs it, without file watching or devtools inspector.
setsid node "$ROOT/miniflare/worker.mjs" --port "$WPORT" --persist "$WORK/wrangler-state" --log-level warn \
  --var "ADMIN_TOKEN:$ADMIN_TOKEN" </dev/null >"$LOGS/worker.log" 2>&1 &
PGIDS+=($!)
WURL="http://127.0.0.1:$WPORT"
wait_http "$WURL/-/health" 120 "${PGIDS[-1]}" "the Worker"
WURL=$(worker_direct_url "$LOGS/worker.log")
WPORT=${WURL##*:}
echo "Worker up on $WURL (log: bench/work/logs/worker.log)"
admin() { curl -fsS --max-time 30 -X POST "$WURL/-/admin/$1" -H "Authorization: Bearer $ADMIN_TOKEN" \
  -H 'Content-Type: application/json' -d "$2"; }
admin users "{\"name\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" >/dev/null || die "admin: creating the user failed"
WTOKEN=$(admin tokens "{\"user\":\"$BENCH_USER\",\"protocol\":\"npm\"}" | json_field token) || die "admin: creating the token failed"

# ---------------------------------------------------------------------------------------------
say "2. verdaccio $VERDACCIO_VERSION"
mkdir -p "$VD"
if [ "$(node -p "require('$VD/node_modules/verdaccio/package.json').version" 2>/dev/null)" != "$VERDACCIO_VERSION" ]; then
  # The node-fetch override is required on this machine.
  cp "$LIB/verdaccio-package.json" "$VD/package.json"
  echo "installing verdaccio into bench/work/verdaccio (npm registry)"
  timeout 600 npm install --prefix "$VD" --no-audit --no-fund --loglevel=error
fi
VPORT=$(free_port)
while [ "$VPORT" = "$WPORT" ]; do VPORT=$(free_port); done
# Derived from bench/lib/verdaccio-config.yaml: same storage/auth/packages, no uplinks, our port, quiet log.
{
  grep -v -E '^(listen|uplinks|log):' "$LIB/verdaccio-config.yaml"
  echo 'uplinks: {}'
  echo "listen: 127.0.0.1:$VPORT"
  echo 'log: { type: stdout, format: pretty, level: warn }'
} > "$VD/config.yaml"
rm -rf "$VD/storage" "$VD/htpasswd"
(cd "$VD" && exec setsid node node_modules/verdaccio/bin/verdaccio --config ./config.yaml) \
  </dev/null >"$LOGS/verdaccio.log" 2>&1 &
PGIDS+=($!)
VURL="http://127.0.0.1:$VPORT"
wait_http "$VURL/-/ping" 60 "${PGIDS[-1]}" "verdaccio"
echo "verdaccio up on $VURL (log: bench/work/logs/verdaccio.log)"
VTOKEN=$(curl -fsS --max-time 30 -X PUT "$VURL/-/user/org.couchdb.user:$BENCH_USER" -H 'Content-Type: application/json' \
  -d "{\"name\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" | json_field token) || die "verdaccio: creating the user failed"

# npm settings per registry: own userconfig and caches, never ~/.npmrc.
printf 'registry=%s/npm/\n//127.0.0.1:%s/npm/:_authToken=%s\n' "$WURL" "$WPORT" "$WTOKEN" > "$WORK/npmrc-worker"
printf 'registry=%s/\n//127.0.0.1:%s/:_authToken=%s\n' "$VURL" "$VPORT" "$VTOKEN" > "$WORK/npmrc-verdaccio"
chmod 600 "$WORK/npmrc-worker" "$WORK/npmrc-verdaccio"
npm_as() { # REGISTRY CACHE_DIR DIR npm-args...
  local reg=$1 cache=$2 dir=$3; shift 3
  echo "+ [$reg] (cd ${dir#"$ROOT/"}) npm $*" >> "$LOGS/npm.log"
  (cd "$dir" && timeout 300 npm --userconfig "$WORK/npmrc-$reg" --cache "$cache" "$@") >> "$LOGS/npm.log" 2>&1 \
    || die "[$reg] npm $* failed in ${dir#"$ROOT/"} (see above)"
}

# ---------------------------------------------------------------------------------------------
say "3. fixture: $PACKAGES packages, published to both"
node "$LIB/fixture.mjs" "$WORK/fixture" "$PACKAGES"
mapfile -t NAMES < <(cd "$WORK/fixture/packages" && ls -1 | sort)
declare -A PUBLISH_S
for reg in worker verdaccio; do
  rm -rf "$WORK/cache-publish-$reg"
  t0=$(now_ms)
  for n in "${NAMES[@]}"; do
    npm_as "$reg" "$WORK/cache-publish-$reg" "$WORK/fixture/packages/$n" publish --loglevel=error
  done
  PUBLISH_S[$reg]=$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN{printf "%.2f", ms/1000}')
  echo "published ${#NAMES[@]} packages to $reg in ${PUBLISH_S[$reg]} s"
done

# ---------------------------------------------------------------------------------------------
say "4a. GET throughput: $REQUESTS requests, concurrency $CONCURRENCY, keep-alive (after 200 warm-up)"
declare -A RESULT
load() { # KEY ARGS...
  local key=$1; shift
  RESULT[$key]=$(timeout 400 node "$LIB/http-bench.mjs" --requests "$REQUESTS" --concurrency "$CONCURRENCY" --warmup 200 "$@") \
    || die "load generator failed for $key"
  local ok; ok=$(json_field ok <<<"${RESULT[$key]}")
  echo "$key: ${RESULT[$key]}"
  [ "$ok" = "$REQUESTS" ] || echo "WARNING: $key: only $ok of $REQUESTS answered 200: $(json_field statuses <<<"${RESULT[$key]}")" >&2
}
pk_urls() { for n in "${NAMES[@]}"; do echo "$1/$n"; done; }
tgz_urls() { for n in "${NAMES[@]}"; do echo "$1/$n/-/$n-1.0.0.tgz"; done; }
mapfile -t U < <(pk_urls "$WURL/npm");          load packument-worker --header "Accept: $ACCEPT_ABBREV" "${U[@]}"
mapfile -t U < <(pk_urls "$VURL");              load packument-verdaccio --header "Accept: $ACCEPT_ABBREV" "${U[@]}"
mapfile -t U < <(tgz_urls "$WURL/npm");         load tarball-worker "${U[@]}"
mapfile -t U < <(tgz_urls "$VURL");             load tarball-verdaccio "${U[@]}"

# ---------------------------------------------------------------------------------------------
say "4b. npm install of a project depending on all $PACKAGES (1 warm-up + $INSTALLS timed, empty cache each)"
# Two client set-ups: with the publish token in .npmrc (npm sends it on every request) and
# anonymous (both registries allow anonymous reads), since verdaccio's htpasswd plugin checks
# the password behind a legacy token with bcrypt on every request.
printf 'registry=%s/npm/\n' "$WURL" > "$WORK/npmrc-worker-anon"
printf 'registry=%s/\n' "$VURL" > "$WORK/npmrc-verdaccio-anon"
declare -A TIMES
for reg in worker verdaccio worker-anon verdaccio-anon; do
  rm -rf "$WORK/project-$reg"; cp -r "$WORK/fixture/project" "$WORK/project-$reg"; TIMES[$reg]=""
done
for mode in "" -anon; do
  for i in $(seq 0 "$INSTALLS"); do
    for reg in "worker$mode" "verdaccio$mode"; do # interleaved, so drift on the machine hits both alike
      P="$WORK/project-$reg"
      rm -rf "$P/node_modules" "$P/package-lock.json" "$WORK/cache-install-$reg"
      t0=$(now_ms)
      npm_as "$reg" "$WORK/cache-install-$reg" "$P" install --no-audit --no-fund --ignore-scripts --loglevel=error
      ms=$(( $(now_ms) - t0 ))
      got=$(find "$P/node_modules" -mindepth 1 -maxdepth 1 -name 'bench-pkg-*' | wc -l)
      [ "$got" = "$PACKAGES" ] || die "[$reg] install produced $got of $PACKAGES packages in node_modules"
      port=$(case $reg in worker*) echo "$WPORT";; *) echo "$VPORT";; esac)
      grep -q "127.0.0.1:$port/" "$P/package-lock.json" || die "[$reg] package-lock.json does not resolve from $reg"
      if [ "$i" = 0 ]; then echo "[$reg] warm-up install: $ms ms"
      else echo "[$reg] install $i: $ms ms"; TIMES[$reg]+="$ms "; fi
    done
  done
done
median_s() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m/1000}'; }

# ---------------------------------------------------------------------------------------------
say "5. results"
f() { json_field "$2" <<<"${RESULT[$1]}"; }
row() { # METRIC WORKER VERDACCIO higher|lower
  local ratio
  ratio=$(awk -v w="$2" -v v="$3" -v k="$4" 'BEGIN{ if (k=="higher") r=(v>0)?w/v:0; else r=(w>0)?v/w:0; printf "%.2f", r }')
  printf '%-44s %12s %12s %8s\n' "$1" "$2" "$3" "$ratio"
}
r2() { awk -v x="$1" 'BEGIN{printf "%.1f", x}'; }
echo "machine: $(nproc) cores, node $(node --version), npm $(npm --version 2>/dev/null); Worker in workerd via miniflare/worker.mjs (local), verdaccio $VERDACCIO_VERSION; client and servers share the machine"
echo "ratio: >1 means the Worker is better (worker/verdaccio for rates, verdaccio/worker for times)"
echo
printf '%-44s %12s %12s %8s\n' metric worker verdaccio ratio
printf '%-44s %12s %12s %8s\n' ------ ------ --------- -----
row "packument GET, abbreviated (req/s)" "$(r2 "$(f packument-worker rps)")" "$(r2 "$(f packument-verdaccio rps)")" higher
row "packument GET p50 latency (ms)" "$(r2 "$(f packument-worker p50_ms)")" "$(r2 "$(f packument-verdaccio p50_ms)")" lower
row "packument GET p99 latency (ms)" "$(r2 "$(f packument-worker p99_ms)")" "$(r2 "$(f packument-verdaccio p99_ms)")" lower
row "tarball GET (req/s)" "$(r2 "$(f tarball-worker rps)")" "$(r2 "$(f tarball-verdaccio rps)")" higher
row "npm publish x$PACKAGES, sequential (s)" "${PUBLISH_S[worker]}" "${PUBLISH_S[verdaccio]}" lower
row "npm install x$PACKAGES, with token, median (s)" "$(median_s "${TIMES[worker]}")" "$(median_s "${TIMES[verdaccio]}")" lower
row "npm install x$PACKAGES, anonymous, median (s)" "$(median_s "${TIMES[worker-anon]}")" "$(median_s "${TIMES[verdaccio-anon]}")" lower
echo
echo "npm install: empty cache, no node_modules, no lockfile; median of $INSTALLS after one warm-up. Raw (ms):"
for reg in worker verdaccio worker-anon verdaccio-anon; do echo "  $reg: ${TIMES[$reg]}"; done
