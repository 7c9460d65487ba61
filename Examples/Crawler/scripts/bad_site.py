#!/usr/bin/env python3
"""A web site that misbehaves in every way a crawler must survive.

    bad_site.py PORT      serve on 127.0.0.1:PORT (0: any), print "port N", serve until killed

/ links to every case and to ten good pages, which link to each other and back
(links that loop). The cases: 101 header fields, a 70 KiB header line, a
Content-Length larger than the body, a redirect loop, a 2 MiB body, a 404, a
redirect to a good page, a server that sends nothing, a reset.
"""
import socket
import sys
import threading
import time

CASES = ["/many-headers", "/long-header", "/short-body", "/loop/a", "/big", "/missing", "/moved", "/silent", "/reset"]


def page(body, extra=b"", status=b"200 OK", content_type=b"text/html"):
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def answer(path):
    if path == "/":
        links = "".join('<a href="%s">case</a>\n' % case for case in CASES)
        links += "".join('<a href="/good/%d">good</a>\n' % i for i in range(10))
        return page(links.encode())
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
    if path == "/silent":
        return None, "silent"
    if path == "/reset":
        return None, "reset"
    return page(b"no such page", status=b"404 Not Found", content_type=b"text/plain")


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
            path = head.split(b" ")[1].decode()
            response = answer(path)
            if isinstance(response, tuple):
                data, how = response
                if how == "silent":
                    time.sleep(30)
                    return
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
    print("port", listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client,), daemon=True).start()


main()
