#!/usr/bin/env python3
"""Slow poetry servers for the poetry client's tests: the classic one and two hostile ones.

    poetry_peers.py FILE [--num-bytes N] [--delay S]

listens on three ports of 127.0.0.1 and prints "ports CLASSIC ENDLESS TRICKLE":

- CLASSIC is twisted-intro's slowpoetry.py, as written: accept one client at a
  time, send FILE N bytes at a time with a pause of S seconds, close. It never
  reads: a client that sends it anything turns its close into a reset.
- ENDLESS sends without end, as fast as the client takes it.
- TRICKLE sends one byte a second, without end.
"""
import socket
import sys
import threading
import time


def listener():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def classic(listen_socket, poem, num_bytes, delay):
    while True:
        sock, _ = listen_socket.accept()
        for start in range(0, len(poem), num_bytes):
            try:
                sock.sendall(poem[start:start + num_bytes])
            except OSError:
                break
            time.sleep(delay)
        sock.close()


def endless(listen_socket):
    def feed(sock):
        block = b"endless verse " * 4096
        try:
            while True:
                sock.sendall(block)
        except OSError:
            sock.close()
    while True:
        sock, _ = listen_socket.accept()
        threading.Thread(target=feed, args=(sock,), daemon=True).start()


def trickle(listen_socket):
    def feed(sock):
        try:
            while True:
                sock.sendall(b".")
                time.sleep(1)
        except OSError:
            sock.close()
    while True:
        sock, _ = listen_socket.accept()
        threading.Thread(target=feed, args=(sock,), daemon=True).start()


def main():
    args = sys.argv[1:]
    num_bytes, delay = 10, 0.1
    if "--num-bytes" in args:
        num_bytes = int(args[args.index("--num-bytes") + 1])
    if "--delay" in args:
        delay = float(args[args.index("--delay") + 1])
    poem = open(args[0], "rb").read()
    sockets = [listener(), listener(), listener()]
    print("ports " + " ".join(str(s.getsockname()[1]) for s in sockets), flush=True)
    threading.Thread(target=classic, args=(sockets[0], poem, num_bytes, delay), daemon=True).start()
    threading.Thread(target=endless, args=(sockets[1],), daemon=True).start()
    trickle(sockets[2])


main()
