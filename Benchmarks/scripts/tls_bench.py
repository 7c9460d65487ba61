#!/usr/bin/env python3
"""HTTPS: `server http --tls-*` (the async engines) beside nginx with the same
certificate (ECDSA P-256, made here), one worker, pinned to CPU 0; wrk on
CPU 1. Two loads: keep-alive requests (64 connections) and full TLS
handshakes (`Connection: close`: wrk resumes no session, so every request
is a new connection and a full handshake). Reports req/s, the server's CPU
share (from /proc/PID/stat) and req/s per server core, and each engine's
ratio to nginx per core.

    tls_bench.py [--rounds N] [--duration SECONDS] [--engines async,async-epoll]
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SERVER = os.path.join(ROOT, ".build", "release", "server")
TICKS = os.sysconf("SC_CLK_TCK")

NGINX_CONFIG = """
worker_processes 1;
master_process off;
daemon off;
pid {directory}/nginx.pid;
error_log stderr error;
events {{ worker_connections 30000; use epoll; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 65;
  client_body_temp_path {directory};
  proxy_temp_path {directory};
  fastcgi_temp_path {directory};
  uwsgi_temp_path {directory};
  scgi_temp_path {directory};
  server {{
    listen 127.0.0.1:{port} ssl backlog=4096;
    ssl_certificate {certificate};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location = /plaintext {{ default_type text/plain; return 200 "Hello, World!"; }}
  }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def wait_port(port):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def start(name, certificate, key, directory):
    port = free_port()
    if name == "nginx":
        config = os.path.join(directory, "nginx.conf")
        with open(config, "w") as f:
            f.write(NGINX_CONFIG.format(directory=directory, port=port, certificate=certificate, key=key))
        command = ["taskset", "-c", "0", "/usr/sbin/nginx", "-c", config, "-e", "stderr"]
    else:
        command = ["taskset", "-c", "0", SERVER, "http", "--engine", name, "--port", str(port),
                   "--tls-cert", certificate, "--tls-key", key, "--max-connections", "20000"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process, port


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def measure(pid, port, duration, close):
    command = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{duration}s", f"https://127.0.0.1:{port}/plaintext"]
    if close:
        command[5:5] = ["-H", "Connection: close"]
    before, start = cpu_ticks(pid), time.monotonic()
    output = subprocess.run(command, capture_output=True, text=True).stdout
    cpu = (cpu_ticks(pid) - before) / TICKS / (time.monotonic() - start)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", output)
    return rate, cpu, errors.group(0) if errors else ""


def run(rounds=3, duration=4, engines=("async", "async-epoll")):
    """The measurement, as a Markdown table (with its heading line)."""
    directory = tempfile.mkdtemp(prefix="tls-bench-")
    certificate, key = certificates(directory)
    names = list(engines) + ["nginx"]
    results = {}
    for load, close in (("keep-alive", False), ("handshakes", True)):
        samples = {name: [] for name in names}
        for _ in range(rounds):
            for name in names:  # interleaved rounds
                process, port = start(name, certificate, key, directory)
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
    parser.add_argument("--engines", default="async,async-epoll")
    arguments = parser.parse_args()
    print(run(arguments.rounds, arguments.duration, arguments.engines.split(",")))


if __name__ == "__main__":
    main()
