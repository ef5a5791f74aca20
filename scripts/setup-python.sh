#!/usr/bin/env bash
# The Python clients and peer servers of the PyPI tests and benchmark, pinned, from PyPI, in
# one virtual environment ($PYPI_TOOLS, default /opt/pypi-tools; pip's cache ~/.cache/pip):
# pip, twine, uv, poetry (publish), build and wheel (test packages), pypiserver with passlib
# (a hosted peer and a local origin) and devpi-server/devpi-client (a caching peer).
# Idempotent: a stamp records the pins, so a run with nothing to do costs a file compare.
# Called by scripts/setup.sh; `bash scripts/setup-python.sh` alone works too.
set -euo pipefail
source "$(dirname "$0")/env.sh"

PINS=(
  pip==26.3 twine==7.0.0 uv==0.13.9 poetry==2.5.1 build==1.6.1 wheel==0.48.0
  pypiserver==2.4.2 passlib==1.7.4 devpi-server==6.20.3 devpi-client==7.3.0
)
stamp="$PYPI_TOOLS/.pins"
if [ -x "$PYPI_TOOLS/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "${PINS[*]}" ]; then
  exit 0
fi
printf '\n== %s\n' "Python clients in $PYPI_TOOLS: ${PINS[*]}"
t0=$(date +%s)
python=$(command -v python3) || { echo "python3 is missing (scripts/setup.sh installs it)" >&2; exit 1; }
# Debian's python3 needs python3-venv for `-m venv`.
if ! "$python" -m venv --help >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
fi
rm -rf "$PYPI_TOOLS"
"$python" -m venv "$PYPI_TOOLS"
# Only PyPI: no local wheel folders or mirrors from the machine's pip settings.
env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
  "$PYPI_TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
printf '%s' "${PINS[*]}" > "$stamp"
echo "Python clients installed in $(( $(date +%s) - t0 )) s"
