#!/usr/bin/env bash
# What the local R2 simulator costs on its own, for reading the OCI pull figures: a plain-JS
# Worker (bench/lib/r2sim/worker.mjs, no wasm) in the same runtime as the registry's Worker
# (miniflare/worker.mjs: wrangler's startWorker, miniflare's R2 simulator with the
# backpressure flag), its own listener, an upstream on loopback (bench/lib/r2sim/origin.mjs)
# serving BENCH_SIZE_MB MiB with a Content-Length. Measures, each BENCH_REPEAT times, MB/s
# and the CPU seconds all workerd processes of the Worker spent (user+sys from /proc, so a
# busy machine inflates the time but hardly the CPU):
#   pass-through of the upstream body (no R2);
#   one streamed put of it (sha256 given, as the registry's cold fill does);
#   a multipart upload of it in 48 MiB parts (as a chunked OCI push leaves a blob);
#   GET of the single-put object and of the multipart object (a warm pull; a hosted pull);
#   tee of the upstream body into the client and a put (a cold fill without the gate), as it
#   comes, with the client's branch re-read in 256 KiB pieces (the registry's gate does), and
#   with both branches re-read so (workerd's tee has no bound between its branches: see the
#   peak RSS);
# and how far the largest workerd process's RSS rose above where it was before each (sampled
# every 0.2 s; memory the runtime kept from an earlier step hides part of a later rise);
# then BENCH_SMALL_OPS sequential small operations of each kind (put, get, head, get of a
# missing key; 2 KB objects, as a registry's metadata), in ms and workerd CPU ms per operation.
# Production R2 is a different implementation: none of these figures says what it costs.
# Each step overwrites its one key, so the simulator keeps at most ~5x the size on disk;
# the state goes at exit.
# Usage: bash bench/r2sim.sh   (BENCH_SIZE_MB=512 BENCH_REPEAT=2 BENCH_PART_MB=48 BENCH_SMALL_OPS=200;
#   BENCH_SIZE_MB=0: the small operations only)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
SIZE_MB=${BENCH_SIZE_MB:-512}
REPEAT=${BENCH_REPEAT:-2}
PART_MB=${BENCH_PART_MB:-48}
SMALL_OPS=${BENCH_SMALL_OPS:-200}
WORK="$ROOT/bench/work/r2sim"
BENCH_NAME=bench/r2sim.sh
source "$ROOT/bench/lib/common.sh"
rm -rf "$WORK"; mkdir -p "$WORK"
PGS=()
SAMPLER=
trap '[ -n "$SAMPLER" ] && { kill "$SAMPLER" 2>/dev/null || true; }; for pg in "${PGS[@]}"; do stop_group "$pg"; done; rm -rf "$WORK/state"' EXIT

oport=$(free_port)
setsid node "$ROOT/bench/lib/r2sim/origin.mjs" "$oport" </dev/null >"$WORK/origin.log" 2>&1 &
PGS+=($!)
wport=$(free_port)
setsid node "$ROOT/miniflare/worker.mjs" --config "$ROOT/bench/lib/r2sim/wrangler.toml" --port "$wport" --persist "$WORK/state" \
  </dev/null >"$WORK/worker.log" 2>&1 &
WPG=$!; PGS+=("$WPG")
wait_http "http://127.0.0.1:$wport/" 120 "$WPG" "the r2sim Worker"
W=$(grep -o 'worker.mjs: direct [^ ]*' "$WORK/worker.log" | head -1 | awk '{print $3}'); W=${W%/}
N=$((SIZE_MB * 1024 * 1024))
UP="http://127.0.0.1:$oport/blob?size=$N"
SHA=$(curl -fsS "http://127.0.0.1:$oport/sha?size=$N")
enc() { node -e 'console.log(encodeURIComponent(process.argv[1]))' "$1"; }
U=$(enc "$UP")

cpu() { local t=0 p; for p in $(pgrep -g "$WPG" workerd); do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
rss() { local m=0 p r; for p in $(pgrep -g "$WPG" workerd); do r=$(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0); [ "${r:-0}" -gt "$m" ] && m=$r; done; echo "$m"; }
sampler() { local peak=0 r; while :; do r=$(rss); [ "$r" -gt "$peak" ] && { peak=$r; echo "$peak" > "$WORK/peak"; }; sleep 0.2; done; }
declare -A MBPS CPU PEAK
start_peak() { BASE=$(rss); echo "$BASE" > "$WORK/peak"; sampler & SAMPLER=$!; }
record() { # NAME SECONDS CPU_TICKS
  kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true
  MBPS[$1]+="$(awk -v n="$N" -v s="$2" 'BEGIN{printf "%.1f", n/1e6/s}') "
  CPU[$1]+="$(awk -v t="$3" 'BEGIN{printf "%.2f", t/100}') "
  PEAK[$1]+="+$(( ($(cat "$WORK/peak") - BASE) / 1024 )) "
}
download() { # NAME PATH: GET streamed to nowhere
  [ -n "${3:-}" ] && { curl -fsS -o /dev/null "$W/delete?k=$3" || die "delete $3 failed"; }
  local c0 out; c0=$(cpu); start_peak
  out=$(curl -fsS --max-time 900 -o /dev/null -w '%{size_download} %{time_total}' "$W$2") || die "$1: GET $2 failed"
  read -r bytes secs <<<"$out"
  [ "$bytes" = "$N" ] || die "$1: $bytes bytes"
  # a tee's put goes on after the client's last byte: wait for it
  if [ -n "${3:-}" ]; then
    for _ in $(seq 3000); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$W/head?k=$3")" = 200 ] && break; sleep 0.2; done
  fi
  record "$1" "$secs" $(( $(cpu) - c0 ))
}
upload() { # NAME PATH: a put driven by the Worker
  local c0 t0 ms; c0=$(cpu); t0=$(now_ms); start_peak
  curl -fsS --max-time 900 "$W$2" >/dev/null || die "$1: $2 failed"
  record "$1" "$(awk -v ms=$(( $(now_ms) - t0 )) 'BEGIN{print ms/1000}')" $(( $(cpu) - c0 ))
}

if [ "$SIZE_MB" -gt 0 ]; then
say "R2 simulator, $SIZE_MB MiB, $REPEAT times each (Worker on $W, upstream on port $oport)"
for i in $(seq 1 "$REPEAT"); do
  download pass "/pass?u=$U"
  upload put "/put?k=single&u=$U&sha=$SHA"
  upload multipart "/mput?k=multi&u=$U&size=$N&part=$((PART_MB * 1024 * 1024))"
  download "get single-put" "/get?k=single"
  download "get multipart" "/get?k=multi"
  download "tee to client + put" "/tee?k=tee&u=$U&sha=$SHA" "tee"
  download "tee, client in pieces" "/tee?k=teep&u=$U&sha=$SHA&client=pieces" "teep"
  download "tee, both in pieces" "/tee?k=teepp&u=$U&sha=$SHA&client=pieces&store=pieces" "teepp"
  echo "round $i done"
done
echo
printf '%-24s %-20s %-26s %s\n' "operation ($SIZE_MB MiB)" "MB/s (each run)" "workerd CPU s (each run)" "workerd RSS growth, MiB"
for k in pass put multipart "get single-put" "get multipart" "tee to client + put" "tee, client in pieces" "tee, both in pieces"; do
  printf '%-24s %-20s %-26s %s\n' "$k" "${MBPS[$k]}" "${CPU[$k]}" "${PEAK[$k]}"
done
echo "(put and multipart: MB/s of the whole upload; tee: the client's MB/s, CPU including the put that may finish after it)"
fi

say "small operations: $SMALL_OPS of each, one after the other, 2 KB objects"
printf '%-24s %-14s %s\n' "operation" "ms per op" "workerd CPU ms per op"
for op in put get head miss; do
  c0=$(cpu)
  out=$(curl -fsS --max-time 600 "$W/small?op=$op&n=$SMALL_OPS&size=2000") || die "small $op failed"
  ticks=$(( $(cpu) - c0 ))
  printf '%-24s %-14s %s\n' "$op" "$(awk -v ms="$(json_field ms <<<"$out")" -v n="$SMALL_OPS" 'BEGIN{printf "%.2f", ms/n}')" \
    "$(awk -v t="$ticks" -v n="$SMALL_OPS" 'BEGIN{printf "%.2f", t*10/n}')"
done
echo "(miss: a get of a key that is not there)"
