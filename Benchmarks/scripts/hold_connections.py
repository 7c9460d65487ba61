#!/usr/bin/env python3
"""Opens N idle TCP connections to HOST:PORT, prints "ready", holds them until stdin closes.

Used by the benchmarks to measure a server's memory per idle connection: the
connections live in this process, so the server's own descriptor limit and
memory are all the server's.
"""
import resource
import socket
import sys

host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for _ in range(count):
    s = socket.create_connection((host, port))
    held.append(s)
print("ready", flush=True)
sys.stdin.read()
for s in held:
    s.close()
