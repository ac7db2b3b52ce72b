#!/usr/bin/env bash
# Throughput of the seed tour as users run it (`cargo run --release --example seed_tour`, memory
# storage, served by ratekeeper_tide::HttpListener): `wrk -t1 -c32` keep-alive on GET /api/status
# with a new X-API-Key per request, the default limits raised so that every request is allowed
# (two default limits and a meta gate charged). In each round the seed tour on axum
# (`seed_tour_axum`, same configuration) and, for scale, a bare hello-world Tide app served like
# the Tide tour (`http_bench_server bare`). Server pinned to core 0, wrk to core 1. Prints each
# round, then the medians of requests per second and server CPU per request (user+system time
# over the requests wrk completed).
#
#   scripts/bench-seed.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-5}
if ! command -v wrk >/dev/null 2>&1; then
  apt-get update >/dev/null && apt-get install -y wrk >/dev/null
fi
cargo build -q --release -p ratekeeper-examples --example seed_tour --example seed_tour_axum --example http_bench_server --features axum,redis
port=18778
# The seed's two default limits, large enough that every request is allowed (made-up API keys
# all count as the one client they come from).
defaults="1000000000 per day; 1000000000 per hour"
ticks=$(getconf CLK_TCK)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
run() { # NAME URL COMMAND...
  local name=$1 url=$2
  shift 2
  taskset -c 0 "$@" >/dev/null &
  local pid=$!
  for _ in $(seq 50); do curl -s -o /dev/null "$url" && break; sleep 0.1; done
  local cpu0 cpu1 report rps requests non2xx us
  cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  report=$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" -s scripts/wrk/new-api-key.lua "$url")
  cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$report")
  requests=$(awk '/requests in/ {print $1}' <<<"$report")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$report")
  us=$(python3 -c "print(f'{($cpu1 - $cpu0) / $ticks * 1e6 / $requests:.2f}')")
  echo "round $round: $name $rps req/s, $us us CPU/request, non-2xx: ${non2xx:-0}"
  echo "$name $rps $us" >>"$out"
}
for round in $(seq "$rounds"); do
  PORT=$port RATELIMIT_DEFAULT="$defaults" run seed_tour "http://127.0.0.1:$port/api/status" target/release/examples/seed_tour
  PORT=$port RATELIMIT_DEFAULT="$defaults" run seed_tour_axum "http://127.0.0.1:$port/api/status" target/release/examples/seed_tour_axum
  run bare "http://127.0.0.1:$port/" target/release/examples/http_bench_server bare "$port"
done
python3 - "$out" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for name in dict.fromkeys(r[0] for r in rows):
    rps = statistics.median(float(r[1]) for r in rows if r[0] == name)
    us = statistics.median(float(r[2]) for r in rows if r[0] == name)
    print(f"median {name:>9}: {rps:7.0f} req/s, {us:6.2f} us CPU/request")
PY
