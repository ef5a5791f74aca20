#!/usr/bin/env bash
# PyPI benchmark: edgeregistry (the Worker in workerd, local R2/KV/Durable Objects) side by
# side with devpi-server (the usual caching PyPI mirror) and pypiserver (a hosted index), all
# on 127.0.0.1, in one run:
#   1. origin: pypiserver (fallback to pypi.org off) serving the wheels of ~50 public projects
#      and their dependencies (bench/lib/pypi-requirements.txt), downloaded from PyPI once into
#      bench/work/pypi-packages/ and kept between runs; and a second pypiserver with one project
#      of BENCH_BIG_FILES files (small generated sdists) whose simple page is the biggest page;
#   2. mirrors, for each client (pip, then uv), BENCH_ROUNDS rounds with both mirrors fresh:
#      the Worker (PYPI_UPSTREAMS = the origin) and devpi-server (a mirror index of the
#      origin). A cold install of the whole requirement set through each, then BENCH_INSTALLS
#      warm installs through each; every install with no client cache, into a fresh --target;
#   3. hosted: one project with BENCH_HOSTED_VERSIONS versions (wheel + sdist each) uploaded
#      with twine to the Worker and put into pypiserver; its project page (HTML) fetched
#      BENCH_REQUESTS times at concurrency 16 from each (bench/lib/http-bench.mjs);
#   4. the big page through a fresh Worker, cold then warm, with its wasm memory high-water
#      mark (GET /-/admin/stats) before and after;
#   5. prints raw figures and ratios. No timing assertions: exits 0 when every step worked.
# All servers are stopped on exit, even on failure. Everything lives under bench/work/pypi/.
#
# Usage: bash bench/pypi.sh
#   BENCH_ROUNDS=1 BENCH_INSTALLS=2 BENCH_REQUESTS=2000 BENCH_HOSTED_VERSIONS=20 BENCH_BIG_FILES=20000
#   BENCH_SKIP_BUILD=1  use build/worker as it is (no setup.sh, no rebuild)
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"

ROUNDS=${BENCH_ROUNDS:-1}
INSTALLS=${BENCH_INSTALLS:-2}
REQUESTS=${BENCH_REQUESTS:-2000}
HOSTED_VERSIONS=${BENCH_HOSTED_VERSIONS:-20}
BIG_FILES=${BENCH_BIG_FILES:-20000}
WRANGLER_DEV=0
TTL_SECONDS=600
WORK="$ROOT/bench/work/pypi"
PACKAGES_DIR="$ROOT/bench/work/pypi-packages"
LIB="$ROOT/bench/lib"
LOGS="$WORK/logs"
REQUIREMENTS="$LIB/pypi-requirements.txt"
BIG=bench-big
HOSTED=bench-hosted
PY="$PYPI_TOOLS/bin"
ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
JWT_SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')

BENCH_NAME=bench/pypi.sh
source "$ROOT/bench/lib/common.sh"
source "$ROOT/bench/lib/servers.sh"
# The Python clients read only what this script gives them.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(PIP_|UV_|TWINE_)' || true)
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 UV_NO_CONFIG=1 UV_NO_PROGRESS=1 \
  UV_PYTHON_DOWNLOADS=never PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring

# ---------------------------------------------------------------------------------------------
say "1. build, clients, origin"
ensure_worker_built
bash scripts/setup-python.sh
if [ ! -f "$PACKAGES_DIR/.complete" ] || ! cmp -s "$REQUIREMENTS" "$PACKAGES_DIR/.complete"; then
  echo "downloading the wheels of bench/lib/pypi-requirements.txt from PyPI once (kept in $PACKAGES_DIR)"
  rm -rf "$PACKAGES_DIR"; mkdir -p "$PACKAGES_DIR"
  "$PY/python" -m pip download --quiet --only-binary :all: --dest "$PACKAGES_DIR" -r "$REQUIREMENTS" \
    || die "pip download from PyPI failed"
  cp "$REQUIREMENTS" "$PACKAGES_DIR/.complete"
fi
NWHEELS=$(find "$PACKAGES_DIR" -name '*.whl' | wc -l)
ORIGIN_DIR="$WORK/origin-packages"
mkdir -p "$ORIGIN_DIR"
cp "$PACKAGES_DIR"/*.whl "$ORIGIN_DIR/"
# The big project: BIG_FILES tiny sdists, in an origin of its own (pypiserver scans its whole
# folder for every page, so 20,000 files beside the wheels made every page slow enough for
# devpi to give up with 502s).
BIG_DIR="$WORK/big-packages"
rm -rf "$BIG_DIR"; mkdir -p "$BIG_DIR"
"$PY/python" - "$BIG_DIR" "$BIG" "$BIG_FILES" <<'EOF'
import io, os, sys, tarfile
folder, name, count = sys.argv[1], sys.argv[2].replace("-", "_"), int(sys.argv[3])
for i in range(count):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.{i}\n".encode()
        info = tarfile.TarInfo(f"{name}-0.0.{i}/PKG-INFO"); info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with open(os.path.join(folder, f"{name}-0.0.{i}.tar.gz"), "wb") as f:
        f.write(buf.getvalue())
EOF
start_pypiserver() { # NAME DIR: pypiserver on DIR, fallback off, uploads as bench/bench-password
  local port; port=$(new_port)
  "$PY/python" -c "from passlib.apache import HtpasswdFile as H; h=H('$WORK/htpasswd', new=True); h.set_password('bench', 'bench-password'); h.save()"
  setsid "$PY/pypi-server" run --host 127.0.0.1 --port "$port" --authenticate update --passwords "$WORK/htpasswd" \
    --disable-fallback --hash-algo sha256 --log-file "$LOGS/$1.log" "$2" </dev/null >>"$LOGS/$1.log" 2>&1 &
  PG=$!; PGIDS+=("$PG"); URL="http://127.0.0.1:$port"
  wait_http "$URL/simple/" 60 "$PG" "pypiserver ($1)"
}
start_devpi() { # NAME ORIGIN_SIMPLE_URL: a fresh devpi-server with a mirror index root/origin
  local dir="$WORK/$1" port; port=$(new_port)
  rm -rf "$dir"; mkdir -p "$dir"
  "$PY/devpi-init" --serverdir "$dir/server" --no-root-pypi >>"$LOGS/$1.log" 2>&1 || die "devpi-init failed"
  setsid "$PY/devpi-server" --serverdir "$dir/server" --host 127.0.0.1 --port "$port" </dev/null >>"$LOGS/$1.log" 2>&1 &
  PG=$!; PGIDS+=("$PG"); URL="http://127.0.0.1:$port"
  wait_http "$URL/+api" 60 "$PG" "devpi-server ($1)"
  local c=(--clientdir "$dir/client")
  { "$PY/devpi" use "${c[@]}" "$URL" && "$PY/devpi" login "${c[@]}" root --password '' \
      && "$PY/devpi" index "${c[@]}" -c root/origin type=mirror "mirror_url=$2"; } >>"$LOGS/$1.log" 2>&1 \
    || die "devpi: creating the mirror index failed"
}
start_pypiserver origin "$ORIGIN_DIR"; ORIGIN=$URL
start_pypiserver big-origin "$BIG_DIR"; BIG_ORIGIN=$URL
BIG_BYTES=$(curl -fsS --max-time 300 -o /dev/null -w '%{size_download}' "$BIG_ORIGIN/simple/$BIG/") || die "the origin does not serve $BIG"
echo "origin pypiserver on $ORIGIN: $NWHEELS wheels of $(grep -c . "$REQUIREMENTS") requirements; $BIG on $BIG_ORIGIN: page of $BIG_BYTES bytes"

# One install from the origin: proves the set resolves from it alone, and warms the OS caches.
install() { # NAME CLIENT SIMPLE_URL: one install into a fresh --target; prints ms
  local name=$1 client=$2 index=$3 target="$WORK/target-$1"
  rm -rf "$target"
  echo "+ [$name] $client install ($index)" >> "$LOGS/install.log"
  local t0; t0=$(now_ms)
  if [ "$client" = uv ]; then
    timeout 600 "$PY/uv" pip install --no-cache --python "$PY/python" --index-url "$index" --target "$target" \
      --only-binary :all: -r "$REQUIREMENTS" >> "$LOGS/install.log" 2>&1 || die "[$name] uv pip install failed (see logs/install.log)"
  else
    timeout 600 "$PY/python" -m pip install --no-cache-dir --index-url "$index" --target "$target" \
      --only-binary :all: -r "$REQUIREMENTS" >> "$LOGS/install.log" 2>&1 || die "[$name] pip install failed (see logs/install.log)"
  fi
  local ms=$(( $(now_ms) - t0 ))
  local got; got=$(find "$target" -maxdepth 1 -name '*.dist-info' | wc -l)
  [ "$got" -ge "$NWHEELS" ] || die "[$name] installed $got distributions, expected $NWHEELS"
  echo "$ms"
}
warm_pip=$(install warmup pip "$ORIGIN/simple/"); warm_uv=$(install warmup uv "$ORIGIN/simple/")
echo "warm-up from the origin: pip $warm_pip ms, uv $warm_uv ms"

# ---------------------------------------------------------------------------------------------
say "2. install of $NWHEELS wheels through each mirror, per client: $ROUNDS rounds of 1 cold + $INSTALLS warm"
UP="{\"upstreams\":[{\"id\":\"origin\",\"url\":\"$ORIGIN/simple\"}],\"cache\":{\"defaultTtlSeconds\":$TTL_SECONDS}}"
declare -A COLD WARM
for k in pip-worker pip-devpi uv-worker uv-devpi; do COLD[$k]=""; WARM[$k]=""; done
MEM_INSTALL=()
for client in pip uv; do
  for r in $(seq 1 "$ROUNDS"); do
    start_worker "$client" "PYPI_UPSTREAMS:$UP"; W_URL=$URL; W_PG=$PG
    start_devpi "devpi-$client" "$ORIGIN/simple/"; D_URL=$URL; D_PG=$PG
    order=(worker devpi); [ $((r % 2)) = 0 ] && order=(devpi worker)
    for i in $(seq 0 "$INSTALLS"); do
      for m in "${order[@]}"; do
        if [ "$m" = worker ]; then ms=$(install "$client-worker" "$client" "$W_URL/pypi/simple/")
        else ms=$(install "$client-devpi" "$client" "$D_URL/root/origin/+simple/"); fi
        if [ "$i" = 0 ]; then COLD[$client-$m]+="$ms "; kind=cold; else WARM[$client-$m]+="$ms "; kind="warm $i"; fi
        echo "$client round $r [$m] $kind: $ms ms"
      done
    done
    MEM_INSTALL+=("$client: $(stats "$W_URL")")
    stop_server "$W_PG"; stop_server "$D_PG"
  done
done

# ---------------------------------------------------------------------------------------------
say "3. hosted: the project page of $HOSTED ($HOSTED_VERSIONS versions), GET req/s"
start_worker hosted; W_URL=$URL; W_PG=$PG
admin "$W_URL" users '{"name":"bench","password":"bench-password"}' >/dev/null || die "admin: creating the user failed"
WTOKEN=$(admin "$W_URL" tokens '{"user":"bench","protocol":"pypi"}' | json_field token) || die "admin: creating the token failed"
HOSTED_DIR="$WORK/hosted-packages"; mkdir -p "$HOSTED_DIR"
for v in $(seq 1 "$HOSTED_VERSIONS"); do
  p="$WORK/hosted-src/$v"; mkdir -p "$p/bench_hosted"
  printf '[build-system]\nrequires = ["poetry-core>=2"]\nbuild-backend = "poetry.core.masonry.api"\n[project]\nname = "%s"\nversion = "1.0.%s"\ndescription = "bench"\n' \
    "$HOSTED" "$v" > "$p/pyproject.toml"
  echo "VERSION = '1.0.$v'" > "$p/bench_hosted/__init__.py"
  "$PY/python" -m build --no-isolation --outdir "$HOSTED_DIR" "$p" >> "$LOGS/build.log" 2>&1 || die "building $HOSTED 1.0.$v failed"
done
"$PY/twine" upload --non-interactive --disable-progress-bar --repository-url "$W_URL/pypi/legacy/" -u __token__ -p "$WTOKEN" \
  "$HOSTED_DIR"/* >> "$LOGS/upload.log" 2>&1 || die "twine upload to the Worker failed (see logs/upload.log)"
start_pypiserver hosted "$HOSTED_DIR"; P_URL=$URL; P_PG=$PG
declare -A RPS P50
for m in worker pypiserver; do
  if [ "$m" = worker ]; then page="$W_URL/pypi/simple/$HOSTED/"; else page="$P_URL/simple/$HOSTED/"; fi
  files=$(curl -fsS --max-time 30 -H 'Accept: text/html' "$page" | grep -c '<a ') || die "[$m] GET $page failed"
  [ "$files" = $((HOSTED_VERSIONS * 2)) ] || die "[$m] $page lists $files files, expected $((HOSTED_VERSIONS * 2))"
  res=$(node "$LIB/http-bench.mjs" --requests "$REQUESTS" --concurrency 16 --warmup 200 --header 'Accept: text/html' "$page") \
    || die "[$m] http-bench failed"
  RPS[$m]=$(json_field rps <<<"$res"); P50[$m]=$(json_field p50_ms <<<"$res")
  echo "[$m] $page: $res"
done
stop_server "$W_PG"; stop_server "$P_PG"

# ---------------------------------------------------------------------------------------------
say "4. the biggest page ($BIG, $BIG_FILES files, $BIG_BYTES bytes at the origin) through a fresh Worker"
BIG_UP="{\"upstreams\":[{\"id\":\"origin\",\"url\":\"$BIG_ORIGIN/simple\"}],\"cache\":{\"defaultTtlSeconds\":$TTL_SECONDS}}"
start_worker big "PYPI_UPSTREAMS:$BIG_UP"; W_URL=$URL; W_PG=$PG
declare -A BIGS MEM_BIG
MEM_BIG[before]=$(stats "$W_URL")
for kind in cold warm; do
  out=$(curl -sS --max-time 300 -o /dev/null -w '%{http_code} %{size_download} %{time_total}' -H 'Accept: text/html' "$W_URL/pypi/simple/$BIG/") \
    || die "GET of the big page failed"
  read -r code bytes secs <<<"$out"
  [ "$code" = 200 ] || die "the big page: HTTP $code"
  BIGS[$kind]=$secs; MEM_BIG[$kind]=$(stats "$W_URL")
  echo "[worker] $kind: $secs s, $bytes bytes; wasm memory after it: ${MEM_BIG[$kind]} bytes"
done
stop_server "$W_PG"

# ---------------------------------------------------------------------------------------------
say "5. results"
echo "machine: $(nproc) cores; $("$PY/pip" --version | awk '{print "pip", $2}'), $("$PY/uv" --version), $("$PY/devpi-server" --version 2>/dev/null | head -1 | awk '{print "devpi-server", $NF}'), pypiserver $("$PY/python" -c 'import pypiserver; print(pypiserver.__version__)');"
echo "Worker in workerd via wrangler startWorker (miniflare/worker.mjs), local R2/KV/DO; origin, mirrors and clients share the machine"
echo "ratio: >1 means the Worker is better (other/worker for times, worker/other for rates)"
echo
head_row "mirror of a local pypiserver origin" devpi
for client in pip uv; do
  row "$client install x$NWHEELS, cold mirror, median of $ROUNDS (s)" "$(median_s "${COLD[$client-worker]}")" "$(median_s "${COLD[$client-devpi]}")" lower
  row "$client install x$NWHEELS, warm mirror, median of $((ROUNDS * INSTALLS)) (s)" "$(median_s "${WARM[$client-worker]}")" "$(median_s "${WARM[$client-devpi]}")" lower
done
echo
head_row "hosted" pypiserver
row "project page, $((HOSTED_VERSIONS * 2)) files, c=16 (req/s)" "${RPS[worker]}" "${RPS[pypiserver]}" higher
row "  median latency (ms)" "${P50[worker]}" "${P50[pypiserver]}" lower
echo
echo "Worker wasm memory high-water mark (GET /-/admin/stats):"
echo "  $BIG page ($BIG_FILES files, $BIG_BYTES bytes at the origin): before ${MEM_BIG[before]}, after cold ${MEM_BIG[cold]}," \
  "after warm ${MEM_BIG[warm]} bytes ($(mib "${MEM_BIG[before]}") / $(mib "${MEM_BIG[cold]}") / $(mib "${MEM_BIG[warm]}") MiB);" \
  "cold $(awk -v x="${BIGS[cold]}" 'BEGIN{printf "%.2f", x}') s, warm $(awk -v x="${BIGS[warm]}" 'BEGIN{printf "%.2f", x}') s"
echo "  after the install rounds: ${MEM_INSTALL[*]} bytes"
echo
echo "Raw (installs in ms, each with no client cache into a fresh --target):"
for k in pip-worker pip-devpi uv-worker uv-devpi; do echo "  $k: cold ${COLD[$k]}| warm ${WARM[$k]}"; done
