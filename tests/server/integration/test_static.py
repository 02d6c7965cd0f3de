"""The live page's files over HTTP: "/" and "/static/NAME" answer the files of web/,
byte for byte, with their Content-Type, ETag (304 on If-None-Match), Cache-Control and
the page's Content-Security-Policy; anything else, including every way of spelling a
path out of /static/, is a 404 that serves nothing.

    /usr/bin/python3 tests/server/integration/test_static.py --cascade BUILD/cascade
"""

import http.client
import os
import socket

import harness
from harness import REPO, ServerCase

WEB = os.path.join(REPO, "web")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}


def web_files():
    return sorted(f for f in os.listdir(WEB) if os.path.splitext(f)[1] in TYPES)


def raw_get(server, target):
    """GET with the target sent exactly as given (no client normalization)."""
    with socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class Static(ServerCase):

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server().start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_every_web_file_is_served_byte_for_byte(self):
        files = web_files()
        self.assertIn("index.html", files)
        self.assertIn("app.js", files)
        for name in files:
            with open(os.path.join(WEB, name), "rb") as f:
                want = f.read()
            path = "/" if name == "index.html" else f"/static/{name}"
            r = self.server.get(path)
            self.assertEqual(r.status, 200, f"{path}: {r}")
            self.assertEqual(r.data, want, f"{path}: the served bytes differ from web/{name}")
            self.assertEqual(r.headers.get("Content-Type"), TYPES[os.path.splitext(name)[1]], path)
            self.assertEqual(r.headers.get("Cache-Control"), "no-cache", path)
            self.assertEqual(r.headers.get("X-Content-Type-Options"), "nosniff", path)
            self.assertRegex(r.headers.get("ETag", ""), r'^"[0-9a-f]{16}"$', path)

    def test_the_page_names_only_files_that_exist(self):
        page = self.server.get("/").text()
        for ref in ("static/app.js", "static/style.css"):
            self.assertIn(f'"{ref}"', page)
            self.assertEqual(self.server.get("/" + ref).status, 200, ref)

    def test_the_page_carries_its_content_security_policy(self):
        csp = self.server.get("/").headers.get("Content-Security-Policy", "")
        for directive in ("default-src 'none'", "script-src 'self'", "connect-src 'self'",
                          "frame-ancestors 'none'"):
            self.assertIn(directive, csp)
        self.assertNotIn("unsafe", csp)

    def test_if_none_match_gets_304_without_a_body(self):
        r = self.server.get("/static/app.js")
        etag = r.headers["ETag"]
        for sent in (etag, f"W/{etag}", f'"0000000000000000", {etag}', "*"):
            again = self.server.get("/static/app.js", headers={"If-None-Match": sent})
            self.assertEqual(again.status, 304, f"If-None-Match: {sent}")
            self.assertEqual(again.data, b"")
            self.assertEqual(again.headers.get("ETag"), etag)
        other = self.server.get("/static/app.js", headers={"If-None-Match": '"0000000000000000"'})
        self.assertEqual(other.status, 200)
        self.assertEqual(other.data, r.data)
        # Each file has its own tag.
        self.assertNotEqual(self.server.get("/").headers["ETag"], etag)

    def test_head_answers_the_headers_only(self):
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=10)
        try:
            conn.request("HEAD", "/")
            r = conn.getresponse()
            body = r.read()
        finally:
            conn.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(body, b"")
        self.assertEqual(int(r.getheader("Content-Length")), len(self.server.get("/").data))

    def test_other_methods_are_refused(self):
        for method in ("POST", "PUT", "DELETE"):
            for path in ("/", "/static/app.js"):
                r = self.server.http(method, path, body="x")
                self.assertEqual(r.status, 405, f"{method} {path}: {r}")
                err = r.json()["error"]
                self.assertEqual(err["code"], "method_not_allowed")
                self.assertIn("use GET", err["message"])

    def test_unknown_and_traversing_paths_are_404(self):
        targets = [
            "/static/", "/static/nope.js", "/static/APP.JS", "/static/app.js/",
            "/static/../index.html", "/static/../../etc/passwd", "/../etc/passwd",
            "/static/%2e%2e/index.html", "/static/%2E%2E/%2E%2E/etc/passwd",
            "/static/..%2findex.html", "/static/%2fetc%2fpasswd", "/static//etc/passwd",
            "/static/./app.js", "/static/app.js%00", "/static/app%2ejs", "/static/\\..\\index.html",
            "/index.html", "/app.js", "/web/app.js", "/etc/passwd", "//etc/passwd",
            "/static/embed.cmake",
        ]
        passwd = b"root:"
        if os.path.exists("/etc/passwd"):
            with open("/etc/passwd", "rb") as f:
                passwd = f.read()
        for t in targets:
            status, body = raw_get(self.server, t)
            self.assertEqual(status, 404, f"GET {t}: {status} {body[:200]!r}")
            self.assertIn(b'"not_found"', body, t)
            self.assertNotIn(passwd[:20], body, t)
            self.assertNotIn(b"<html", body, t)

    def test_absolute_form_targets_serve_nothing_extra(self):
        # An absolute-form or authority-form target is not a path of the page.
        for t in ("http://x/etc/passwd", "/static/" + "a" * 3000):
            status, body = raw_get(self.server, t)
            self.assertIn(status, (400, 404), f"GET {t[:60]}: {status}")
            self.assertNotIn(b"root:", body)

    def test_the_api_is_unchanged_beside_the_page(self):
        self.assertEqual(self.server.get("/healthz").status, 200)
        self.assertEqual(self.server.get("/v1/summary").status, 200)
        r = self.server.get("/v1/static/app.js")
        self.assertEqual(r.status, 404)


if __name__ == "__main__":
    harness.main()
