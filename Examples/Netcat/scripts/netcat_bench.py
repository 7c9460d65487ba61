#!/usr/bin/env python3
"""evcat beside socat and ncat: a 1 GiB stream relayed between a pipe and a
socket, TCP and Unix, both ways. The relay is pinned to core 0 and timed by
its own CPU (user + system, from wait4); the source and sink run on core 1.

    netcat_bench.py EVCAT [--size BYTES] [--runs N]

Prints one row per transport, direction and tool: MB/s of wall time, MB per
CPU second of the relay, and the ratio of evcat's MB per CPU second to each
peer's (the median of N runs, pairs taken in turn: evcat, socat, ncat, ...).
"""
import argparse
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(target, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if isinstance(target, int):
            table = open("/proc/net/tcp").read()
            if any(f"0100007F:{target:04X}" in line and line.split()[3] == "0A" for line in table.splitlines()):
                return
        elif os.path.exists(target):
            return
        time.sleep(0.005)
    raise SystemExit(f"nothing listens on {target}")


def timed(command):
    """Runs `command` (a shell line, its relay the process started), returns (wall, cpu)."""
    start = time.monotonic()
    process = subprocess.Popen(["/bin/sh", "-c", command])
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({status}): {command}")
    return wall, usage.ru_utime + usage.ru_stime


def one(tool, evcat, transport, direction, size):
    core0, core1 = "taskset -c 0", "taskset -c 1"
    source = f"{core1} head -c {size} /dev/zero"
    if transport == "tcp":
        port = free_port()
        target, connect, listen = port, f"127.0.0.1 {port}", f"127.0.0.1 {port}"
        socat_connect, socat_listen = f"TCP:127.0.0.1:{port}", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"
        ncat_connect, ncat_listen = f"127.0.0.1 {port}", f"-l 127.0.0.1 {port}"
        evcat_connect, evcat_listen = f"127.0.0.1 {port}", f"-l 127.0.0.1 {port}"
    else:
        path = tempfile.mktemp(prefix="evcat-bench-", suffix=".sock")
        target = path
        socat_connect, socat_listen = f"UNIX-CONNECT:{path}", f"UNIX-LISTEN:{path}"
        ncat_connect, ncat_listen = f"-U {path}", f"-l -U {path}"
        evcat_connect, evcat_listen = f"-U {path}", f"-l -U {path}"
    relays = {
        "send": {  # stdin (a pipe) to the socket
            "evcat": f"{evcat} {evcat_connect}",
            "socat": f"socat -u STDIN {socat_connect}",
            "ncat": f"ncat --send-only {ncat_connect}",
        },
        "receive": {  # the socket to stdout (/dev/null)
            "evcat": f"{evcat} {evcat_listen} < /dev/null > /dev/null",
            "socat": f"socat -u {socat_listen} STDOUT > /dev/null",
            "ncat": f"ncat --recv-only {ncat_listen} > /dev/null",
        },
    }
    relay = relays[direction][tool]
    if direction == "send":
        sink = subprocess.Popen(shlex.split(f"{core1} socat -u {socat_listen} OPEN:/dev/null"))
        wait_listening(target)
        # exec: the shell becomes the pipeline's last process, the relay.
        result = timed(f"{source} | exec {core0} {relay}")
        sink.wait(timeout=60)
    else:
        receiver = f"exec {core0} {relay}"
        start = time.monotonic()
        process = subprocess.Popen(["/bin/sh", "-c", receiver])
        wait_listening(target)
        sender = subprocess.Popen(["/bin/sh", "-c", f"{source} | {core1} socat -u STDIN {socat_connect}"])
        _, status, usage = os.wait4(process.pid, 0)
        result = (time.monotonic() - start, usage.ru_utime + usage.ru_stime)
        sender.wait(timeout=60)
    if transport == "unix" and os.path.exists(target):
        os.unlink(target)
    return result


def run(evcat, size=1 << 30, runs=3):
    """The table's rows: (transport, direction, tool, MB/s, MB per CPU second, peer CPU / evcat CPU or None)."""
    megabytes = size / 1e6
    rows = []
    for transport in ("tcp", "unix"):
        for direction in ("send", "receive"):
            samples = {tool: [] for tool in ("evcat", "socat", "ncat")}
            for _ in range(runs):
                for tool in samples:
                    samples[tool].append(one(tool, evcat, transport, direction, size))
            evcat_cpu = statistics.median(cpu for _, cpu in samples["evcat"])
            for tool, measured in samples.items():
                wall = statistics.median(w for w, _ in measured)
                cpu = statistics.median(c for _, c in measured)
                rows.append((transport, direction, tool, megabytes / wall, megabytes / cpu,
                             None if tool == "evcat" else cpu / evcat_cpu))
    return rows


def markdown(rows):
    lines = ["| transport | direction | tool | MB/s | MB per relay CPU s | evcat's MB per CPU s vs the tool's |",
             "|---|---|---|---:|---:|---:|"]
    for transport, direction, tool, rate, per_cpu, ratio in rows:
        lines.append(f"| {transport} | {direction} | {tool} | {rate:,.0f} | {per_cpu:,.0f} | "
                     f"{'' if ratio is None else f'{ratio:.2f}x'} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("evcat")
    parser.add_argument("--size", type=int, default=1 << 30)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    print(f"{arguments.size} bytes per run, median of {arguments.runs} runs, relay on core 0, peers on core 1\n")
    print(markdown(run(arguments.evcat, arguments.size, arguments.runs)))


if __name__ == "__main__":
    main()
