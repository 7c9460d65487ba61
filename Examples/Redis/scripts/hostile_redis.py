#!/usr/bin/env python3
"""A server that speaks Redis's protocol badly, for the tests.

    hostile_redis.py MODE     listen on 127.0.0.1 (any port), print the port, serve until killed

Each connection gets, after its first command:
    bulk      a `$99999999999` header, then bytes without end
    array     a `*99999999` header, then one-byte bulk strings without end
    extra     two replies (`+PONG` twice) to the one command
    unasked   a reply before any command (`+HELLO`), then nothing
"""
import socket
import sys
import threading


def serve(client, mode):
    try:
        if mode == "unasked":
            client.sendall(b"+HELLO\r\n")
            client.recv(65536)
            return
        client.recv(65536)
        if mode == "bulk":
            client.sendall(b"$99999999999\r\n")
            while True:
                client.sendall(b"x" * 65536)
        if mode == "array":
            client.sendall(b"*99999999\r\n")
            while True:
                client.sendall(b"$1\r\nx\r\n" * 10000)
        if mode == "extra":
            client.sendall(b"+PONG\r\n+PONG\r\n")
        client.recv(65536)
    except OSError:
        pass
    finally:
        client.close()


def main():
    mode = sys.argv[1]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    print(listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, mode), daemon=True).start()


main()
