# Helpers the benchmark scripts share. Source it after scripts/env.sh; set BENCH_NAME first
# (it prefixes error messages).

say() { printf '\n== %s\n' "$*"; }
die() { printf '\n%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
# One field of a JSON document on stdin (objects are printed as JSON); fails when absent.
json_field() { node -e 'let d="";process.stdin.on("data",c=>d+=c).on("end",()=>{const v=JSON.parse(d)[process.argv[1]];if(v===undefined)process.exit(1);console.log(typeof v==="object"?JSON.stringify(v):v)})' "$1"; }

# Servers run in their own session (setsid): a whole group is stopped, politely first.
stop_group() { # PGID
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 -- "-$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}

wait_http() { # URL SECONDS PGID NAME
  local deadline=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    kill -0 -- "-$3" 2>/dev/null || die "$4 exited before answering $1"
    sleep 0.25
  done
  die "$4 did not answer $1 within $2 s"
}

# The Worker's own listener, as miniflare/worker.mjs prints it (`worker.mjs: direct URL`):
# the benchmarks talk to it, not to the dev proxy wrangler puts in front (a second workerd
# that relays every request and does not exist in production). The tests do the same.
worker_direct_url() { # LOG
  local u
  u=$(grep -o 'worker.mjs: direct [^ ]*' "$1" | head -n 1 | cut -d' ' -f3)
  [ -n "$u" ] || die "no 'worker.mjs: direct' line in $1"
  echo "${u%/}"
}

# Installs what is missing and builds the Worker when src/ or js/ is newer than the build
# (BENCH_SKIP_BUILD=1: use build/worker as it is).
ensure_worker_built() {
  if [ "${BENCH_SKIP_BUILD:-}" = 1 ] && [ -f build/worker/shim.mjs ]; then
    echo "BENCH_SKIP_BUILD=1: using build/worker as it is"
    return
  fi
  bash scripts/setup.sh
  if [ -f build/worker/shim.mjs ] && [ -z "$(find src js Cargo.toml Cargo.lock -newer build/worker/shim.mjs -print -quit)" ]; then
    echo "build/worker is newer than src/, js/, Cargo.toml and Cargo.lock: not rebuilding"
  else
    bash scripts/build-worker.sh
  fi
}

# The results table: one row per metric, the Worker first, and the ratio (>1: the Worker is
# better; other/worker for times and sizes, worker/other for rates).
row() { # METRIC WORKER OTHER higher|lower
  local ratio
  ratio=$(awk -v w="$2" -v v="$3" -v k="$4" 'BEGIN{ if (k=="higher") r=(v>0)?w/v:0; else r=(w>0)?v/w:0; printf "%.2f", r }')
  printf '%-52s %12s %12s %8s\n' "$1" "$2" "$3" "$ratio"
}
head_row() { printf '%-52s %12s %12s %8s\n' "$1" worker "$2" ratio; printf '%-52s %12s %12s %8s\n' ------ ------ "${2//?/-}" -----; }
group_cpu_ticks() { # PGID: user+system CPU ticks (1/100 s) of the process group's live processes
  local t=0 p; for p in $(pgrep -g "$1"); do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
mib() { awk -v x="$1" 'BEGIN{printf "%.1f", x/1048576}'; }
