"""A loopback forwarding proxy to the public PyPI for the pull-through tests (stdlib only).

    python3 pypi_forward.py PORT LOG

`/simple/...` goes to https://pypi.org/simple/... and `/files/...` to
https://files.pythonhosted.org/...; links to files.pythonhosted.org in the pages are rewritten
to lead back through this proxy, so stopping it cuts the Worker off from both origins. Every
request's method and path is appended to LOG, one a line, so a test counts what was fetched.
"""

import http.server
import sys
import urllib.error
import urllib.request

PORT = int(sys.argv[1])
LOG = sys.argv[2]
ORIGINS = {"/simple/": "https://pypi.org/simple/", "/files/": "https://files.pythonhosted.org/"}
FILES = "https://files.pythonhosted.org/"
FORWARDED = ("accept", "if-none-match", "if-modified-since", "range", "user-agent")
RETURNED = ("content-type", "etag", "last-modified", "location", "cache-control", "content-range")


class Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, head_only):
        with open(LOG, "a") as log:
            log.write(f"{self.command} {self.path}\n")
        target = next((url + self.path[len(prefix):] for prefix, url in ORIGINS.items() if self.path.startswith(prefix)), None)
        if target is None:
            return self.reply(404, {}, b"not forwarded\n", head_only)
        headers = {k: v for k, v in self.headers.items() if k.lower() in FORWARDED}
        request = urllib.request.Request(target, headers=headers, method="HEAD" if head_only else "GET")
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                status, got, body = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, got, body = e.code, e.headers, e.read()
        except OSError as e:
            return self.reply(502, {}, f"{e}\n".encode(), head_only)
        kept = {k: v for k, v in got.items() if k.lower() in RETURNED}
        if self.path.startswith("/simple/"):
            body = body.replace(FILES.encode(), f"http://127.0.0.1:{PORT}/files/".encode())
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
