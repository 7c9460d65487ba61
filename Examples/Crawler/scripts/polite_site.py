#!/usr/bin/env python3
"""A web site that asks a crawler to be polite, and checks that it is.

    polite_site.py PORT [--robots-status N] [--robots-bytes N] [--tls CERT KEY]

serves on 127.0.0.1:PORT (0: any), prints "port N", then one line per request:

    request PATH t=SECONDS ua=USER-AGENT ae=ACCEPT-ENCODING referer=REFERER

(SECONDS on the monotonic clock). What it asks:

- /robots.txt: a group for every crawler (`*`) disallowing /private but
  allowing /private/ok exactly, and a Crawl-delay of 0.2 s; a group for
  "other-bot" disallowing everything (not ours). --robots-status answers it
  with that status instead; --robots-bytes sends a robots.txt of that size.
- / links to: pages a, b (gzip), c (deflate, zlib), d (raw deflate), the
  private pages, a rel=nofollow link, a page with <base href>, a page whose
  robots meta tag says nofollow, /deep/1 (a chain of 10), /flaky (503 with
  Retry-After: 1 twice, then a page), /busy (503 with Retry-After: 100000),
  /bomb (gzip: 1 GiB of zeros in about 1 MiB), and links inside a script, a
  style and a comment that must not be followed (/never/...).
"""
import argparse
import gzip
import http.server
import socketserver
import ssl
import sys
import threading
import time
import zlib

lock = threading.Lock()
log_lock = threading.Lock()
flaky_left = {"n": 2}
bomb = None


def make_bomb():
    """1 GiB of zeros, gzip: about 1 MiB - 64 members of 16 MiB each (a gzip
    body may hold several; made in a tenth of a second)."""
    global bomb
    if bomb is None:
        bomb = gzip.compress(bytes(16 << 20), 9) * 64
    return bomb


ROOT = """<html><head><title>polite</title>
<script>document.write('<a href="/never/script">x</a>')</script>
<style>a[href="/never/style"] { color: red }</style>
</head><body>
<!-- <a href="/never/comment">old</a> -->
<a href="/a">a</a> <a href="/b">b</a> <a href="/c">c</a> <a href="/d">d</a>
<a href="/private/secret">no</a> <a href="/private/ok">ok</a> <a href="/private/ok/not">no</a>
<a href="/never/nofollow" rel="nofollow">nofollow</a>
<a href="/based/page">base</a> <a href="/meta-nofollow">meta</a>
<a href="/deep/1">deep</a> <a href="/flaky">flaky</a> <a href="/busy">busy</a> <a href="/bomb">bomb</a>
</body></html>"""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    robots_status = 200
    robots_bytes = 0

    def log_message(self, *args):
        pass

    def send(self, status, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if not self.path.endswith(".txt") else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        # One write per line, under the log's lock: print() writes the text
        # and its newline apart, so two handler threads printing at once made
        # one line of two and a request went missing from the log.
        line = "request %s t=%.4f ua=%s ae=%s referer=%s\n" % (
            self.path, time.monotonic(), self.headers.get("User-Agent", ""), self.headers.get("Accept-Encoding", ""),
            self.headers.get("Referer", ""))
        with log_lock:
            sys.stdout.write(line)
            sys.stdout.flush()
        path = self.path
        if path == "/robots.txt":
            if self.robots_bytes:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(self.robots_bytes))
                self.end_headers()
                line = b"Disallow: /nothing-here\n"
                sent = 0
                try:
                    while sent < self.robots_bytes:
                        piece = line * min(4096, (self.robots_bytes - sent) // len(line) + 1)
                        piece = piece[:self.robots_bytes - sent]
                        self.wfile.write(piece)
                        sent += len(piece)
                except OSError:
                    pass
                return
            if self.robots_status != 200:
                return self.send(self.robots_status, b"no robots today")
            return self.send(200, b"User-agent: other-bot\nDisallow: /\n\n"
                                  b"User-agent: *\nDisallow: /private\nAllow: /private/ok$\nCrawl-delay: 0.2\n")
        if path == "/":
            return self.send(200, ROOT.encode())
        if path == "/a" or path.startswith("/private/") or path == "/dir/inner":
            return self.send(200, b"<p>page</p>")
        if path == "/b":
            return self.send(200, gzip.compress(b'<a href="/b-link">from gzip</a>' + b" " * 5000),
                             [("Content-Encoding", "gzip")])
        if path == "/c":
            return self.send(200, zlib.compress(b'<a href="/c-link">from deflate</a>'), [("Content-Encoding", "deflate")])
        if path == "/d":
            raw = zlib.compressobj(6, zlib.DEFLATED, -15)
            return self.send(200, raw.compress(b'<a href="/d-link">from raw deflate</a>') + raw.flush(),
                             [("Content-Encoding", "deflate")])
        if path in ("/b-link", "/c-link", "/d-link"):
            return self.send(200, b"<p>decoded link</p>")
        if path == "/based/page":
            return self.send(200, b'<head><base href="/dir/"></head><a href="inner">inner</a>')
        if path == "/meta-nofollow":
            return self.send(200, b'<head><meta name="robots" content="noindex,nofollow"></head><a href="/never/meta">x</a>')
        if path.startswith("/deep/"):
            n = int(path.rsplit("/", 1)[1])
            return self.send(200, ('<a href="/deep/%d">deeper</a>' % (n + 1)).encode() if n < 10 else b"<p>bottom</p>")
        if path == "/flaky":
            with lock:
                left = flaky_left["n"]
                flaky_left["n"] = max(0, left - 1)
            if left:
                return self.send(503, b"busy", [("Retry-After", "1")])
            return self.send(200, b"<p>came back</p>")
        if path == "/busy":
            return self.send(503, b"come back tomorrow", [("Retry-After", "100000")])
        if path == "/bomb":
            return self.send(200, make_bomb(), [("Content-Encoding", "gzip")])
        return self.send(404, b"not here")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--robots-status", type=int, default=200)
    parser.add_argument("--robots-bytes", type=int, default=0)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    Handler.robots_status = args.robots_status
    Handler.robots_bytes = args.robots_bytes
    make_bomb()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls[0], args.tls[1])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print("port %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
