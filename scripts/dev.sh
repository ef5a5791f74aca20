#!/usr/bin/env bash
# Runs the registry locally: installs what is missing, builds, and starts `wrangler dev` on
# 127.0.0.1:8787 with local R2, KV and Durable Objects persisted under .wrangler/.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
PORT="${PORT:-8787}"

# Local secrets live in .dev.vars (git-ignored), made once with random values.
if [ ! -f .dev.vars ]; then
  {
    echo "ADMIN_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
    echo "JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
  } > .dev.vars
  chmod 600 .dev.vars
fi
ADMIN_TOKEN=$(sed -n 's/^ADMIN_TOKEN=//p' .dev.vars)
URL="http://127.0.0.1:$PORT"
# Locally the registry mirrors the public registries unless told otherwise.
NPM_UPSTREAMS=${NPM_UPSTREAMS:-npmjs}
OCI_UPSTREAMS=${OCI_UPSTREAMS:-dockerhub}
PYPI_UPSTREAMS=${PYPI_UPSTREAMS:-pypi}
CARGO_UPSTREAMS=${CARGO_UPSTREAMS:-crates-io}

cat <<EOT

edgeregistry will listen on $URL  (data in .wrangler/, secrets in .dev.vars)

  admin token:  $ADMIN_TOKEN
  create a user:  curl -X POST $URL/-/admin/users -H "Authorization: Bearer \$ADMIN_TOKEN" \\
                    -d '{"name":"alice","password":"correct-horse"}'

  npm:   npm config set registry $URL/npm/
         npm login --auth-type=legacy --registry $URL/npm/
         (pnpm and yarn 1 read the same .npmrc; yarn 4: npmRegistryServer: "$URL/npm",
          unsafeHttpWhitelist: ["127.0.0.1"])
  OCI:   crane auth login 127.0.0.1:$PORT -u alice -p correct-horse --insecure
         podman login --tls-verify=false 127.0.0.1:$PORT ; images are 127.0.0.1:$PORT/REPO:TAG
  PyPI:  pip install --index-url $URL/pypi/simple/ PKG   (uv: UV_INDEX_URL=$URL/pypi/simple/)
         twine upload --repository-url $URL/pypi/ -u __token__ -p TOKEN dist/*
         (token: the admin API with {"user":"alice","protocol":"pypi"}; uv publish --publish-url $URL/pypi/)
  Cargo: in .cargo/config.toml (token: the admin API with {"user":"alice","protocol":"cargo"}):
           [registries.edge]
           index = "sparse+$URL/cargo/"
           credential-provider = ["cargo:token"]
           [source.crates-io]        # optional: crates.io's crates through the mirror
           replace-with = "edge"
         cargo login --registry edge TOKEN ; cargo publish --registry edge

  pull-through cache: npm packages not hosted here come from $NPM_UPSTREAMS, images
  from $OCI_UPSTREAMS (e.g. 127.0.0.1:$PORT/alpine:3 is Docker Hub's library/alpine),
  Python projects from $PYPI_UPSTREAMS, crates from $CARGO_UPSTREAMS; set NPM_UPSTREAMS /
  OCI_UPSTREAMS / PYPI_UPSTREAMS / CARGO_UPSTREAMS (JSON, see README) or "none" to change that.

EOT
upstream_vars=()
[ "$NPM_UPSTREAMS" != none ] && upstream_vars+=(--var "NPM_UPSTREAMS:$NPM_UPSTREAMS")
[ "$OCI_UPSTREAMS" != none ] && upstream_vars+=(--var "OCI_UPSTREAMS:$OCI_UPSTREAMS")
[ "$PYPI_UPSTREAMS" != none ] && upstream_vars+=(--var "PYPI_UPSTREAMS:$PYPI_UPSTREAMS")
[ "$CARGO_UPSTREAMS" != none ] && upstream_vars+=(--var "CARGO_UPSTREAMS:$CARGO_UPSTREAMS")
exec "$WRANGLER" dev --ip 127.0.0.1 --port "$PORT" --persist-to .wrangler/state --show-interactive-dev-session=false \
  "${upstream_vars[@]}"
