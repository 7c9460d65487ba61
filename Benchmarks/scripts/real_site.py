#!/usr/bin/env python3
"""`crawler web` on a real HTML tree served by nginx: MB/s per crawler core.

The tree is a documentation site of tens of thousands of pages (by default
the Rust documentation rustup installs, when this machine has it). nginx
(one worker) runs on CPU 0, the crawler on CPU 1; the crawler's CPU time is
its own (wait4's rusage), so the figure is body bytes per second of crawler
CPU, whatever the server costs.

With --https, nginx serves the tree over https too (a CA and a certificate
made here, ECDSA P-256, TLS 1.3) with gzip on for both, and the crawler,
trusting the CA (--ca-file), crawls both: the two page sets are compared
(nginx's logs: the HTML pages answered 200) and each gets its MB/s per
crawler core.

    real_site.py [--tree DIR] [--engine libev] [--concurrency 16] [--runs 1] [--crawler PATH]
                 [--wget]   (also: wget -r --spider on the same site, HTML pages compared)
                 [--https]  (http and https, gzip on, page sets compared)

Prints a JSON object (pages, bytes, crawler CPU, MB/s per core, ...) on
stdout; exits 2 if there is no tree or no nginx.
"""
import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_tree():
    found = sorted(glob.glob(os.path.expanduser("~/.rustup/toolchains/*/share/doc/rust/html")))
    return found[0] if found else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def certificates(directory):
    """A CA and a certificate for 127.0.0.1 and localhost signed by it."""
    script = f"""
    set -e
    cd '{directory}'
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 30 -subj /CN=real-site-ca 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 30 -extfile server.ext 2>/dev/null
    """
    subprocess.run(["/bin/sh", "-c", script], check=True)
    return os.path.join(directory, "ca.pem"), os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")


def start_nginx(tree, port, directory, tls=None):
    """nginx on `port` (http); with tls = (port, certificate, key), also https
    on that port, and gzip on for both."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        sys.exit(2)
    log = os.path.join(directory, "access.log")
    config = os.path.join(directory, "nginx.conf")
    with open(config, "w") as f:
        # As root, nginx's worker would run as nobody and could not read a tree under /root.
        f.write(("user root;\n" if os.geteuid() == 0 else "") + f"""worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log {log};
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    types {{ text/html html; text/css css; application/javascript js; }}
    server {{ listen 127.0.0.1:{port}; root {tree}; }}
""" + ("" if tls is None else f"""    gzip on;
    gzip_types text/css application/javascript;
    server {{ listen 127.0.0.1:{tls[0]} ssl; root {tree};
        ssl_certificate {tls[1]}; ssl_certificate_key {tls[2]}; ssl_protocols TLSv1.3; }}
""") + "}\n")
    process = subprocess.Popen(["taskset", "-c", "0", nginx, "-c", config, "-p", directory],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, log
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit("nginx did not start")


def crawl(crawler, url, engine, concurrency, extra=()):
    # --per-host as --concurrency: one site, all the connections asked for.
    command = ["taskset", "-c", "1", crawler, "web", url, "--engine", engine,
               "--concurrency", str(concurrency), "--per-host", str(concurrency), "--json", *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    report = json.loads(output)
    cpu = usage.ru_utime + usage.ru_stime
    return {"pages": report["pages"], "bytes": report["bytes"], "errors": sum(report.get("errors", {}).values()),
            "wallSeconds": report["wallSeconds"], "crawlerCpuSeconds": cpu,
            "mbPerCrawlerCoreSecond": report["bytes"] / cpu / 1e6}


def html_200(log):
    pages = set()
    with open(log) as f:
        for line in f:
            parts = line.split('"')
            if len(parts) < 3:
                continue
            request, status = parts[1].split(" "), parts[2].split()
            if len(request) >= 2 and status and status[0] == "200" and request[1].split("?")[0].endswith((".html", "/")):
                pages.add(request[1])
    return pages


def bytes_sent(log):
    """The body bytes nginx sent (its log's $body_bytes_sent): compressed when gzip is on."""
    total = 0
    with open(log) as f:
        for line in f:
            parts = line.split('"')
            if len(parts) >= 3:
                fields = parts[2].split()
                if len(fields) >= 2 and fields[1].isdigit():
                    total += int(fields[1])
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", default=default_tree())
    parser.add_argument("--engine", default="libev")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--wget", action="store_true")
    parser.add_argument("--https", action="store_true", help="crawl over http and https (gzip on), page sets compared")
    parser.add_argument("--crawler", default=f"{ROOT}/.build/release/crawler", help="the crawler binary (release)")
    args = parser.parse_args()
    if not args.tree or not os.path.isfile(os.path.join(args.tree, "index.html")):
        print("no HTML tree (pass --tree DIR with an index.html)", file=sys.stderr)
        sys.exit(2)
    directory = tempfile.mkdtemp(prefix="real-site-")
    port = free_port()
    tls = None
    if args.https:
        ca, certificate, key = certificates(directory)
        tls = (free_port(), certificate, key)
    nginx, log = start_nginx(args.tree, port, directory, tls)
    sites = [("http", f"http://127.0.0.1:{port}/index.html", ())]
    if tls:
        sites.append(("https", f"https://127.0.0.1:{tls[0]}/index.html", ("--ca-file", ca)))
    try:
        summary = {"tree": args.tree, "engine": args.engine, "concurrency": args.concurrency}
        pages_of = {}
        for scheme, url, extra in sites:
            runs = []
            for index in range(args.runs):
                open(log, "w").close()
                result = crawl(args.crawler, url, args.engine, args.concurrency, extra)
                result["bytesSent"] = bytes_sent(log)
                runs.append(result)
                pages_of[scheme] = html_200(log)
                print(f"{scheme} run {index + 1}: {result['pages']:,} pages, {result['bytes'] / 1e6:,.1f} MB ({result['bytesSent'] / 1e6:,.1f} MB sent) in "
                      f"{result['crawlerCpuSeconds']:.2f} s of crawler CPU: {result['mbPerCrawlerCoreSecond']:.1f} MB/s per core"
                      + (f", {result['errors']} errors" if result["errors"] else ""),
                      file=sys.stderr, flush=True)
            best = max(runs, key=lambda r: r["mbPerCrawlerCoreSecond"])
            figures = {"runs": runs,
                       "mbPerCrawlerCoreSecond": sorted(r["mbPerCrawlerCoreSecond"] for r in runs)[len(runs) // 2],
                       "pages": best["pages"], "bytes": best["bytes"]}
            if scheme == "http":
                summary.update(figures)
            else:
                summary[scheme] = figures
        if tls:
            http_pages, https_pages = pages_of["http"], pages_of["https"]
            summary["https"]["samePages"] = http_pages == https_pages
            summary["https"]["htmlPages"] = {"http": len(http_pages), "https": len(https_pages),
                                             "onlyHTTP": sorted(http_pages - https_pages)[:20],
                                             "onlyHTTPS": sorted(https_pages - http_pages)[:20]}
        if args.wget:
            crawler_pages = pages_of["http"]
            open(log, "w").close()
            subprocess.run(["wget", "-q", "-r", "-l", "inf", "--spider", "-e", "robots=off", "-P", directory + "/wget",
                            sites[0][1]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wget_pages = html_200(log)
            summary["htmlPages"] = {"crawler": len(crawler_pages), "wget": len(wget_pages),
                                    "both": len(crawler_pages & wget_pages),
                                    "onlyWget": sorted(wget_pages - crawler_pages)[:20],
                                    "onlyCrawler": sorted(crawler_pages - wget_pages)[:20]}
        print(json.dumps(summary, indent=1))
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
