"""A loopback forwarding proxy to crates.io for the Cargo pull-through tests (stdlib only).

    python3 cargo_forward.py PORT LOG

`/static/...` goes to https://static.crates.io/... and every other path to the sparse index
https://index.crates.io/...; in the index's `config.json` the `dl` URL (the Cargo book,
"Registry Index": where crates are downloaded from; static.crates.io, or a path on the index
host where a network mirrors crates.io) is rewritten to lead back through this proxy, so
stopping it cuts the Worker off from both. Every request's method and path is appended to LOG,
one a line, downloads of `.crate` files marked `DOWNLOAD`, so a test counts what was fetched.
"""

import http.server
import sys
import urllib.error
import urllib.request

PORT = int(sys.argv[1])
LOG = sys.argv[2]
INDEX = "https://index.crates.io"
STATIC = "https://static.crates.io"
FORWARDED = ("accept", "if-none-match", "if-modified-since", "user-agent")
RETURNED = ("content-type", "etag", "last-modified", "location", "cache-control")


class Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, head_only):
        download = self.path.startswith("/static/") or self.path.endswith("/download") or self.path.endswith(".crate")
        with open(LOG, "a") as log:
            log.write(f"{'DOWNLOAD ' if download else ''}{self.command} {self.path}\n")
        if self.path.startswith("/static/"):
            target = STATIC + self.path[len("/static"):]
        else:
            target = INDEX + self.path
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
        if self.path == "/config.json":
            me = f"http://127.0.0.1:{PORT}"
            for origin, through in ((STATIC, me + "/static"), (INDEX + ":443", me), (INDEX, me)):
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
