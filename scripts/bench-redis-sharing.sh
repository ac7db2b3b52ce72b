#!/usr/bin/env bash
# Decisions per second and the Redis server's cost per decision at 1, 8 and 64 concurrent
# decisions (`ratekeeper bench`, every decision allowed, the seed's two default limits), one
# pinned redis-server on core 0 and the benchmark on core 1, for each configuration given as
# LABEL=BINARY or LABEL=BINARY?URI-OPTIONS, in turn, ROUNDS times. Columns: decisions/s, p50
# and p99 latency, the redis-server process's CPU time per decision (user + system, /proc),
# the sum of `usec` in INFO commandstats per decision, and decisions per FCALL (the mean
# batch count of a call when concurrent decisions share calls).
#
#   scripts/bench-redis-sharing.sh [SECONDS] [ROUNDS] [LABEL=BINARY[?OPTIONS]...]
#
# Default: default=target/release/ratekeeper and shared=target/release/ratekeeper?coalesce=64
# (build it with `cargo build --release -p ratekeeper-cli`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-2}
shift $(($# < 2 ? $# : 2))
configs=("$@")
if [ ${#configs[@]} -eq 0 ]; then
  configs=("default=target/release/ratekeeper" "shared=target/release/ratekeeper?coalesce=64")
fi
port=26997
dir=$(mktemp -d)
trap 'redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
taskset -c 0 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" >/dev/null
for _ in $(seq 50); do redis-cli -p $port PING >/dev/null 2>&1 && break; sleep 0.1; done
pid=$(cat "$dir/redis.pid")
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
printf '%-8s %5s %3s %12s %8s %8s %13s %13s %13s\n' config round C decisions/s p50_us p99_us redis_cpu_us cmdstat_us decisions/call
for round in $(seq "$rounds"); do
  for c in 1 8 64; do
    for config in "${configs[@]}"; do
      label=${config%%=*}
      target=${config#*=}
      bin=${target%%\?*}
      options=""
      [ "$target" != "$bin" ] && options="?${target#*\?}"
      redis-cli -p $port FLUSHALL >/dev/null
      redis-cli -p $port CONFIG RESETSTAT >/dev/null
      t0=$(ticks)
      json=$(taskset -c 1 "$bin" bench --storage "redis://127.0.0.1:$port$options" \
        --limits "1000000000 per day; 1000000000 per hour" --concurrency "$c" \
        --duration "${secs}s" --json 2>/dev/null)
      t1=$(ticks)
      stats=$(redis-cli -p $port INFO commandstats)
      python3 - "$label" "$round" "$c" "$t0" "$t1" "$hz" "$json" "$stats" <<'PY'
import json, re, sys
label, rnd, c, t0, t1, hz, raw, stats = sys.argv[1:]
r = json.loads(raw)
n = max(r["decisions"], 1)
usec = calls = 0
for m in re.finditer(r"cmdstat_(\w+):calls=(\d+),usec=(\d+)", stats):
    if m.group(1) in ("config", "info", "flushall", "ping", "function", "hello", "client"):
        continue
    usec += int(m.group(3))
    if m.group(1) in ("fcall", "evalsha"):
        calls += int(m.group(2))
cpu = (int(t1) - int(t0)) * 1e6 / int(hz) / n
print(f"{label:<8} {rnd:>5} {c:>3} {r['decisions_per_sec']:>12.0f} {r['p50_us']:>8.0f} {r['p99_us']:>8.0f}"
      f" {cpu:>13.2f} {usec / n:>13.2f} {n / max(calls, 1):>13.2f}")
PY
    done
  done
done
