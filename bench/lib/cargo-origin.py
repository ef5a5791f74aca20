"""Builds a static sparse-registry tree of the registry crates a Cargo.lock pins (stdlib only).

    python3 cargo-origin.py CARGO_LOCK CRATE_CACHE_DIR OUT

CRATE_CACHE_DIR holds `{name}-{version}.crate` files (a CARGO_HOME's registry/cache/... after
`cargo fetch`); each is checked against the lockfile's checksum and copied to
OUT/api/v1/crates/{name}/{version}/download, the path both cargo (a `dl` without markers) and
crates-io-proxy (`--upstream-url`) download from. Each crate's index file is fetched once from
https://index.crates.io and cut down to the versions the lockfile pins, so every line of the
tree has its file (the Cargo book, "Registry Index"). config.json is left to the server's
starter, which knows the port.
"""

import hashlib
import json
import os
import re
import shutil
import sys
import urllib.request

LOCK, CACHE, OUT = sys.argv[1], sys.argv[2], sys.argv[3]


def index_path(name):
    n = name.lower()
    if len(n) <= 2:
        return f"{len(n)}/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[:2]}/{n[2:4]}/{n}"


lock = open(LOCK).read()
pinned = re.findall(r'name = "([^"]+)"\nversion = "([^"]+)"\nsource = "registry\+[^"]+"\nchecksum = "([0-9a-f]+)"', lock)
versions = {}
for name, version, checksum in pinned:
    src = os.path.join(CACHE, f"{name}-{version}.crate")
    data = open(src, "rb").read()
    if hashlib.sha256(data).hexdigest() != checksum:
        sys.exit(f"{src}: checksum differs from Cargo.lock")
    dst = os.path.join(OUT, "api/v1/crates", name, version, "download")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)
    versions.setdefault(name, set()).add(version)

for name, kept in versions.items():
    request = urllib.request.Request(f"https://index.crates.io/{index_path(name)}", headers={"User-Agent": "edgeregistry-bench"})
    with urllib.request.urlopen(request, timeout=60) as r:
        lines = r.read().decode().splitlines()
    mine = [l for l in lines if l.strip() and json.loads(l).get("vers") in kept]
    if len(mine) != len(kept):
        sys.exit(f"{name}: the index has {len(mine)} of the {len(kept)} pinned versions")
    dst = os.path.join(OUT, index_path(name))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w") as f:
        f.write("\n".join(mine) + "\n")

print(f"{len(pinned)} crates of {len(versions)} names in {OUT}")
