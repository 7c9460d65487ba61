#!/usr/bin/env python3
"""The cost of the loops' monitors and metrics: `server http` with and
without `--metrics-port` (the monitor on every callback and task step, its
probe every 10 ms, the reports each second), one worker pinned to CPU 0,
wrk -t1 -c64 keep-alive GET /plaintext on CPU 1, interleaved rounds in one
run. Reports req/s per server core for each, and the ratio (goal, issue 26:
under 3 % apart).

    metrics_cost.py [--rounds N] [--duration SECONDS] [--engines libev,epoll,async,async-epoll]
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bench  # noqa: E402  the server's start (pinned), the CPU reading


def measure(pid, port, duration):
    rate, cpu, _ = http_bench.rate_and_cpu(pid, f"http://127.0.0.1:{port}/plaintext", duration)
    return rate, cpu


def run(rounds=5, duration=4, engines=("libev", "epoll", "async", "async-epoll")):
    """The measurement, as a Markdown table (with its heading line)."""
    variants = (("off", ()), ("on", ("--metrics-port", "0")))
    samples = {(engine, variant): [] for engine in engines for variant, _ in variants}
    for _ in range(rounds):
        for engine in engines:
            for variant, extra in variants:  # interleaved: off, on, off, on...
                process, port = http_bench.start(engine, list(extra))
                try:
                    samples[(engine, variant)].append(measure(process.pid, port, duration))
                finally:
                    process.kill()
                    process.wait()
    lines = [f"HTTP /plaintext keep-alive, wrk -t1 -c64 on CPU 1, server on CPU 0, {rounds} interleaved rounds of {duration} s; medians", "",
             "| engine | metrics | req/s | server CPU | req/s per server core | on vs off |", "|---|---|---:|---:|---:|---:|"]
    for engine in engines:
        per_core = {variant: statistics.median(rate / max(cpu, 0.01) for rate, cpu in samples[(engine, variant)])
                    for variant, _ in variants}
        for variant, _ in variants:
            runs = samples[(engine, variant)]
            lines.append(f"| {engine} | {variant} | {statistics.median(r for r, _ in runs):,.0f} | "
                         f"{statistics.median(c for _, c in runs):.2f} | {per_core[variant]:,.0f} | "
                         f"{per_core[variant] / per_core['off']:.3f}x |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--engines", default="libev,epoll,async,async-epoll")
    arguments = parser.parse_args()
    print(run(arguments.rounds, arguments.duration, arguments.engines.split(",")))


if __name__ == "__main__":
    main()
