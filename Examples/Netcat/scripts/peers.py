#!/usr/bin/env python3
"""Real peers for evcat's tests, on Python's socket module.

peers.py count PORT       accept one connection, read to its end, answer "got N bytes\\n", close
peers.py echo PORT        accept connections (each in a thread), echo each until its end
peers.py silent PORT      accept one connection and say nothing for 30 s
peers.py udp-echo PORT    answer each datagram with itself in capitals
peers.py client PORT      connect to 127.0.0.1:PORT (retrying for 10 s while refused), send
                          stdin, shut down writing, print what comes back

A server prints "ready" on stdout once it listens.
"""
import socket
import sys
import threading
import time


def listener(port):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(16)
    print("ready", flush=True)
    return server


def read_all(connection):
    data = bytearray()
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "count":
        connection, _ = listener(port).accept()
        data = read_all(connection)
        connection.sendall(b"got %d bytes\n" % len(data))
        connection.close()
    elif mode == "echo":
        server = listener(port)

        def serve(connection):
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                connection.sendall(chunk)
            connection.close()
        while True:
            connection, _ = server.accept()
            threading.Thread(target=serve, args=(connection,), daemon=True).start()
    elif mode == "silent":
        connection, _ = listener(port).accept()
        time.sleep(30)
    elif mode == "udp-echo":
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", port))
        print("ready", flush=True)
        while True:
            data, peer = server.recvfrom(65536)
            server.sendto(data.upper(), peer)
    elif mode == "client":
        deadline = time.monotonic() + 10
        while True:
            try:
                connection = socket.create_connection(("127.0.0.1", port))
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        connection.sendall(sys.stdin.buffer.read())
        connection.shutdown(socket.SHUT_WR)
        sys.stdout.buffer.write(read_all(connection))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
