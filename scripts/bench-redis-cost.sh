#!/usr/bin/env bash
# The Redis server's time per request (benches/benches/redis_cost.rs): a fresh redis-server
# alone on core 0, the benchmark on core 1, ROUNDS times (default 3). Each round prints, per
# row, the sum of `usec` over `INFO commandstats` divided by the requests sent, and the
# commands per request, beside the anchors (a trivial EVALSHA, INCR, MULTI INCR PEXPIRE EXEC).
#
#   scripts/bench-redis-cost.sh [ROUNDS] [REQUESTS_PER_ROW]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
export REDIS_COST_CALLS=${2:-20000}
cargo bench -p ratelimit-benches --bench redis_cost --no-run -q
bench=$(ls -t target/release/deps/redis_cost-* | grep -v '\.d$' | head -1)
port=26998
dir=$(mktemp -d)
trap 'redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
for round in $(seq "$rounds"); do
  taskset -c 0 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes >/dev/null
  for _ in $(seq 50); do redis-cli -p $port PING >/dev/null 2>&1 && break; sleep 0.1; done
  echo "== round $round ($(redis-server --version | awk '{print $3}'))"
  REDIS_BENCH_PORT=$port taskset -c 1 "$bench" --bench
  redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true
  sleep 0.5
done
