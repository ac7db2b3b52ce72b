#!/usr/bin/env bash
# Throughput and server CPU per request of a hello-world Tide server, bare and behind the rate
# limiter (memory store), in the same run: rounds alternate the modes, the server pinned to
# core 0 and wrk to core 1. CPU per request (the server's user+system time over the requests
# wrk completed) is steadier than requests per second on a noisy VM. Prints each round, the
# medians and the ratios. Installs wrk when it is missing.
#
#   scripts/bench-http.sh [ROUNDS] [SECONDS] [MODES...]     (modes: bare noop headers unkeyed limited)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-8}
shift 2 2>/dev/null || true
modes=("${@:-bare limited}")
read -r -a modes <<<"${modes[*]}"
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update >/dev/null && apt-get install -y wrk >/dev/null
fi
cargo build -q --release -p ratekeeper-examples --example http_bench_server
server=target/release/examples/http_bench_server
port=18777
ticks=$(getconf CLK_TCK)
out=$(mktemp)
for round in $(seq "$rounds"); do
  for mode in "${modes[@]}"; do
    taskset -c 0 "$server" "$mode" "$port" &
    pid=$!
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
    cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    report=$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" "http://127.0.0.1:$port/")
    cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$report")
    requests=$(awk '/requests in/ {print $1}' <<<"$report")
    us=$(python3 -c "print(f'{($cpu1 - $cpu0) / $ticks * 1e6 / $requests:.2f}')")
    echo "round $round: $mode $rps req/s, $us us CPU/request"
    echo "$mode $rps $us" >>"$out"
  done
done
python3 - "$out" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
modes = list(dict.fromkeys(r[0] for r in rows))
med = {m: (statistics.median(float(r[1]) for r in rows if r[0] == m),
           statistics.median(float(r[2]) for r in rows if r[0] == m)) for m in modes}
base = med[modes[0]]
for m in modes:
    rps, us = med[m]
    print(f"median {m:>8}: {rps:8.0f} req/s ({rps / base[0]:.3f}x), {us:6.2f} us CPU/request ({us / base[1]:.3f}x)")
PY
rm -f "$out"
