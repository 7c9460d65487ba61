#!/bin/bash
# A/B of server binaries on one HTTP load, interleaved: each round starts a
# fresh server per binary on CPU 0, runs wrk on CPU 1 for 4 s, and prints
# req/s, the server's CPU share (from /proc/PID/stat) and req/s per core.
#
#   Benchmarks/scripts/ab_http.sh ENGINE CONNECTIONS ROUNDS SERVER-BINARY...
#   Benchmarks/scripts/ab_http.sh async 64 4 /tmp/server-new /tmp/server-old
set -euo pipefail
engine=$1; conns=$2; rounds=$3; shift 3
ticks=$(getconf CLK_TCK)
for round in $(seq "$rounds"); do
  for bin in "$@"; do
    port=$((20000 + RANDOM % 10000))
    taskset -c 0 "$bin" http --engine "$engine" --port "$port" --max-connections 20000 > /dev/null 2>&1 &
    server=$!
    sleep 0.7
    before=$(awk '{print $14 + $15}' "/proc/$server/stat")
    rps=$(taskset -c 1 wrk -t1 -c"$conns" -d4s "http://127.0.0.1:$port/plaintext" 2>/dev/null | awk '/Requests\/sec/ {print $2}')
    after=$(awk '{print $14 + $15}' "/proc/$server/stat")
    kill "$server"; wait "$server" 2>/dev/null || true
    python3 -c "import sys; rps, cpu = float('$rps'), ($after - $before) / $ticks / 4; print(f'round $round $bin: {rps:,.0f} req/s, CPU {cpu:.2f}, {rps / cpu:,.0f} per core')"
  done
done
