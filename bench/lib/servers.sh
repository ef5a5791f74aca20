# Servers and clients shared by the pull-through benchmarks (bench/proxy.sh, bench/faults.sh).
# The caller sets ROOT, WORK, LOGS, ADMIN_TOKEN, JWT_SECRET, WRANGLER_DEV, VERDACCIO_BIN,
# REGISTRY_BIN and PACKAGES, and sources bench/lib/common.sh first. Sourcing it empties WORK.

# Settings inherited from `npm run` or the shell must not redirect the npm clients used here.
while read -r v; do unset "$v"; done < <(compgen -e | grep -i '^npm_config_' || true)
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

rm -rf "$WORK"
mkdir -p "$WORK" "$LOGS"
: > "$LOGS/npm.log"

USED_PORTS=" "
new_port() { # a free port not handed out before in this run
  local p
  while :; do
    p=$(free_port)
    case "$USED_PORTS" in *" $p "*) continue;; esac
    USED_PORTS+="$p "; echo "$p"; return
  done
}

# --- cleanup: every server runs in its own session (setsid), so each whole group is stopped.
PGIDS=()
stop_server() { # PGID: stops it and forgets it
  local keep=() pg
  stop_group "$1"
  for pg in "${PGIDS[@]}"; do [ "$pg" = "$1" ] || keep+=("$pg"); done
  PGIDS=("${keep[@]}")
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
  for pg in "${PGIDS[@]}"; do stop_group "$pg"; done
  if [ "$rc" != 0 ]; then
    for f in "$LOGS"/*.log; do
      [ -s "$f" ] && { echo "--- last lines of ${f#"$ROOT/"}" >&2; tail -n 25 "$f" >&2; }
    done
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Servers. Each start_* sets URL and PG (its process group) and logs to bench/work/proxy/logs/.
start_worker() { # NAME VAR:VALUE... (fresh state)
  local name=$1 port state; shift
  port=$(new_port); state="$WORK/state-$name"
  rm -rf "$state"
  local vars=(--var "ADMIN_TOKEN:$ADMIN_TOKEN" --var "JWT_SECRET:$JWT_SECRET")
  for v in "$@"; do vars+=(--var "$v"); done
  if [ "$WRANGLER_DEV" = 1 ]; then
    # CLOUDFLARE_CF_FETCH_ENABLED=false: miniflare would otherwise fetch workers.cloudflare.com/cf.json.
    EDGEREGISTRY_SKIP_BUILD=1 CLOUDFLARE_CF_FETCH_ENABLED=false setsid "$WRANGLER" dev --ip 127.0.0.1 --port "$port" \
      --persist-to "$state" "${vars[@]}" --show-interactive-dev-session=false --log-level warn \
      </dev/null >"$LOGS/worker-$name.log" 2>&1 &
  else
    setsid node "$ROOT/miniflare/worker.mjs" --port "$port" --persist "$state" "${vars[@]}" </dev/null >"$LOGS/worker-$name.log" 2>&1 &
  fi
  PG=$!; PGIDS+=("$PG"); URL="http://127.0.0.1:$port"
  wait_http "$URL/-/health" 120 "$PG" "the Worker ($name)"
  if [ "$WRANGLER_DEV" != 1 ]; then URL=$(worker_direct_url "$LOGS/worker-$name.log"); fi
}
start_plain_worker() { # NAME: the plain-JS Worker of bench/lib/r2sim in the same runtime (no wasm)
  local name=$1 port state
  port=$(new_port); state="$WORK/state-$name"
  rm -rf "$state"
  setsid node "$ROOT/miniflare/worker.mjs" --config "$ROOT/bench/lib/r2sim/wrangler.toml" --port "$port" --persist "$state" \
    </dev/null >"$LOGS/worker-$name.log" 2>&1 &
  PG=$!; PGIDS+=("$PG"); URL="http://127.0.0.1:$port"
  wait_http "$URL/const?n=1" 120 "$PG" "the plain-JS Worker ($name)"
  URL=$(worker_direct_url "$LOGS/worker-$name.log")
}
verdaccio_config() { # DIR PORT [UPLINK_URL]
  {
    printf '%s\n' 'storage: ./storage' 'auth:' '  htpasswd:' '    file: ./htpasswd' '    max_users: 100'
    if [ -n "${3:-}" ]; then
      printf '%s\n' 'uplinks:' '  origin:' "    url: $3/" '    maxage: 10m'
    else
      echo 'uplinks: {}'
    fi
    echo 'packages:'
    for p in "'@*/*'" "'**'"; do
      printf '%s\n' "  $p:" '    access: $all' '    publish: $authenticated'
      [ -n "${3:-}" ] && echo '    proxy: origin'
    done
    printf '%s\n' 'server:' '  keepAliveTimeout: 60' "listen: 127.0.0.1:$2" 'log: { type: stdout, format: pretty, level: warn }'
  } > "$1/config.yaml"
}
start_verdaccio() { # NAME [UPLINK_URL] (fresh storage)
  local dir="$WORK/$1" port; port=$(new_port)
  rm -rf "$dir"; mkdir -p "$dir"
  verdaccio_config "$dir" "$port" "${2:-}"
  (cd "$dir" && exec setsid node "$VERDACCIO_BIN" --config ./config.yaml) </dev/null >"$LOGS/$1.log" 2>&1 &
  PG=$!; PGIDS+=("$PG"); URL="http://127.0.0.1:$port"
  wait_http "$URL/-/ping" 60 "$PG" "verdaccio ($1)"
}
start_registry() { # NAME [REMOTE_URL] (fresh storage; proxy mode with a remote)
  local dir="$WORK/$1" port; port=$(new_port)
  rm -rf "$dir"; mkdir -p "$dir"
  {
    printf '%s\n' 'version: 0.1' 'log:' '  level: warn' '  accesslog:' '    disabled: true' 'storage:' '  filesystem:' \
      "    rootdirectory: $dir/data" 'http:' "  addr: 127.0.0.1:$port"
    [ -n "${2:-}" ] && printf '%s\n' 'proxy:' "  remoteurl: $2"
  } > "$dir/config.yml"
  setsid "$REGISTRY_BIN" serve "$dir/config.yml" </dev/null >"$LOGS/$1.log" 2>&1 &
  PG=$!; PGIDS+=("$PG"); URL="http://127.0.0.1:$port"
  wait_http "$URL/v2/" 60 "$PG" "docker-registry ($1)"
}
stats() { # WORKER_URL: the isolate's wasm memory high-water mark, bytes
  curl -fsS --max-time 30 "$1/-/admin/stats" -H "Authorization: Bearer $ADMIN_TOKEN" | json_field wasm_memory_bytes \
    || die "GET $1/-/admin/stats failed"
}
admin() { # WORKER_URL PATH JSON
  curl -fsS --max-time 30 -X POST "$1/-/admin/$2" -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$3"
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END{if(!NR){print "n/a";exit} m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }
median_s() { median "$(tr ' ' '\n' <<<"$1" | grep . | awk '{print $1/1000}' | tr '\n' ' ')"; }

# npm settings per mirror: own userconfig and caches, never ~/.npmrc; anonymous reads.
npm_install() { # NAME REGISTRY_URL PORT: one install into a fresh copy of the project; prints ms
  local name=$1 reg=$2 port=$3 P="$WORK/project-$1" cache="$WORK/npm-cache-$1"
  rm -rf "$P" "$cache"; cp -r "$WORK/fixture/project" "$P"
  printf 'registry=%s\n' "$reg" > "$WORK/npmrc-$name"
  echo "+ [$name] npm install ($reg)" >> "$LOGS/npm.log"
  local t0; t0=$(now_ms)
  (cd "$P" && timeout 300 npm --userconfig "$WORK/npmrc-$name" --cache "$cache" install --no-audit --no-fund \
    --ignore-scripts --loglevel=error) >> "$LOGS/npm.log" 2>&1 || die "[$name] npm install failed (see above)"
  local ms=$(( $(now_ms) - t0 ))
  local got; got=$(find "$P/node_modules" -mindepth 1 -maxdepth 1 -name 'bench-pkg-*' | wc -l)
  [ "$got" = "$PACKAGES" ] || die "[$name] install produced $got of $PACKAGES packages in node_modules"
  grep -q "127.0.0.1:$port/" "$P/package-lock.json" || die "[$name] package-lock.json does not resolve from $reg"
  echo "$ms"
}
