#!/usr/bin/env python3
"""The allocation guards of `make test`: heap allocations per operation,
counted by malloc_counter.so (LD_PRELOAD) in release builds, against the
ceilings below. Noise cannot blur a count, so a ceiling is the figure
itself (plus a small margin where start-up work is spread over the run),
and a change that adds an allocation on a hot path fails here.

    python3 Tests/AllocationCounter/allocation_guard.py \
        --counter .build-alloc/malloc_counter.so \
        --helper .build/release/EVTestHelper --server .build/release/server

Two parts:
- the helper's `allocation-counts` scenario: timers, readiness callbacks
  and async round trips on both loops, each counted around a measured
  stretch after a warm-up;
- `server http` on each evented engine: one keep-alive connection sends
  GET /plaintext N times, then 2N times in a second run of the server; the
  difference over N is the steady-state allocations per request (start-up,
  shut-down and the warm-up cancel out).
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

# name -> (ceiling, why). Per operation; a ceiling of 0 means none at all
# (a margin of 0.01 absorbs a one-off allocation in a long run).
CEILINGS = {
    "ev.timer.new-start-fire": (1, "a timer watcher made per start: its object (the path with none is Loop.once)"),
    "ev.timer.kept-again-fire": (0, "a kept watcher restarted with again() allocates nothing, as in C"),
    "ev.once.timeout-fire": (0, "Loop.once with a timeout only: libev's timer and the callback in a slot of the loop's memory, no object"),
    "epoll.timer.new-start-fire": (1, "a LoopTimer made per start: one allocation"),
    "ev.readiness.callback": (0, "a readiness callback allocates nothing"),
    "epoll.readiness.callback": (0, "a readiness callback allocates nothing"),
    "ev.async.round-trip": (0, "two awaits that suspend: continuations live in the task's own allocator"),
    "epoll.async.round-trip": (0, "the same await core on the epoll loop"),
    "http.libev.request": (0, "a keep-alive GET /plaintext allocates nothing"),
    "http.epoll.request": (0, "a keep-alive GET /plaintext allocates nothing"),
    "http.async.request": (0, "the async engine's request: its awaits allocate nothing either"),
    "http.async-epoll.request": (0, "the async engine on the epoll loop"),
    "http.libev.request.metrics": (0, "with --metrics-port: the monitor's clock reads, its probe (a repeating libev timer), each request's latency in a histogram bucket and the reports allocate nothing per request"),
    "http.epoll.request.metrics": (0, "with --metrics-port on the epoll loop: its probe re-arms one timer"),
    "http.async.request.metrics": (0, "with --metrics-port: each task step measured, nothing allocated"),
    "http.async-epoll.request.metrics": (0, "with --metrics-port, the async engine on the epoll loop"),
}
MARGIN = 0.01

REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def preload_environment(counter, counts_file):
    environment = dict(os.environ)
    environment["LD_PRELOAD"] = counter
    environment["MALLOC_COUNTER_FILE"] = counts_file
    return environment


def helper_counts(helper, counter, operations):
    with tempfile.NamedTemporaryFile(suffix=".txt") as counts:
        environment = preload_environment(counter, counts.name)
        environment["EVTESTHELPER_ARGS"] = f"allocation-counts {operations}"
        result = subprocess.run([helper, "allocation-counts", str(operations)], env=environment,
                                capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        sys.exit(f"allocation guard: the helper failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    figures = {}
    for line in result.stdout.splitlines():
        name, value = line.split()
        figures[name] = float(value)
    return figures


def keep_alive_requests(port, count):
    """Sends GET /plaintext `count` times on one connection, each after the
    previous answer has arrived whole."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        for _ in range(count):
            client.sendall(REQUEST)
            while True:
                head_end = pending.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = int(re.search(rb"(?i)content-length: *(\d+)", pending[:head_end]).group(1))
                    end = head_end + 4 + length
                    if len(pending) >= end:
                        if not pending.startswith(b"HTTP/1.1 200"):
                            sys.exit(f"allocation guard: unexpected answer {pending[:40]!r}")
                        pending = pending[end:]
                        break
                chunk = client.recv(65536)
                if not chunk:
                    sys.exit("allocation guard: the server closed the connection")
                pending += chunk


def server_allocations(server, counter, engine, requests, extra=()):
    """The server's allocations over its whole life, serving a warm-up and
    then `requests` keep-alive requests on one connection."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as counts:
        process = subprocess.Popen([server, "http", "--engine", engine, "--port", "0", "--pages", "10", *extra],
                                   env=preload_environment(counter, counts.name),
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            line = process.stdout.readline()
            match = re.search(r":(\d+)/", line)
            if not match:
                sys.exit(f"allocation guard: server {engine} did not start: {line!r}")
            port = int(match.group(1))
            keep_alive_requests(port, 1000)  # warm-up: buffers and tables reach their size
            keep_alive_requests(port, requests)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        text = open(counts.name).read()
    return int(re.search(r"allocations (\d+)", text).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counter", required=True)
    parser.add_argument("--helper", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--operations", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=20000)
    options = parser.parse_args()

    figures = helper_counts(options.helper, options.counter, options.operations)
    for engine in ["libev", "epoll", "async", "async-epoll"]:
        single = server_allocations(options.server, options.counter, engine, options.requests)
        double = server_allocations(options.server, options.counter, engine, 2 * options.requests)
        figures[f"http.{engine}.request"] = (double - single) / options.requests
        print(f"server http --engine {engine}: {single} allocations in its life with {options.requests} requests, "
              f"{double} with {2 * options.requests}")
        # With the loops' monitors on and reported each second (the reports
        # allocate, per second, not per request: a run of 2N requests lasts
        # longer, so the margin absorbs the report or two more it holds).
        metrics = ("--metrics-port", "0")
        single = server_allocations(options.server, options.counter, engine, options.requests, metrics)
        double = server_allocations(options.server, options.counter, engine, 2 * options.requests, metrics)
        figures[f"http.{engine}.request.metrics"] = (double - single) / options.requests
        print(f"server http --engine {engine} --metrics-port 0: {single} allocations in its life with {options.requests} requests, "
              f"{double} with {2 * options.requests}")

    failed = []
    print(f"{'allocations per operation':<28} {'measured':>9} {'ceiling':>8}")
    for name, (ceiling, why) in CEILINGS.items():
        if name not in figures:
            failed.append(f"{name}: not measured")
            continue
        measured = figures[name]
        verdict = "ok" if measured <= ceiling + MARGIN else "OVER"
        print(f"{name:<28} {measured:>9.3f} {ceiling:>8} {verdict}  ({why})")
        if verdict != "ok":
            failed.append(f"{name}: {measured:.3f} allocations per operation, the ceiling is {ceiling} ({why})")
    for name in sorted(set(figures) - set(CEILINGS)):
        failed.append(f"{name}: measured ({figures[name]:.3f}) but has no ceiling")
    if failed:
        print("allocation guard FAILED:\n  " + "\n  ".join(failed))
        sys.exit(1)
    print("allocation guard passed")


if __name__ == "__main__":
    main()
