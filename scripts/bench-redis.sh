#!/usr/bin/env bash
# The Redis benchmark (benches/benches/redis.rs), pinned: a fresh redis-server on core 0, the
# benchmark and redis-benchmark on core 1, ROUNDS times in a row (default 3), each round in two
# placements of the callers: on another thread than the redis connection's driver ("foreign
# thread", as from async-std's executor) and on smol's executor with it ("smol executor",
# SMOL_THREADS=1). Each prints
# RedisStorage beside a raw EVALSHA of the same script (in-process and redis-benchmark) at
# concurrency 1 and 64, single-client latency p50/p99, and INFO commandstats around 1000
# Limiter decisions.
#
#   scripts/bench-redis.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
export REDIS_BENCH_SECS=${2:-3}
cargo bench -p ratekeeper-benches --bench redis --no-run -q 2>/dev/null
bench=$(ls -t target/release/deps/redis-* | grep -v '\.d$' | head -1)
port=26999
dir=$(mktemp -d)
trap 'redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
for round in $(seq "$rounds"); do
  taskset -c 0 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes >/dev/null
  for _ in $(seq 50); do redis-cli -p $port PING >/dev/null 2>&1 && break; sleep 0.1; done
  echo "== round $round, callers on a foreign thread"
  REDIS_BENCH_PORT=$port taskset -c 1 "$bench" --bench
  echo "== round $round, callers on smol's executor"
  REDIS_BENCH_SPAWN=1 SMOL_THREADS=1 REDIS_BENCH_PORT=$port taskset -c 1 "$bench" --bench
  redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true
  sleep 0.5
done
