#!/usr/bin/env python3
"""HTTPS: `server http --tls-*` (the evented engines) beside nginx with the same
certificate (ECDSA P-256, made here), one worker, pinned to CPU 0; wrk on
CPU 1. Two loads: keep-alive requests (64 connections) and full TLS
handshakes (`Connection: close`: wrk resumes no session, so every request
is a new connection and a full handshake). Reports req/s, the server's CPU
share (from /proc/PID/stat) and req/s per server core, and each engine's
ratio to nginx per core.

    tls_bench.py [--rounds N] [--duration SECONDS] [--engines libev,epoll,async,async-epoll]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bench  # noqa: E402  the servers' commands, nginx's configuration, the CPU reading

def certificates(directory):
    script = f"""
    set -e
    cd '{directory}'
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 -subj /CN=bench-ca 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 30 -extfile server.ext 2>/dev/null
    """
    subprocess.run(["/bin/sh", "-c", script], check=True)
    return os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")


def start(name, certificate, key):
    """`name` serving HTTPS with the certificate, on CPU 0 (http_bench's starts)."""
    if name == "nginx":
        return http_bench.start_nginx(http_bench.free_port(), " ssl",
                                      f"\n    ssl_certificate {certificate};\n    ssl_certificate_key {key};"
                                      "\n    ssl_protocols TLSv1.2 TLSv1.3;")
    return http_bench.start(name, ["--tls-cert", certificate, "--tls-key", key])


def measure(pid, port, duration, close):
    return http_bench.rate_and_cpu(pid, f"https://127.0.0.1:{port}/plaintext", duration,
                                   ["Connection: close"] if close else [])


def run(rounds=3, duration=4, engines=("libev", "epoll", "async", "async-epoll")):
    """The measurement, as a Markdown table (with its heading line)."""
    directory = tempfile.mkdtemp(prefix="tls-bench-")
    certificate, key = certificates(directory)
    names = list(engines) + ["nginx"]
    results = {}
    for load, close in (("keep-alive", False), ("handshakes", True)):
        samples = {name: [] for name in names}
        for _ in range(rounds):
            for name in names:  # interleaved rounds
                process, port = start(name, certificate, key)
                try:
                    samples[name].append(measure(process.pid, port, duration, close))
                finally:
                    process.kill()
                    process.wait()
        results[load] = samples
    lines = [f"HTTPS /plaintext, wrk -t1 -c64 on CPU 1, server on CPU 0, {rounds} interleaved rounds of {duration} s; medians", "",
             "| load | server | req/s | server CPU | req/s per server core | vs nginx | errors |",
             "|---|---|---:|---:|---:|---:|---|"]
    for load, samples in results.items():
        per_core = {name: statistics.median(rate / max(cpu, 0.01) for rate, cpu, _ in runs) for name, runs in samples.items()}
        for name, runs in samples.items():
            rate = statistics.median(r for r, _, _ in runs)
            cpu = statistics.median(c for _, c, _ in runs)
            errors = "; ".join(sorted({e for _, _, e in runs if e}))
            lines.append(f"| {load} | {name} | {rate:,.0f} | {cpu:.2f} | {per_core[name]:,.0f} | "
                         f"{per_core[name] / per_core['nginx']:.2f}x | {errors} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--engines", default="libev,epoll,async,async-epoll")
    arguments = parser.parse_args()
    print(run(arguments.rounds, arguments.duration, arguments.engines.split(",")))


if __name__ == "__main__":
    main()
