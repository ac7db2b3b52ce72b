#!/usr/bin/env bash
# The Redis server's time per request (benches/benches/redis_cost.rs): a fresh redis-server
# alone on core 0, the benchmark on core 1, ROUNDS times (default 3). Each round prints, per
# row, the sum of `usec` over `INFO commandstats` divided by the requests sent, and the
# commands per request, beside the anchors (a trivial EVALSHA, INCR, MULTI INCR PEXPIRE EXEC, and
# the floor under any script: a bare fixed-window script doing TIME, GET and SET);
# once with functions (FCALL, the default on Redis 7) and once on a server whose FUNCTION and
# FCALL are renamed away, where the store runs the same batch as a script (EVALSHA).
#
#   scripts/bench-redis-cost.sh [ROUNDS] [REQUESTS_PER_ROW]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
export REDIS_COST_CALLS=${2:-20000}
cargo bench -p ratekeeper-benches --bench redis_cost --no-run -q
bench=$(ls -t target/release/deps/redis_cost-* | grep -v '\.d$' | head -1)
port=26998
dir=$(mktemp -d)
trap 'redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
out=$(mktemp)
for round in $(seq "$rounds"); do
  for mode in functions scripts; do
    extra=()
    if [ "$mode" = scripts ]; then extra=(--rename-command FCALL '' --rename-command FUNCTION ''); fi
    taskset -c 0 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes "${extra[@]}" >/dev/null
    for _ in $(seq 50); do redis-cli -p $port PING >/dev/null 2>&1 && break; sleep 0.1; done
    echo "== round $round, $mode ($(redis-server --version | awk '{print $3}'))"
    echo "== mode $mode" >>"$out"
    REDIS_BENCH_PORT=$port taskset -c 1 "$bench" --bench | tee -a "$out"
    redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true
    sleep 0.5
  done
done
python3 - "$out" <<'PY'
import collections, re, statistics, sys
rows, mode = collections.defaultdict(list), None
for line in open(sys.argv[1]):
    m = re.match(r"== mode (\w+)", line)
    if m:
        mode = m.group(1)
        continue
    m = re.match(r"(.{58})\s+([\d.]+) us/request", line)
    if m:
        rows[(m.group(1).strip(), mode)].append(float(m.group(2)))
print("\nmedians (us of server time per request):")
for (what, mode), v in rows.items():
    print(f"  {what:<56} {mode:<9} {statistics.median(v):6.2f}")
PY
rm -f "$out"
