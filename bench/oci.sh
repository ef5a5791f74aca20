#!/usr/bin/env bash
# OCI benchmark: edgeregistry (Worker in workerd as `wrangler dev` runs it, via miniflare/worker.mjs) against CNCF distribution
# (Debian's docker-registry 2.8, filesystem storage, no auth), side by side on 127.0.0.1, in one run:
#   1. builds the Worker if stale, starts it (fresh state in bench/work/wrangler-state) with an
#      admin token and a JWT secret, makes a user through the admin API; the client follows the
#      /v2/ challenge to the token endpoint (Basic user:password) for a Bearer JWT;
#   2. installs docker-registry with apt if it is missing, starts it from bench/lib/docker-registry.yml
#      (our port, fresh storage in bench/work/docker-registry, log level warn, no access log:
#      the Worker runs with --log-level warn too);
#   3. generates one 1 GiB layer per push and mode once (deterministic pseudo-random, a
#      different blob per push, streamed to bench/work/layer-SIZE-SEED.bin, reused by later runs);
#   4. pushes each to both, in each mode of BENCH_PUSH_MODES: `stream` is one PATCH of the whole
#      layer without Content-Range or Content-Length (how docker, containerd and crane push),
#      `chunked` is PATCH chunks of 48 MiB with Content-Range; then PUT ?digest=, a small
#      config blob and a manifest by tag, alternating which server goes first; every PATCH is
#      timed;
#   5. pulls the first layer from both (one verified warm-up, then PULLS timed GETs streamed to
#      nowhere, interleaved): MB/s and time to first byte;
#   6. manifest HEAD by tag with a keep-alive Node client, as a client sends it (Accept list;
#      Bearer JWT for the Worker, nothing for docker-registry), ROUNDS interleaved rounds;
#   7. reads the Worker's wasm memory high-water mark (GET /-/admin/stats) before and after the
#      push and after the pull;
#   8. prints a table of ratios. No timing assertions: exits 0 when every step worked.
# Both servers are stopped on exit, even on failure; after a successful run their stored data is
# removed (the layers and logs stay). Everything lives under bench/work/.
#
# Usage: bash bench/oci.sh
#   BENCH_LAYER_BYTES=1073741824 BENCH_CHUNK_BYTES=50331648 BENCH_PUSHES=2 BENCH_PULLS=3
#   BENCH_PUSH_MODES="stream chunked"  (either or both; the pull uses the first mode's first layer)
#   BENCH_REQUESTS=2000 BENCH_CONCURRENCY=16 BENCH_ROUNDS=3 BENCH_PUSH_TIMEOUT=1800
#   BENCH_WORKER_LOG_LEVEL=warn  wrangler's --log-level ("info" adds one line per request, "log" also the Worker's own logs)
#   BENCH_SKIP_BUILD=1  use build/worker as it is (no setup.sh, no rebuild)
#   BENCH_VIA_PROXY=1   talk to wrangler's dev proxy instead of the Worker's own listener
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"

LAYER_BYTES=${BENCH_LAYER_BYTES:-1073741824}
CHUNK_BYTES=${BENCH_CHUNK_BYTES:-50331648}
PUSHES=${BENCH_PUSHES:-2}
read -r -a PUSH_MODES <<<"${BENCH_PUSH_MODES:-stream chunked}"
for m in "${PUSH_MODES[@]}"; do
  case $m in stream|chunked) ;; *) echo "bench/oci.sh: BENCH_PUSH_MODES: unknown mode $m (stream, chunked)" >&2; exit 2;; esac
done
[ "${#PUSH_MODES[@]}" -gt 0 ] || { echo "bench/oci.sh: BENCH_PUSH_MODES is empty" >&2; exit 2; }
PULLS=${BENCH_PULLS:-3}
REQUESTS=${BENCH_REQUESTS:-2000}
CONCURRENCY=${BENCH_CONCURRENCY:-16}
ROUNDS=${BENCH_ROUNDS:-3}
PUSH_TIMEOUT=${BENCH_PUSH_TIMEOUT:-1800}
WORKER_LOG_LEVEL=${BENCH_WORKER_LOG_LEVEL:-warn}
WORK="$ROOT/bench/work"
LIB="$ROOT/bench/lib"
LOGS="$WORK/logs"
DR="$WORK/docker-registry"
REPO=bench/big
TAG=bench
ACCEPT_MANIFEST='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'
BENCH_USER=bench
BENCH_PASSWORD="bench-password-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
[ "$CHUNK_BYTES" -lt 100000000 ] || { echo "bench/oci.sh: BENCH_CHUNK_BYTES must stay under Cloudflare's 100 MB body limit" >&2; exit 2; }

# The registry reads REGISTRY_* variables as configuration overrides: none may leak in.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^REGISTRY_' || true)

mkdir -p "$WORK" "$LOGS"

BENCH_NAME=bench/oci.sh
source "$ROOT/bench/lib/common.sh"

# --- cleanup: both servers run in their own session (setsid), so each whole group is stopped.
PGIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
  for pg in "${PGIDS[@]}"; do stop_group "$pg"; done
  if [ "$rc" != 0 ]; then
    for f in worker.log docker-registry.log; do
      [ -s "$LOGS/$f" ] && { echo "--- last lines of bench/work/logs/$f" >&2; tail -n 25 "$LOGS/$f" >&2; }
    done
  else # the pushed gigabytes; the layers and logs stay
    rm -rf "$WORK/wrangler-state" "$DR/data"
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
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
rm -rf "$WORK/wrangler-state"
# miniflare/worker.mjs: as `wrangler dev` runs it, without file watching or devtools inspector.
setsid node "$ROOT/miniflare/worker.mjs" --port "$WPORT" --persist "$WORK/wrangler-state" --log-level "$WORKER_LOG_LEVEL" \
  --var "ADMIN_TOKEN:$ADMIN_TOKEN" --var "JWT_SECRET:$JWT_SECRET" </dev/null >"$LOGS/worker.log" 2>&1 &
PGIDS+=($!)
WURL="http://127.0.0.1:$WPORT"
wait_http "$WURL/-/health" 120 "${PGIDS[-1]}" "the Worker"
# The Worker's own listener, as the tests use it: wrangler's dev proxy in front of it is a
# second workerd that every byte of a push would also cross (absent in production), and it
# answered a PUT after a streamed (chunked-encoded) PATCH with 503 "Your worker restarted
# mid-request" in one run. BENCH_VIA_PROXY=1 keeps the proxy.
if [ -z "${BENCH_VIA_PROXY:-}" ]; then WURL=$(worker_direct_url "$LOGS/worker.log"); fi
echo "Worker up on $WURL (log: bench/work/logs/worker.log)"
curl -fsS --max-time 30 -X POST "$WURL/-/admin/users" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d "{\"name\":\"$BENCH_USER\",\"password\":\"$BENCH_PASSWORD\"}" >/dev/null || die "admin: creating the user failed"
wasm_memory() { # → bytes
  curl -fsS --max-time 30 "$WURL/-/admin/stats" -H "Authorization: Bearer $ADMIN_TOKEN" | json_field wasm_memory_bytes \
    || die "GET /-/admin/stats failed"
}
# As a client does it: GET /v2/ → 401 with the Bearer challenge → its realm with Basic user:password.
worker_jwt() { # SCOPE → JWT
  local challenge realm service
  challenge=$(curl -sS --max-time 30 -o /dev/null -D - "$WURL/v2/" | tr -d '\r' | sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: *//p')
  realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$challenge")
  service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$challenge")
  [ -n "$realm" ] || die "GET $WURL/v2/ gave no Bearer challenge: $challenge"
  curl -fsS --max-time 60 -u "$BENCH_USER:$BENCH_PASSWORD" -G "$realm" --data-urlencode "service=$service" \
    --data-urlencode "scope=$1" | json_field token || die "token endpoint $realm refused $1"
}

# ---------------------------------------------------------------------------------------------
say "2. docker-registry (CNCF distribution)"
if ! command -v docker-registry >/dev/null; then
  echo "installing Debian's docker-registry"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker-registry
fi
RPORT=$(free_port)
while [ "$RPORT" = "$WPORT" ]; do RPORT=$(free_port); done
rm -rf "$DR"
mkdir -p "$DR/data"
# Derived from bench/lib/docker-registry.yml: same storage driver and settings, our port and directory,
# log level warn and no access log (the Worker logs no requests at warn either).
{
  sed -e '/^log:/,/^[^ ]/{/^ /d}' -e '/^log:/d' "$LIB/docker-registry.yml"
  printf '%s\n' 'log:' '  level: warn' '  accesslog:' '    disabled: true'
} | sed -e "s|^\( *rootdirectory:\).*|\1 $DR/data|" -e "s|^\( *addr:\).*|\1 127.0.0.1:$RPORT|" > "$DR/config.yml"
grep -q "rootdirectory: $DR/data" "$DR/config.yml" && grep -q "addr: 127.0.0.1:$RPORT" "$DR/config.yml" \
  || die "could not derive the docker-registry config (see bench/work/docker-registry/config.yml)"
setsid docker-registry serve "$DR/config.yml" </dev/null >"$LOGS/docker-registry.log" 2>&1 &
PGIDS+=($!)
RPID=$!
RURL="http://127.0.0.1:$RPORT"
wait_http "$RURL/v2/" 60 "${PGIDS[-1]}" "docker-registry"
echo "docker-registry $(docker-registry --version 2>/dev/null | awk '{print $NF}') up on $RURL (log: bench/work/logs/docker-registry.log)"

# ---------------------------------------------------------------------------------------------
NLAYERS=$((PUSHES * ${#PUSH_MODES[@]}))
say "3. the layers: $NLAYERS x $LAYER_BYTES bytes, deterministic pseudo-random (one per push and mode)"
LAYERS=() DIGESTS=()
for i in $(seq 1 "$NLAYERS"); do
  LAYERS+=("$WORK/layer-$LAYER_BYTES-$((i - 1)).bin")
  info=$(node "$LIB/oci-layer.mjs" "${LAYERS[-1]}" "$LAYER_BYTES" "$((i - 1))") || die "generating layer $i failed"
  echo "$info"
  DIGESTS+=("$(json_field digest <<<"$info")")
done
DIGEST=${DIGESTS[0]} # the one pulled

# ---------------------------------------------------------------------------------------------
say "4. push: modes ${PUSH_MODES[*]} (stream: one PATCH of the layer; chunked: PATCH x$(( (LAYER_BYTES + CHUNK_BYTES - 1) / CHUNK_BYTES )) of $CHUNK_BYTES bytes), PUT ?digest=, config, manifest ($PUSHES per server and mode)"
MEM_BEFORE_PUSH=$(wasm_memory)
echo "Worker wasm memory before the push: $MEM_BEFORE_PUSH bytes"
declare -A PUSH PULL HEADR
push() { # SERVER MODE I LAYER_INDEX
  local args=(--repo "$REPO" --tag "$TAG" --layer "${LAYERS[$4]}" --digest "${DIGESTS[$4]}" --mode "$2" --chunk "$CHUNK_BYTES" --timeout "$PUSH_TIMEOUT")
  case $1 in
    worker) args+=(--base "$WURL" --header "Authorization: Bearer $(worker_jwt "repository:$REPO:pull,push")");;
    registry) args+=(--base "$RURL");;
  esac
  PUSH[$1-$2-$3]=$(node "$LIB/oci-push.mjs" "${args[@]}") || die "[$1] $2 push $3 failed"
  echo "[$1] $2 push $3: $(json_field total_ms <<<"${PUSH[$1-$2-$3]}" | awk '{printf "%.1f s", $1/1000}'), PATCH times (ms): $(json_field chunks_ms <<<"${PUSH[$1-$2-$3]}" | tr -d '[]' | tr ',' '\n' | awk '{printf "%d ", $1}')"
}
n=0
for mi in "${!PUSH_MODES[@]}"; do
  m=${PUSH_MODES[$mi]}
  for i in $(seq 1 "$PUSHES"); do # alternating who goes first, so drift on the machine hits both alike
    li=$((mi * PUSHES + i - 1)); n=$((n + 1))
    if [ $((n % 2)) = 1 ]; then push worker "$m" "$i" "$li"; push registry "$m" "$i" "$li"; else push registry "$m" "$i" "$li"; push worker "$m" "$i" "$li"; fi
  done
done
MEM_AFTER_PUSH=$(wasm_memory)
echo "Worker wasm memory after the push: $MEM_AFTER_PUSH bytes"

# ---------------------------------------------------------------------------------------------
say "5. pull: GET the blob, 1 verified warm-up + $PULLS timed, interleaved"
pull() { # SERVER I
  local args=(--size "$LAYER_BYTES" --timeout "$PUSH_TIMEOUT") url
  case $1 in
    worker) url="$WURL/v2/$REPO/blobs/$DIGEST"; args+=(--header "Authorization: Bearer $(worker_jwt "repository:$REPO:pull")");;
    registry) url="$RURL/v2/$REPO/blobs/$DIGEST";;
  esac
  [ "$2" = 0 ] && args+=(--digest "$DIGEST")
  PULL[$1-$2]=$(node "$LIB/oci-pull.mjs" "${args[@]}" "$url") || die "[$1] pull $2 failed"
  echo "[$1] pull $2$([ "$2" = 0 ] && echo ' (warm-up, sha256 checked)'): ${PULL[$1-$2]}"
}
for i in $(seq 0 "$PULLS"); do
  if [ $((i % 2)) = 0 ]; then pull worker "$i"; pull registry "$i"; else pull registry "$i"; pull worker "$i"; fi
done
MEM_AFTER_PULL=$(wasm_memory)
echo "Worker wasm memory after the pull: $MEM_AFTER_PULL bytes"

# ---------------------------------------------------------------------------------------------
say "6. manifest HEAD by tag: $REQUESTS requests, concurrency $CONCURRENCY, keep-alive (after 200 warm-up), $ROUNDS rounds"
head_load() { # SERVER I
  local args=(--method HEAD --requests "$REQUESTS" --concurrency "$CONCURRENCY" --warmup 200 --header "Accept: $ACCEPT_MANIFEST") url
  case $1 in
    worker) url="$WURL/v2/$REPO/manifests/$TAG"; args+=(--header "Authorization: Bearer $(worker_jwt "repository:$REPO:pull")");;
    registry) url="$RURL/v2/$REPO/manifests/$TAG";;
  esac
  HEADR[$1-$2]=$(timeout 400 node "$LIB/http-bench.mjs" "${args[@]}" "$url") || die "load generator failed for $1 round $2"
  local ok; ok=$(json_field ok <<<"${HEADR[$1-$2]}")
  echo "[$1] round $2: ${HEADR[$1-$2]}"
  [ "$ok" = "$REQUESTS" ] || echo "WARNING: $1 round $2: only $ok of $REQUESTS answered 200: $(json_field statuses <<<"${HEADR[$1-$2]}")" >&2
}
for i in $(seq 1 "$ROUNDS"); do
  if [ $((i % 2)) = 1 ]; then head_load worker "$i"; head_load registry "$i"; else head_load registry "$i"; head_load worker "$i"; fi
done
MEM_END=$(wasm_memory)
RSS_HWM_KB=$(awk '/^VmHWM:/{print $2}' "/proc/$RPID/status" 2>/dev/null || echo 0)

# ---------------------------------------------------------------------------------------------
say "7. results"
# values of FIELD over runs FIRST..LAST of SERVER in the array named ARR, one per line
values() { # ARR KEY FIELD FIRST LAST   (KEY: SERVER, or SERVER-MODE for pushes)
  local -n arr=$1
  local i
  for i in $(seq "$4" "$5"); do json_field "$3" <<<"${arr[$2-$i]}"; done
}
median() { sort -g | awk '{a[NR]=$1} END{if(NR==0){print 0; exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m}'; }
fmt() { awk -v x="$1" -v d="${2:-1}" 'BEGIN{printf "%.*f", d, x}'; }
row() { # METRIC WORKER REGISTRY higher|lower
  local ratio
  ratio=$(awk -v w="$2" -v v="$3" -v k="$4" 'BEGIN{ if (k=="higher") r=(v>0)?w/v:0; else r=(w>0)?v/w:0; printf "%.2f", r }')
  printf '%-50s %12s %12s %8s\n' "$1" "$2" "$3" "$ratio"
}
chunk_median() { # SERVER MODE → median PATCH ms over every push
  local i
  for i in $(seq 1 "$PUSHES"); do json_field chunks_ms <<<"${PUSH[$1-$2-$i]}" | tr -d '[]' | tr ',' '\n'; done | median
}
mib() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}'; }
SIZE_LABEL=$(awk -v b="$LAYER_BYTES" 'BEGIN{ if (b % 1073741824 == 0) printf "%d GiB", b/1073741824; else printf "%.0f MiB", b/1048576 }')
CHUNK_LABEL=$(awk -v b="$CHUNK_BYTES" 'BEGIN{printf "%g MiB", b/1048576}')
echo "machine: $(nproc) cores, node $(node --version); Worker in workerd via miniflare/worker.mjs (local R2/DO), docker-registry $(docker-registry --version 2>/dev/null | awk '{print $NF}') (filesystem); client and servers share the machine"
echo "ratio: >1 means the Worker is better (worker/registry for rates, registry/worker for times)"
echo
printf '%-50s %12s %12s %8s\n' metric worker registry ratio
printf '%-50s %12s %12s %8s\n' ------ ------ -------- -----
for m in "${PUSH_MODES[@]}"; do
  case $m in
    stream) mlabel="streamed push (one PATCH)"; plabel="the PATCH of the whole layer";;
    chunked) mlabel="chunked push"; plabel="one PATCH of $CHUNK_LABEL, median";;
  esac
  row "$SIZE_LABEL $mlabel, median of $PUSHES (s)" \
    "$(fmt "$(values PUSH "worker-$m" total_ms 1 "$PUSHES" | median | awk '{print $1/1000}')" 2)" \
    "$(fmt "$(values PUSH "registry-$m" total_ms 1 "$PUSHES" | median | awk '{print $1/1000}')" 2)" lower
  row "  $plabel (ms)" "$(fmt "$(chunk_median worker "$m")" 0)" "$(fmt "$(chunk_median registry "$m")" 0)" lower
  row "  PUT ?digest= (finish the upload) (ms)" \
    "$(fmt "$(values PUSH "worker-$m" finalize_ms 1 "$PUSHES" | median)" 0)" "$(fmt "$(values PUSH "registry-$m" finalize_ms 1 "$PUSHES" | median)" 0)" lower
  row "  push throughput (MB/s)" \
    "$(fmt "$(values PUSH "worker-$m" mbps 1 "$PUSHES" | median)")" "$(fmt "$(values PUSH "registry-$m" mbps 1 "$PUSHES" | median)")" higher
done
row "$SIZE_LABEL blob GET, median of $PULLS (MB/s)" \
  "$(fmt "$(values PULL worker mbps 1 "$PULLS" | median)")" "$(fmt "$(values PULL registry mbps 1 "$PULLS" | median)")" higher
row "  time to first byte, median (ms)" \
  "$(fmt "$(values PULL worker ttfb_ms 1 "$PULLS" | median)" 2)" "$(fmt "$(values PULL registry ttfb_ms 1 "$PULLS" | median)" 2)" lower
row "manifest HEAD by tag, median of $ROUNDS (req/s)" \
  "$(fmt "$(values HEADR worker rps 1 "$ROUNDS" | median)")" "$(fmt "$(values HEADR registry rps 1 "$ROUNDS" | median)")" higher
row "  p50 latency, median (ms)" \
  "$(fmt "$(values HEADR worker p50_ms 1 "$ROUNDS" | median)" 2)" "$(fmt "$(values HEADR registry p50_ms 1 "$ROUNDS" | median)" 2)" lower
row "  p99 latency, median (ms)" \
  "$(fmt "$(values HEADR worker p99_ms 1 "$ROUNDS" | median)" 2)" "$(fmt "$(values HEADR registry p99_ms 1 "$ROUNDS" | median)" 2)" lower
echo "push: POST to manifest PUT. The Worker hashes a streamed PATCH natively (DigestStream) and a chunked upload in wasm"
echo "      (its SHA-256 state kept between requests); the bytes go to R2 in 10 MiB parts without entering wasm otherwise"
echo "pull: the Worker streams R2 to the client untouched; a chunked-upload blob is an R2 multipart object, which the"
echo "      local R2 simulator (miniflare) re-assembles part by part through JS streams: that, not the Worker, caps local pulls"
echo
echo "Worker wasm linear memory (high-water mark, GET /-/admin/stats; 128 MB isolate limit):"
printf '  before the push %s MiB, after the push %s MiB, after the pull %s MiB, at the end %s MiB\n' \
  "$(mib "$MEM_BEFORE_PUSH")" "$(mib "$MEM_AFTER_PUSH")" "$(mib "$MEM_AFTER_PULL")" "$(mib "$MEM_END")"
echo "  (for scale only, not comparable: docker-registry's peak RSS was $(awk -v k="$RSS_HWM_KB" 'BEGIN{printf "%.1f", k/1024}') MiB)"
echo
echo "Raw:"
for s in worker registry; do
  for m in "${PUSH_MODES[@]}"; do for i in $(seq 1 "$PUSHES"); do
    echo "  [$s] $m push $i: $(node -e 'const r=JSON.parse(process.argv[1]);const c=r.chunks_ms;console.log(`total ${(r.total_ms/1000).toFixed(2)} s = POST ${r.post_ms.toFixed(0)} ms + ${c.length} PATCH ${(c.reduce((a,b)=>a+b,0)/1000).toFixed(2)} s (min ${Math.min(...c).toFixed(0)}, max ${Math.max(...c).toFixed(0)} ms) + PUT ${r.finalize_ms.toFixed(0)} ms + config ${r.config_ms.toFixed(0)} ms + manifest ${r.manifest_ms.toFixed(0)} ms`)' "${PUSH[$s-$m-$i]}")"
  done; done
  echo "  [$s] pull MB/s: $(values PULL "$s" mbps 1 "$PULLS" | xargs -n1 printf '%.1f ')(warm-up $(fmt "$(json_field mbps <<<"${PULL[$s-0]}")"))"
  echo "  [$s] pull TTFB ms: $(values PULL "$s" ttfb_ms 1 "$PULLS" | xargs -n1 printf '%.2f ')"
  echo "  [$s] HEAD req/s: $(values HEADR "$s" rps 1 "$ROUNDS" | xargs -n1 printf '%.1f ')"
done
