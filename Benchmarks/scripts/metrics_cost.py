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
             "| engine | metrics | req/s | server CPU | req/s per server core | on vs off | on/off pair by pair: median (quartiles) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    all_pairs = []
    for engine in engines:
        per_core = {variant: statistics.median(rate / max(cpu, 0.01) for rate, cpu in samples[(engine, variant)])
                    for variant, _ in variants}
        # Each round's on against the same round's off (run one after the
        # other): the drift of the machine between rounds cancels out.
        pairs = [(on_rate / max(on_cpu, 0.01)) / (off_rate / max(off_cpu, 0.01))
                 for (off_rate, off_cpu), (on_rate, on_cpu) in zip(samples[(engine, "off")], samples[(engine, "on")])]
        all_pairs += pairs
        for variant, _ in variants:
            runs = samples[(engine, variant)]
            paired = "" if variant == "off" else spread(pairs)
            lines.append(f"| {engine} | {variant} | {statistics.median(r for r, _ in runs):,.0f} | "
                         f"{statistics.median(c for _, c in runs):.2f} | {per_core[variant]:,.0f} | "
                         f"{per_core[variant] / per_core['off']:.3f}x | {paired} |")
    lines += ["", f"Every engine's pairs together ({len(all_pairs)}): on/off {spread(all_pairs)}"]
    return "\n".join(lines)


def spread(ratios):
    """The median ratio and its quartiles, as `0.970x (0.930-1.010)`."""
    if len(ratios) < 2:
        return f"{ratios[0]:.3f}x" if ratios else ""
    low, middle, high = statistics.quantiles(ratios, n=4)
    return f"{statistics.median(ratios):.3f}x ({low:.3f}-{high:.3f})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--engines", default="libev,epoll,async,async-epoll")
    arguments = parser.parse_args()
    print(run(arguments.rounds, arguments.duration, arguments.engines.split(",")))


if __name__ == "__main__":
    main()
