#!/usr/bin/env bash
# A refused flood against the seed tour on Redis: one client sends REQUESTS (default 10,000)
# `POST /auth/login` over one keep-alive connection (its limit is 5 per minute, and the meta
# limit 5 refusals per minute), and the script counts what Redis served: FCALL (or EVALSHA)
# calls in INFO commandstats, and the redis-server process's CPU time. For each binary given,
# optionally with storage URI options after a `?` (default: target/release/examples/seed_tour
# with the deny cache off, then on; build it with `--features redis`).
#
#   scripts/bench-flood.sh [REQUESTS] [SEED_TOUR_BINARY[?OPTIONS]...]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-10000}
shift $(($# < 1 ? $# : 1))
bins=("$@")
[ ${#bins[@]} -eq 0 ] && bins=("target/release/examples/seed_tour?deny_cache=0" target/release/examples/seed_tour)
port=26996
http=18096
dir=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
taskset -c 0 redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" >/dev/null
for _ in $(seq 50); do redis-cli -p $port PING >/dev/null 2>&1 && break; sleep 0.1; done
pid=$(cat "$dir/redis.pid")
printf '%-45s %8s %8s %8s %10s %14s\n' binary requests 200s 429s redis_calls redis_cpu_ms
for target in "${bins[@]}"; do
  bin=${target%%\?*}
  options=""
  [ "$target" != "$bin" ] && options="?${target#*\?}"
  redis-cli -p $port FLUSHALL >/dev/null
  PORT=$http TRUSTED_PROXY_HOPS=1 REDIS_URL="redis://127.0.0.1:$port$options" taskset -c 1 "$bin" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$http/health" && break; sleep 0.05; done
  redis-cli -p $port CONFIG RESETSTAT >/dev/null
  t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  counts=$(taskset -c 1 python3 - "$http" "$requests" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", port)
codes = {}
for _ in range(n):
    c.request("POST", "/auth/login", body=b"", headers={"X-Forwarded-For": "203.0.113.50"})
    r = c.getresponse()
    r.read()
    codes[r.status] = codes.get(r.status, 0) + 1
print(codes.get(200, 0), codes.get(429, 0))
PY
)
  t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  calls=$(redis-cli -p $port INFO commandstats | awk -F'[=,:]' '/^cmdstat_(fcall|evalsha):/ {s += $3} END {print s + 0}')
  cpu_ms=$(( (t1 - t0) * 1000 / $(getconf CLK_TCK) ))
  read -r ok refused <<<"$counts"
  printf '%-45s %8s %8s %8s %10s %14s\n' "$target" "$requests" "$ok" "$refused" "$calls" "$cpu_ms"
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  server=""
done
