#!/usr/bin/env python3
"""Every benchmark of the package, in one run: `make bench` (or `make bench-quick`).

Runs, on what is already built (release; `make bench` builds first, so that
nothing compiles during a run):
  1. ev-bench: the micro benchmarks (EV wrapper, Epoll loop, C libev, C epoll;
     interleaved rounds, medians, a fixed CPU loop for machine noise);
  2. http_bench.py: HTTP plaintext with wrk, every engine beside C libev, C
     epoll and SwiftNIO, and RSS per idle connection;
  3. the web crawler: pages/s per engine against the libev server;
  4. the poetry server engines under many slow clients.
Writes Benchmarks/RESULTS.md and Benchmarks/results/*.svg.

    bench.py [--quick]
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import http_bench  # noqa: E402


def command_output(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "not found"


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "swift": command_output(["swift", "--version"]).splitlines()[0] if command_output(["swift", "--version"]) else "?",
        "libev": command_output(["dpkg-query", "-W", "-f=${Version}", "libev-dev"]),
        "http_parser": command_output(["dpkg-query", "-W", "-f=${Version}", "libhttp-parser-dev"]),
        "wrk": command_output(["dpkg-query", "-W", "-f=${Version}", "wrk"]),
        "swift-nio": nio_version(),
    }


def nio_version():
    try:
        with open(f"{ROOT}/Benchmarks/Package.resolved") as f:
            for pin in json.load(f)["pins"]:
                if pin["identity"] == "swift-nio":
                    return pin["state"].get("version", "?")
    except (OSError, KeyError, ValueError):
        pass
    return "?"


def run_micro(quick):
    command = ["taskset", "-c", "0,1", f"{ROOT}/Benchmarks/.build/release/ev-bench"] + (["--quick"] if quick else ["--rounds", "3"])
    print("ev-bench ...", file=sys.stderr, flush=True)
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def run_crawler(rounds, engines):
    """Pages per second of `crawler web` on each engine, the libev server on CPU 0."""
    process, port = http_bench.start("libev")
    results = {}
    try:
        for _ in range(rounds):
            for engine in engines:
                output = subprocess.run(["taskset", "-c", "1", f"{ROOT}/.build/release/crawler", "web",
                                         f"http://127.0.0.1:{port}/", "--engine", engine, "--concurrency", "16", "--json"],
                                        capture_output=True, text=True, check=True).stdout
                report = json.loads(output)
                results.setdefault(engine, []).append(report["pages"] / report["wallSeconds"])
                print(f"crawler {engine}: {results[engine][-1]:.0f} pages/s", file=sys.stderr, flush=True)
    finally:
        process.terminate()
        process.wait()
    return {engine: http_bench.summarize(values) for engine, values in results.items()}


def run_poetry(clients, engines):
    """The poetry server engines under `clients` slow clients: CPU and memory per client."""
    poem = f"{ROOT}/.build/bench-poem.txt"
    with open(poem, "w") as f:
        f.write("slow poetry, fifty bytes a chunk, half a second apart.\n" * 11)
    results = {}
    for engine in engines:
        process = subprocess.Popen(["taskset", "-c", "0", f"{ROOT}/.build/release/server", "poetry", "--engine", engine,
                                    "--delay", "0.5", "--num-bytes", "50", poem],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, preexec_fn=http_bench.raise_fd_limit)
        port = re.search(r"port (\d+)", process.stdout.readline()).group(1)
        output = subprocess.run(["taskset", "-c", "1", sys.executable, f"{ROOT}/Examples/Server/scripts/slow_clients.py", port,
                                 str(clients), "--expect", poem, "--pid", str(process.pid)],
                                capture_output=True, text=True, preexec_fn=http_bench.raise_fd_limit).stdout
        process.terminate()
        process.wait()
        report = json.loads(output)
        results[engine] = report
        print(f"poetry {engine}: {report}", file=sys.stderr, flush=True)
    return results


def bar_chart(title, subtitle, rows, unit, path, reference=None):
    """A horizontal bar chart: rows of (label, median, min, max)."""
    width, left, bar_height, gap, top = 760, 150, 22, 10, 70
    height = top + len(rows) * (bar_height + gap) + 40
    largest = max(r[3] for r in rows) or 1
    scale = (width - left - 150) / largest
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="24" font-size="16" font-weight="bold">{title}</text>',
             f'<text x="{left}" y="46" fill="#555">{subtitle}</text>']
    for index, (label, median, low, high) in enumerate(rows):
        y = top + index * (bar_height + gap)
        color = "#c0392b" if label == reference else ("#2c7fb8" if not label.startswith(("C ", "SwiftNIO")) else "#7f8c8d")
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end">{label}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{median * scale:.1f}" height="{bar_height}" fill="{color}"/>')
        parts.append(f'<line x1="{left + low * scale:.1f}" x2="{left + high * scale:.1f}" y1="{y + bar_height / 2}" y2="{y + bar_height / 2}" stroke="black"/>')
        parts.append(f'<text x="{left + high * scale + 8:.1f}" y="{y + 16}">{median:,.0f} {unit}</text>')
    parts.append(f'<text x="{left}" y="{height - 12}" fill="#555">bars: medians; lines: min-max over the rounds</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def micro_ratio(micro, group_prefix, subject):
    """The 'vs C' ratio of `subject` in the first ev-bench group starting with `group_prefix`."""
    group = None
    for line in micro.splitlines():
        if line.startswith("## "):
            group = line[3:]
        elif group and group.startswith(group_prefix) and line.startswith(f"| {subject} |"):
            return float(line.rstrip(" |").split("|")[-1].strip().rstrip("x"))
    return None


def goals(http, micro):
    rows = ["| goal | measured | |", "|---|---:|---|"]

    def row(goal, value, target, higher_is_better=True, unit="x"):
        if value is None:
            rows.append(f"| {goal} | - | not measured |")
            return
        met = value >= target if higher_is_better else value <= target
        off = (value / target - 1) * 100
        shown = f"{value:,.0f}{unit}" if unit == " B" else f"{value:,.2f}{unit}"
        rows.append(f"| {goal} | {shown} | {'met' if met else f'missed by {abs(off):.0f} %'} |")

    def per_core(load, name):
        entry = http["loads"].get(load, {}).get(name)
        return entry["rpsPerCore"]["median"] if entry and entry["rpsPerCore"] else None

    for load in [l for l in ("64", "512") if l in http["loads"]]:
        c, nio = per_core(load, "c-libev"), per_core(load, "nio")
        for engine in ("libev", "epoll"):
            mine = per_core(load, engine)
            if mine and c:
                row(f"HTTP {load} connections, {engine} engine >= 0.9x C libev per core", mine / c, 0.9)
            if mine and nio:
                row(f"HTTP {load} connections, {engine} engine >= 1.8x SwiftNIO per core", mine / nio, 1.8)
        for engine in ("async", "async-epoll"):
            mine = per_core(load, engine)
            if mine and c:
                row(f"HTTP {load} connections, {engine} engine >= 0.7x C libev per core", mine / c, 0.7)
    if "64x16" in http["loads"]:
        c = per_core("64x16", "c-libev")
        for engine in ("libev", "epoll"):
            mine = per_core("64x16", engine)
            if mine and c:
                row(f"HTTP pipelined, {engine} engine >= 0.7x C libev per core", mine / c, 0.7)
    if "5000" in http["loads"]:
        errors = sum(http["loads"]["5000"][name]["errors"] for name in ("libev", "epoll", "async", "async-epoll")
                     if name in http["loads"]["5000"])
        rows.append(f"| 0 errors at 5,000 connections (libev, epoll, async, async-epoll) | {errors} | {'met' if errors == 0 else 'missed'} |")
    row("ping-pong: EV wrapper <= 1.1x C libev", micro_ratio(micro, "ping-pong", "EV wrapper"), 1.1, higher_is_better=False)
    row("timers: EV wrapper <= 1.25x C libev", micro_ratio(micro, "timers:", "EV wrapper"), 1.25, higher_is_better=False)
    for count, sizes in http["idleBytes"].items():
        for engine in ("libev", "epoll"):
            row(f"idle, {int(count):,} connections: {engine} engine <= 250 B each", sizes[engine], 250, higher_is_better=False, unit=" B")
        for engine in ("async", "async-epoll"):
            if engine in sizes:
                row(f"idle, {int(count):,} connections: {engine} engine <= 2 KiB each", sizes[engine], 2048, higher_is_better=False, unit=" B")
    return rows


LABELS = {"libev": "libev engine", "epoll": "epoll engine", "async": "async engine (libev)",
          "async-epoll": "async engine (epoll)", "threads": "threads engine",
          "c-libev": "C libev", "c-epoll": "C epoll", "nio": "SwiftNIO"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a smaller set, under 3 minutes")
    args = parser.parse_args()
    started = time.monotonic()
    info = machine()
    micro = run_micro(args.quick)
    if args.quick:
        http = http_bench.main(["--rounds", "1", "--duration", "3", "--loads", "64,64x16",
                                "--servers", "libev,epoll,async,async-epoll,c-libev,nio", "--idle", "2000"])
        crawler = run_crawler(1, ["libev", "epoll", "async", "async-epoll"])
        poetry = None
    else:
        http = http_bench.main(["--rounds", "3", "--duration", "4", "--loads", "64,512,64x16,5000",
                                "--idle", "10000,18000"])
        crawler = run_crawler(3, ["libev", "epoll", "async", "async-epoll"])
        poetry = run_poetry(10000, ["threads", "libev", "epoll", "async", "async-epoll"])
    elapsed = time.monotonic() - started

    os.makedirs(f"{ROOT}/Benchmarks/results", exist_ok=True)
    for load in http["loads"]:
        rows = []
        for name in http["servers"]:
            summary = http["loads"][load][name]["rpsPerCore"]
            if summary:
                rows.append((LABELS[name], summary["median"], summary["min"], summary["max"]))
        name = "http-" + load.replace("x", "-pipelined-")
        bar_chart(f"HTTP /plaintext, {load} connections" + (" (pipelined)" if "x" in load else ""),
                  "requests per second per server core (wrk -t1 on CPU 1, server on CPU 0)", rows, "req/s",
                  f"{ROOT}/Benchmarks/results/{name}.svg", reference="C libev")

    lines = ["# Benchmarks", "",
             f"`make bench{'-quick' if args.quick else ''}`, {info['date']}, {elapsed / 60:.1f} minutes. "
             "Release builds, built before the run. Servers and loops pinned to CPU 0, load (wrk, clients, senders) on CPU 1. "
             "Medians with min-max over interleaved rounds; ratios against C libev from the same run.", "",
             "| machine | |", "|---|---|"]
    for key, value in info.items():
        lines.append(f"| {key} | {value} |")
    lines += ["", "## HTTP plaintext (wrk)", "",
              "req/s per server core = req/s / the server's CPU share (from /proc/PID/stat). "
              "C libev and C epoll: `Benchmarks/Sources/c-*-http` (http_parser, the same response bytes); "
              "SwiftNIO: `Benchmarks/Sources/nio-http` (NIOHTTP1, one event loop).", ""]
    lines += [f"![HTTP, 64 connections](results/http-64.svg)", ""]
    lines.append(http_bench.markdown(http, http["servers"], list(http["loads"])))
    lines += ["", "## Web crawler", "", "`crawler web` on the built-in site (1,002 pages), 16 connections, against the libev server.", "",
              "| engine | pages/s |", "|---|---:|"]
    for engine, summary in crawler.items():
        lines.append(f"| {engine} | {summary['median']:,.0f} ({summary['min']:,.0f}-{summary['max']:,.0f}) |")
    if poetry:
        lines += ["", "## Slow poetry: 10,000 slow clients", "",
                  "`server poetry`, a 605-byte poem in 50-byte chunks every 0.5 s, `scripts/slow_clients.py` on CPU 1.", "",
                  "| engine | intact | server CPU s | peak RSS over baseline per client |", "|---|---:|---:|---:|"]
        for engine, report in poetry.items():
            per_client = (report.get("serverRssPeakKiB", 0) - report.get("serverRssBaselineKiB", 0)) * 1024 / max(report["clients"], 1)
            lines.append(f"| {engine} | {report['intact']} | {report.get('serverCpuSeconds', 0):.2f} | {per_client:,.0f} B |")
    lines += ["", "## Goals", "", "The goals the README states, against this run (met or missed, and by how much):", ""]
    lines += goals(http, micro)
    lines += ["", "## Micro benchmarks (ev-bench)", "", micro.replace("# EV wrapper", "### EV wrapper")]
    with open(f"{ROOT}/Benchmarks/results/results.json", "w") as f:
        json.dump({"machine": info, "http": http, "crawler": crawler, "poetry": poetry, "micro": micro}, f, indent=1)
    with open(f"{ROOT}/Benchmarks/RESULTS.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote Benchmarks/RESULTS.md and Benchmarks/results/*.svg in {elapsed / 60:.1f} minutes", file=sys.stderr)


main()
