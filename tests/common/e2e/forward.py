"""A loopback forwarding proxy to a public registry for the pull-through tests (stdlib only).

    python3 forward.py pypi|cargo PORT LOG

pypi: `/simple/...` goes to https://pypi.org/simple/... and `/files/...` to
https://files.pythonhosted.org/...; links to files.pythonhosted.org in the pages are rewritten
to lead back through this proxy.

cargo: `/static/...` goes to https://static.crates.io/... and every other path to the sparse
index https://index.crates.io/...; in the index's `config.json` the `dl` URL (the Cargo book,
"Registry Index": where crates are downloaded from; static.crates.io, or a path on the index
host where a network mirrors crates.io) is rewritten to lead back through this proxy.

So stopping it cuts the Worker off from the registry's origins. Every request's method and
path is appended to LOG, one a line, downloads of `.crate` files marked `DOWNLOAD`, so a test
counts what was fetched.
"""

import http.server
import sys
import urllib.error
import urllib.request

MODE, PORT, LOG = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ME = f"http://127.0.0.1:{PORT}"
FORWARDED = ("accept", "if-none-match", "if-modified-since", "range", "user-agent")
RETURNED = ("content-type", "etag", "last-modified", "location", "cache-control", "content-range")
FILES = "https://files.pythonhosted.org/"
INDEX, STATIC = "https://index.crates.io", "https://static.crates.io"


def pypi(path):
    """The origin URL of a path, and what to rewrite in its body."""
    origins = {"/simple/": "https://pypi.org/simple/", "/files/": FILES}
    target = next((url + path[len(prefix):] for prefix, url in origins.items() if path.startswith(prefix)), None)
    rewrites = ((FILES, f"{ME}/files/"),) if path.startswith("/simple/") else ()
    return target, rewrites


def cargo(path):
    target = STATIC + path[len("/static"):] if path.startswith("/static/") else INDEX + path
    rewrites = ((STATIC, f"{ME}/static"), (INDEX + ":443", ME), (INDEX, ME)) if path == "/config.json" else ()
    return target, rewrites


ROUTE = {"pypi": pypi, "cargo": cargo}[MODE]


class Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, head_only):
        download = MODE == "cargo" and (self.path.startswith("/static/") or self.path.endswith(("/download", ".crate")))
        with open(LOG, "a") as log:
            log.write(f"{'DOWNLOAD ' if download else ''}{self.command} {self.path}\n")
        target, rewrites = ROUTE(self.path)
        if target is None:
            return self.reply(404, {}, b"not forwarded\n", head_only)
        headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED}
        headers.setdefault("User-Agent", "edgeregistry-e2e-forwarder")
        request = urllib.request.Request(target, headers=headers, method="HEAD" if head_only else "GET")
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                status, got, body = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, got, body = e.code, e.headers, e.read()
        except OSError as e:
            return self.reply(502, {}, f"{e}\n".encode(), head_only)
        kept = {k: v for k, v in got.items() if k.lower() in RETURNED}
        for origin, through in rewrites:
            body = body.replace(origin.encode(), through.encode())
        self.reply(status, kept, body, head_only)

    def reply(self, status, headers, body, head_only):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_GET(self):
        self.answer(False)

    def do_HEAD(self):
        self.answer(True)


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Forward).serve_forever()
