#!/usr/bin/env python3
"""HTTP plaintext with wrk: the server engines beside C libev and SwiftNIO.

Every server is pinned to CPU 0, wrk -t1 to CPU 1. Each round runs every
load against every server in turn (rounds interleave, so drift hits all
alike); a table gives medians with min-max over the rounds, req/s per server
core (req/s divided by the server's CPU share, from /proc/PID/stat), p99,
errors, and RSS per idle connection. Nothing is built here: build first
(`make bench` does).

    http_bench.py [--rounds 3] [--duration 10] [--loads 64,512,64x16,64close,5000]
                  [--servers libev,epoll,async,async-epoll,threads,c-libev,c-epoll,nio,nginx]
                  [--baseline DIR] [--idle 10000] [--json FILE]

A load is a connection count (keep-alive), COUNTxDEPTH (pipelined), or
COUNTclose: each request on a connection of its own (wrk's
`-H "Connection: close"`: the server answers and closes, and wrk connects
again), the load that costs an accept, a registration and a close per
request. `nginx` is Debian's nginx-light, one worker process (no master),
answering /plaintext with `return 200`. With --baseline DIR, every engine
of the package also runs from DIR's release build (a checkout of the code
before a change), as ENGINE@before, interleaved with the others.
"""
import argparse
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICKS = os.sysconf("SC_CLK_TCK")
PIPELINE_LUA = """
init = function(args)
  local depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil, "/plaintext") end
  req = table.concat(r)
end
request = function() return req end
"""


BASELINE = None


def server_command(name, port):
    if name.endswith("@before"):
        return [f"{BASELINE}/.build/release/server", "http", "--engine", name[:-len("@before")], "--port", str(port),
                "--max-connections", "20000"]
    if name == "c-libev":
        return [f"{ROOT}/Benchmarks/.build/release/c-libev-http", str(port)]
    if name == "c-epoll":
        return [f"{ROOT}/Benchmarks/.build/release/c-epoll-http", str(port)]
    if name == "nio":
        return [f"{ROOT}/Benchmarks/.build/release/nio-http", str(port)]
    return [f"{ROOT}/.build/release/server", "http", "--engine", name, "--port", str(port),
            "--max-connections", "20000"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


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
    listen 127.0.0.1:{port}{listen_options} backlog=4096;{server_extra}
    location = /plaintext {{ default_type text/plain; return 200 "Hello, World!"; }}
  }}
}}
"""


def start_nginx(port, listen_options="", server_extra=""):
    """nginx on `port`; `listen_options` (" ssl") and `server_extra` (its
    certificate lines) make it serve HTTPS (Benchmarks/scripts/tls_bench.py)."""
    directory = tempfile.mkdtemp(prefix="bench-nginx-")
    config = os.path.join(directory, "nginx.conf")
    with open(config, "w") as f:
        f.write(NGINX_CONFIG.format(directory=directory, port=port, listen_options=listen_options, server_extra=server_extra))
    nginx = "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        sys.exit("nginx is not installed (Debian's nginx-light): apt-get install nginx-light")
    process = subprocess.Popen(["taskset", "-c", "0", nginx, "-c", config, "-e", "stderr"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, preexec_fn=raise_fd_limit)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, port
        except OSError:
            time.sleep(0.05)
    sys.exit("nginx did not start")


def start(name, extra_arguments=()):
    """`name`'s server on a free port, on CPU 0, once it serves; `extra_arguments`
    go to `server http` (`--tls-cert ...`)."""
    port = free_port()
    if name == "nginx":
        return start_nginx(port)
    process = subprocess.Popen(["taskset", "-c", "0"] + server_command(name, port) + list(extra_arguments), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, preexec_fn=raise_fd_limit)
    line = process.stdout.readline()
    if "Serving" not in line:
        sys.exit(f"{name} did not start: {line!r}")
    return process, port


def rate_and_cpu(pid, url, duration, headers=()):
    """wrk -t1 -c64 on CPU 1 against `url` for `duration` s: its req/s, the
    server `pid`'s CPU share over the run, and wrk's errors ("" if none)."""
    command = ["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{duration}s"]
    for header in headers:
        command += ["-H", header]
    before, started = cpu_seconds(pid), time.monotonic()
    output = subprocess.run(command + [url], capture_output=True, text=True).stdout
    cpu = (cpu_seconds(pid) - before) / (time.monotonic() - started)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", output)
    return rate, cpu, errors.group(0) if errors else ""


def parse_latency(text, name):
    match = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)\b", text)
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value if unit == "ms" else value * 1000


def run_wrk(port, load, duration, lua_path):
    close = load.endswith("close")
    spec = load[:-len("close")] if close else load
    connections, depth = (int(x) for x in spec.split("x")) if "x" in spec else (int(spec), 1)
    command = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if close:
        command += ["-H", "Connection: close"]
    if depth > 1:
        command += ["-s", lua_path]
    command += [f"http://127.0.0.1:{port}/plaintext"]
    if depth > 1:
        command += ["--", str(depth)]
    output = subprocess.run(command, capture_output=True, text=True, preexec_fn=raise_fd_limit).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    # With pipelining wrk times only some requests and may print 0: no figure then.
    p50, p99 = parse_latency(output, "50"), parse_latency(output, "99")
    return {"rps": rps, "p50": p50 or None, "p99": p99 or None, "errors": errors}


# One keep-alive request on a connection, its whole answer read: after it the
# connection is idle, as a browser's or a client pool's is between requests.
ONE_REQUEST = (
    "def ask(c):\n"
    " c.sendall(b'GET /plaintext HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n')\n"
    " got=b''\n"
    " while not (b'\\r\\n\\r\\n' in got and got.endswith(b'Hello, World!')):\n"
    "  part=c.recv(4096)\n"
    "  assert part, 'the server closed'\n"
    "  got+=part\n"
    " return c\n")


def idle_bytes(pid, port, count, one_request=False):
    """The server's RSS growth per connection held open by another process;
    with one_request, each connection first had one keep-alive request answered."""
    connect = f"socket.create_connection(('127.0.0.1',{port}))"
    script = ("import resource,signal,socket,sys\n"
              "s,h=resource.getrlimit(resource.RLIMIT_NOFILE);resource.setrlimit(resource.RLIMIT_NOFILE,(h,h))\n"
              + (ONE_REQUEST if one_request else "")
              + f"held=[{'ask(' + connect + ')' if one_request else connect} for _ in range({count})]\n"
              "print('ready',flush=True);signal.pause()\n")
    before = rss_kib(pid)
    holder = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    holder.stdout.readline()
    time.sleep(1.0)
    after = rss_kib(pid)
    holder.kill()
    holder.wait()
    time.sleep(1.0)
    return (after - before) * 1024 / count


def summarize(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--loads", default="64,512,64x16")
    parser.add_argument("--servers", default="libev,epoll,async,async-epoll,threads,c-libev,c-epoll,nio")
    parser.add_argument("--idle", default="10000", help="idle connection counts, comma-separated (0: none)")
    parser.add_argument("--keepalive-idle", default="0",
                        help="counts of idle connections after one keep-alive request each, comma-separated (0: none)")
    parser.add_argument("--baseline", help="a checkout whose release server runs beside, as ENGINE@before")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    servers = args.servers.split(",")
    if args.baseline:
        global BASELINE
        BASELINE = os.path.abspath(args.baseline)
        ours = [name for name in servers if name in ("libev", "epoll", "async", "async-epoll", "threads")]
        servers = [x for name in servers for x in ([name, name + "@before"] if name in ours else [name])]
    loads = args.loads.split(",")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(PIPELINE_LUA)
    raise_fd_limit()
    running = {name: start(name) for name in servers}
    samples = {(name, load): [] for name in servers for load in loads}
    try:
        for round_index in range(args.rounds):
            for load in loads:
                for name in servers:
                    process, port = running[name]
                    cpu_before, wall_before = cpu_seconds(process.pid), time.monotonic()
                    result = run_wrk(port, load, args.duration, lua.name)
                    share = (cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - wall_before)
                    result["cpuShare"] = share
                    result["rpsPerCore"] = result["rps"] / share if share > 0.05 else None
                    samples[(name, load)].append(result)
                    print(f"round {round_index + 1} {load:>6} {name:>8}: {result['rps']:>10.0f} req/s, "
                          f"CPU {share:4.2f}, p99 {result['p99']} ms, errors {result['errors']}", file=sys.stderr, flush=True)
        idle, keep_alive = {}, {}
        for one_request, counts, table in ((False, args.idle, idle), (True, args.keepalive_idle, keep_alive)):
            for count in [int(c) for c in counts.split(",") if int(c) > 0]:
                table[count] = {}
                for name in servers:
                    # A fresh server each time: freed memory would be reused and hide the cost.
                    running[name][0].terminate()
                    running[name][0].wait()
                    running[name] = start(name)
                    process, port = running[name]
                    table[count][name] = idle_bytes(process.pid, port, count, one_request)
                    print(f"idle {count}{' after a request' if one_request else ''} {name}: "
                          f"{table[count][name]:.0f} B/connection", file=sys.stderr, flush=True)
    finally:
        for process, _ in running.values():
            process.terminate()
            process.wait()
        os.unlink(lua.name)

    results = {"rounds": args.rounds, "duration": args.duration, "loads": {}, "idleBytes": idle,
               "keepAliveIdleBytes": keep_alive}
    for load in loads:
        results["loads"][load] = {}
        for name in servers:
            runs = samples[(name, load)]
            results["loads"][load][name] = {
                "rps": summarize([r["rps"] for r in runs]),
                "rpsPerCore": summarize([r["rpsPerCore"] for r in runs]),
                "cpuShare": summarize([r["cpuShare"] for r in runs]),
                "p50": summarize([r["p50"] for r in runs]),
                "p99": summarize([r["p99"] for r in runs]),
                "errors": sum(r["errors"] for r in runs),
            }
    results["servers"] = servers
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(markdown(results, servers, loads))
    return results


def markdown(results, servers, loads):
    def cell(summary, digits=0):
        if summary is None:
            return "-"
        fmt = f"{{:,.{digits}f}}"
        return f"{fmt.format(summary['median'])} ({fmt.format(summary['min'])}-{fmt.format(summary['max'])})"

    lines = []
    for load in loads:
        rows = results["loads"][load]
        reference = rows.get("c-libev", {}).get("rpsPerCore")
        nginx = rows.get("nginx", {}).get("rpsPerCore")
        kind = " (pipelined)" if "x" in load else ""
        if load.endswith("close"):
            kind, count = " (Connection: close: a connection per request)", load[:-len("close")]
        else:
            count = load
        lines.append(f"\n**{count} connections{kind}**, {results['rounds']} rounds of {results['duration']} s\n")
        lines.append("| server | req/s | server CPU | req/s per server core | vs C libev | vs nginx | p50 ms | p99 ms | errors |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name in servers:
            row = rows[name]
            ratios = []
            for base in (reference, nginx):
                ratios.append(f"{row['rpsPerCore']['median'] / base['median']:.2f}x" if base and row["rpsPerCore"] else "-")
            lines.append(f"| {name} | {cell(row['rps'])} | {cell(row['cpuShare'], 2)} | {cell(row['rpsPerCore'])} | {ratios[0]} | "
                         f"{ratios[1]} | {cell(row['p50'], 2)} | {cell(row['p99'], 2)} | {row['errors']} |")
    for key, title in (("idleBytes", "**Idle connections**: the server's RSS growth per idle connection, in bytes (a fresh server each)"),
                       ("keepAliveIdleBytes", "**Idle keep-alive connections**: the same, after one keep-alive request answered on each")):
        table = results.get(key) or {}
        if not table:
            continue
        counts = sorted(table, key=int)
        lines.append(f"\n{title}\n")
        lines.append("| server | " + " | ".join(f"{int(c):,} connections" for c in counts) + " |")
        lines.append("|---|" + "---:|" * len(counts))
        for name in servers:
            lines.append(f"| {name} | " + " | ".join(f"{table[c][name]:,.0f}" for c in counts) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
