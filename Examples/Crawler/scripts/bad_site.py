#!/usr/bin/env python3
"""A web site that misbehaves in every way a crawler must survive.

    bad_site.py PORT      serve on 127.0.0.1:PORT (0: any), print "port N", serve until killed

/ links to every case and to ten good pages, which link to each other and back
(links that loop). The cases: 101 header fields, a 70 KiB header line, a
Content-Length larger than the body, a redirect loop, a 2 MiB body, a 404, a
redirect to a good page, a server that sends nothing, a reset; framing that
http_parser lets through (a bad chunk size, Content-Length with chunked, junk
instead of the CRLF after chunk data, Transfer-Encoding on HTTP/1.0, gzip then
chunked, a status line that is not HTTP's, a chunk size over 2^60); a body that
ends at the close (a page), a 204; two pages linked only from an iframe and a
frame; and links made to inject (CR/LF, spaces, NUL, 200 KB, a bad host).
/continue-forever, linked from nowhere, sends `100 Continue` without end.

Every request head it receives is checked: a request line `GET <target>
HTTP/1.1` whose target is visible ASCII of at most 8 KiB, header lines with a
colon, no X-Injected field. Anything else is printed as "violation: ...".
"""
import socket
import sys
import threading
import time

CASES = ["/many-headers", "/long-header", "/short-body", "/loop/a", "/big", "/missing", "/moved", "/silent", "/reset",
         "/bad-chunk-size", "/length-and-chunked", "/chunk-junk", "/te-on-http10", "/gzip-chunked",
         "/close-delimited", "/not-http", "/no-content", "/chunk-size-overflow"]
# Linked only from an <iframe> (and a <frame>) of /: a page all the same.
FRAMED = ["/framed", "/in-a-frameset"]
# Not linked from / (crawled on its own: it keeps a core busy sending):
# /continue-forever, `100 Continue` as fast as the client reads.
# Links a crawler must not send as they are: each is encoded, or skipped.
HOSTILE_LINKS = ["/x HTTP/1.1\r\nX-Injected: yes\r\nFoo: bar", "/good/1\t\n", " /sp ace\x00nul ", "/" + "a" * 200_000,
                 "http://bad host/"]


def page(body, extra=b"", status=b"200 OK", content_type=b"text/html"):
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def answer(path):
    if path == "/":
        links = "".join('<a href="%s">case</a>\n' % case for case in CASES)
        links += "".join('<a href="/good/%d">good</a>\n' % i for i in range(10))
        links += "".join('<a href="%s">hostile</a>\n' % link for link in HOSTILE_LINKS)
        links += '<iframe src="%s"></iframe><frameset><frame src="%s"></frameset>\n' % tuple(FRAMED)
        links += '<img src="/no-such-image.png"><script src="/no-such-script.js"></script>\n'
        return page(links.encode())
    if path in FRAMED:
        return page(b"<p>framed</p>")
    if path == "/close-delimited":
        # HTTP/1.0, no Content-Length: the body ends where the connection does.
        return b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<a href=\"/good/0\">a page all the same</a>", "close"
    if path == "/not-http":
        return b"HTTQ/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "close"
    if path == "/no-content":
        return b"HTTP/1.1 204 No Content\r\n\r\n"
    if path == "/chunk-size-overflow":
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nabc\r\n0\r\n\r\n", "close"
    if path.startswith("/good/"):
        n = int(path.rsplit("/", 1)[1])
        return page(('<a href="/good/%d">next</a> <a href="../good/%d">again</a> <a href="/">home</a>'
                     % ((n + 1) % 10, n)).encode())
    if path == "/many-headers":
        return page(b"x", b"".join(b"X-Header-%d: v\r\n" % i for i in range(101)))
    if path == "/long-header":
        return page(b"x", b"X-Long: " + b"v" * (70 * 1024) + b"\r\n")
    if path == "/short-body":
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100\r\n\r\nonly ten b", "close"
    if path == "/loop/a":
        return page(b"", b"Location: /loop/b\r\n", b"302 Found")
    if path == "/loop/b":
        return page(b"", b"Location: /loop/a\r\n", b"302 Found")
    if path == "/big":
        return page(b"x" * (2 * 1024 * 1024))
    if path == "/moved":
        return page(b"", b"Location: /good/3\r\n", b"301 Moved Permanently")
    if path == "/bad-chunk-size":
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", "close"
    if path == "/length-and-chunked":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "close"
    if path == "/chunk-junk":
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", "close"
    if path == "/te-on-http10":
        return b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "close"
    if path == "/gzip-chunked":
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "close"
    if path == "/continue-forever":
        return None, "continue-forever"
    if path == "/silent":
        return None, "silent"
    if path == "/reset":
        return None, "reset"
    return page(b"no such page", status=b"404 Not Found", content_type=b"text/plain")


def check(head):
    """Prints a violation if the request head is not what a careful client sends."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    good = (len(parts) == 3 and parts[0] == b"GET" and parts[2] == b"HTTP/1.1" and parts[1].startswith(b"/")
            and len(parts[1]) <= 8192 and all(0x21 <= byte <= 0x7e for byte in parts[1]))
    for line in lines[1:]:
        name = line.split(b":", 1)[0]
        if b":" not in line or name.lower() == b"x-injected" or any(byte < 0x20 and byte != 0x09 for byte in line):
            good = False
    if not good:
        print("violation:", repr(head[:300]), flush=True)


def serve(client):
    buffer = b""
    try:
        while True:
            while b"\r\n\r\n" not in buffer:
                chunk = client.recv(65536)
                if not chunk:
                    return
                buffer += chunk
            head, buffer = buffer.split(b"\r\n\r\n", 1)
            check(head)
            path = head.split(b" ")[1].decode()
            response = answer(path)
            if isinstance(response, tuple):
                data, how = response
                if how == "silent":
                    time.sleep(30)
                    return
                if how == "continue-forever":
                    while True:
                        client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                        pass  # as fast as the crawler reads
                if how == "reset":
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                client.sendall(data)
                return
            client.sendall(response)
    except OSError:
        pass
    finally:
        client.close()


def main():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(128)
    print("port %d" % listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()


main()
