#!/usr/bin/env bash
# The memcached benchmark (benches/benches/memcached.rs), pinned: a fresh memcached on core 0,
# the benchmark on core 1, ROUNDS times in a row (default 3). Each round prints the store beside
# raw gets and gets+cas at concurrency 1 and 64, and single-caller latency p50/p99.
#
#   scripts/bench-memcached.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
export MEMCACHED_BENCH_SECS=${2:-3}
cargo bench -p ratekeeper-benches --bench memcached --no-run -q 2>/dev/null
bench=$(ls -t target/release/deps/memcached-* | grep -v '\.d$' | head -1)
port=21299
user=()
if [ "$(id -u)" -eq 0 ]; then user=(-u root); fi
for round in $(seq "$rounds"); do
  taskset -c 0 memcached -l 127.0.0.1 -p $port -U 0 "${user[@]}" &
  pid=$!
  sleep 0.3
  echo "== round $round"
  MEMCACHED_BENCH_PORT=$port taskset -c 1 "$bench" --bench
  kill $pid
  wait $pid 2>/dev/null || true
done
