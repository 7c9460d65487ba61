#!/usr/bin/env python3
"""N concurrent slow poetry clients against one server; checks and measures.

    slow_clients.py PORT N --expect FILE [--pid PID] [--timeout S]

Opens N connections to 127.0.0.1:PORT at once (non-blocking connects, one
selector), reads each until EOF and checks the bytes against FILE. With
--pid, samples the server's resident memory and CPU time while the clients
are connected. Prints one JSON object:

    {"clients": N, "intact": K, "failed": {"reason": count}, "seconds": wall,
     "serverCpuSeconds": s, "serverRssBaselineKiB": b, "serverRssPeakKiB": p,
     "bytesPerClient": (p - b) * 1024 / N}

Exit status 0 when every client got the whole poem intact, 1 otherwise.
"""
import argparse
import errno
import json
import os
import resource
import selectors
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("clients", type=int)
    parser.add_argument("--expect", required=True, help="the file the server serves")
    parser.add_argument("--pid", type=int, help="the server's pid, to measure it")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    with open(args.expect, "rb") as poem_file:
        poem = poem_file.read()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.clients + 16 > hard:
        sys.exit(f"slow_clients: {args.clients} clients need more descriptors than the limit {hard}")

    baseline = rss_kib(args.pid) if args.pid else 0
    cpu_start = cpu_seconds(args.pid) if args.pid else 0
    peak = baseline
    selector = selectors.DefaultSelector()
    received = {}
    failed = {}
    start = time.monotonic()
    for index in range(args.clients):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(("127.0.0.1", args.port))
        if code not in (0, errno.EINPROGRESS):
            failed[errno.errorcode.get(code, str(code))] = failed.get(errno.errorcode.get(code, str(code)), 0) + 1
            sock.close()
            continue
        received[sock] = bytearray()
        selector.register(sock, selectors.EVENT_READ)

    next_sample = 0.0
    while selector.get_map():
        now = time.monotonic()
        if now - start > args.timeout:
            for key in list(selector.get_map().values()):
                failed["timeout"] = failed.get("timeout", 0) + 1
                selector.unregister(key.fileobj)
                key.fileobj.close()
                del received[key.fileobj]
            break
        if args.pid and now >= next_sample:
            peak = max(peak, rss_kib(args.pid))
            next_sample = now + 0.1
        for key, _ in selector.select(timeout=0.1):
            sock = key.fileobj
            try:
                data = sock.recv(65536)
            except OSError as error:
                name = errno.errorcode.get(error.errno, str(error.errno))
                failed[name] = failed.get(name, 0) + 1
                selector.unregister(sock)
                sock.close()
                del received[sock]
                continue
            if data:
                received[sock] += data
            else:
                selector.unregister(sock)
                sock.close()
    seconds = time.monotonic() - start
    intact = sum(1 for data in received.values() if bytes(data) == poem)
    wrong = len(received) - intact
    if wrong:
        failed["short or wrong bytes"] = wrong
    report = {
        "clients": args.clients,
        "intact": intact,
        "failed": {k: v for k, v in failed.items() if v},
        "seconds": round(seconds, 3),
    }
    if args.pid:
        report["serverCpuSeconds"] = round(cpu_seconds(args.pid) - cpu_start, 3)
        report["serverRssBaselineKiB"] = baseline
        report["serverRssPeakKiB"] = peak
        report["bytesPerClient"] = round((peak - baseline) * 1024 / args.clients)
    print(json.dumps(report), flush=True)
    sys.exit(0 if intact == args.clients else 1)


if __name__ == "__main__":
    main()
