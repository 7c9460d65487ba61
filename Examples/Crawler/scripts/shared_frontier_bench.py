#!/usr/bin/env python3
"""Pages/s of `crawler web` sharing a Redis frontier, with 1, 2 and 3 processes,
against one process with no Redis; and Redis commands per page.

    swift build -c release --product server --product crawler
    python3 Examples/Crawler/scripts/shared_frontier_bench.py [--pages 20000] [--runs 3]

The HTTP server and redis-server run on CPU 0, the crawlers on CPU 1 (taskset),
each crawler with --concurrency 8 on the libev engine. Prints a Markdown table.
"""
import argparse, json, os, resource, shutil, socket, statistics, subprocess, tempfile, time

parser = argparse.ArgumentParser()
parser.add_argument("--pages", type=int, default=20000)
parser.add_argument("--runs", type=int, default=3)
parser.add_argument("--bin", default=".build/release")
parser.add_argument("--engine", default="libev")
args = parser.parse_args()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu(pid):
    """User + system CPU seconds of a running process (/proc/PID/stat)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def redis_cli(port, *words):
    return subprocess.run(["redis-cli", "-p", str(port), *words], capture_output=True, text=True, check=True).stdout.strip()


work = tempfile.mkdtemp(prefix="frontier-bench-")
redis_port = free_port()
redis = subprocess.Popen(["taskset", "-c", "0", "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                          "--dir", work, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
server = subprocess.Popen(["taskset", "-c", "0", f"{args.bin}/server", "http", "--engine", "libev", "--port", "0",
                           "--pages", str(args.pages)], stdout=subprocess.PIPE, text=True)
banner = server.stdout.readline()
http_port = int(banner.split(":")[-1].split("/")[0])
time.sleep(0.3)
url = f"http://127.0.0.1:{http_port}/"
expected = args.pages + 2
rows = []
try:
    for processes in [0, 1, 2, 3]:
        rates, per_page, cpu = [], [], {"crawlers": [], "server": [], "redis": []}
        for run in range(args.runs):
            prefix = f"bench{processes}r{run}"
            extra = [] if processes == 0 else ["--frontier", f"redis://127.0.0.1:{redis_port}/{prefix}"]
            redis_cli(redis_port, "CONFIG", "RESETSTAT")
            before = (children_cpu(), process_cpu(server.pid), process_cpu(redis.pid))
            start = time.monotonic()
            crawlers = [subprocess.Popen(["taskset", "-c", "1", f"{args.bin}/crawler", "web", url, "--engine", args.engine,
                                          "--concurrency", "8", "--json"] + extra, stdout=subprocess.PIPE, text=True)
                        for _ in range(max(processes, 1))]
            reports = [json.loads(c.communicate()[0]) for c in crawlers]
            wall = time.monotonic() - start
            after = (children_cpu(), process_cpu(server.pid), process_cpu(redis.pid))
            for name, b, a in zip(["crawlers", "server", "redis"], before, after):
                cpu[name].append((a - b) / expected * 1e6)
            pages = sum(r["pages"] for r in reports)
            assert pages == expected, (processes, pages)
            rates.append(expected / wall)
            if processes:
                stats = redis_cli(redis_port, "INFO", "commandstats")
                calls = sum(int(line.split("calls=")[1].split(",")[0]) for line in stats.splitlines() if line.startswith("cmdstat_eval"))
                per_page.append(calls / expected)
        rows.append((processes, statistics.median(rates), statistics.median(per_page) if per_page else None,
                     {name: statistics.median(values) for name, values in cpu.items()}))
finally:
    server.terminate()
    redis.terminate()
    server.wait()
    redis.wait()
    shutil.rmtree(work, ignore_errors=True)

base = rows[0][1]
print(f"{args.pages + 2} pages of the built-in site, {args.engine} engine, --concurrency 8 per process, median of {args.runs}")
print()
print("| crawler processes | frontier | pages/s | vs one process, no Redis | Redis commands per page | CPU µs per page: crawlers | HTTP server | Redis |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for processes, rate, commands, cpu in rows:
    label = "1" if processes == 0 else str(processes)
    frontier = "its own (memory)" if processes == 0 else "Redis"
    print(f"| {label} | {frontier} | {rate:,.0f} | {rate / base:.2f}x | {'-' if commands is None else f'{commands:.2f}'} "
          f"| {cpu['crawlers']:.0f} | {cpu['server']:.0f} | {cpu['redis']:.0f} |")
