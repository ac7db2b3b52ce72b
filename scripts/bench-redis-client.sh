#!/usr/bin/env bash
# Regression check of the Redis client path: `ratekeeper bench` at 8 concurrent decisions (one
# fixed-window limit, every decision allowed, 1,000 clients) beside a raw loop of a
# comparable script (`redis-benchmark`, 8 connections, EVALSHA of an INCRBY + PEXPIRE + PTTL
# script on 1,000 random keys), on one redis-server pinned to core 0 with both clients on
# core 1, ROUNDS rounds alternating. Prints each figure and ours as a ratio of the raw loop,
# and fails when the median ratio is below MIN_RATIO (default 0.5).
#
#   cargo build --release -p ratekeeper-cli
#   scripts/bench-redis-client.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-3}
min_ratio=${MIN_RATIO:-0.5}
bin=${OURS_BIN:-target/release/ratekeeper}
[ -x "$bin" ] || { echo "build it first: cargo build --release -p ratekeeper-cli" >&2; exit 2; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
trap 'redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
  --daemonize yes --pidfile "$dir/redis.pid" >/dev/null
for _ in $(seq 50); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
script="local c = redis.call('INCRBY', KEYS[1], 1) if c == 1 then redis.call('PEXPIRE', KEYS[1], 60000) end return {c, redis.call('PTTL', KEYS[1])}"
sha=$(redis-cli -p "$port" SCRIPT LOAD "$script")
ratios=()
printf '%5s %14s %14s %7s\n' round raw_evalsha/s ours/s ratio
for round in $(seq "$rounds"); do
  raw() {
    redis-cli -p "$port" FLUSHALL >/dev/null
    taskset -c 1 timeout $((secs + 30)) redis-benchmark -p "$port" -c 8 -r 1000 -n $((secs * 60000)) \
      --csv EVALSHA "$sha" 1 'k:__rand_int__' | awk -F'","' 'NR==2 {print $2}'
  }
  ours() {
    redis-cli -p "$port" FLUSHALL >/dev/null
    taskset -c 1 "$bin" bench --storage "redis://127.0.0.1:$port" --concurrency 8 \
      --duration "${secs}s" --keys 1000 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["decisions_per_sec"])'
  }
  if [ $((round % 2)) = 1 ]; then r=$(raw); o=$(ours); else o=$(ours); r=$(raw); fi
  ratio=$(python3 -c "print(f'{$o / $r:.2f}')")
  ratios+=("$ratio")
  printf '%5s %14.0f %14.0f %7s\n' "$round" "$r" "$o" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median ratio $median (floor $min_ratio)"
python3 -c "import sys; sys.exit(0 if $median >= $min_ratio else 1)"
