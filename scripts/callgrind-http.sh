#!/usr/bin/env bash
# Instructions per request of the hello-world Tide server in each mode (bare, headers, limited
# by default): the server runs under callgrind with one runtime thread, wrk drives it for a
# short and a long run, and (instructions_long - instructions_short) / (requests_long -
# requests_short) cancels start-up. Repeatable where wall time is not. Needs valgrind and wrk.
#
#   scripts/callgrind-http.sh [MODES...]
set -euo pipefail
cd "$(dirname "$0")/.."
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(bare headers limited)
for tool in valgrind wrk; do
  command -v "$tool" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$tool" >/dev/null; }
done
cargo build -q --release -p ratelimit-examples --example http_bench_server
server=target/release/examples/http_bench_server
dir=$(mktemp -d)
port=18830
run() { # mode seconds -> "requests instructions"
  port=$((port + 1))
  ASYNC_STD_THREAD_COUNT=1 valgrind --tool=callgrind --callgrind-out-file="$dir/$1-$2.out" \
    "$server" "$1" "$port" >/dev/null 2>&1 &
  local vp=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
  local n
  n=$(wrk -t1 -c8 -d"$2s" "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
  kill -TERM "$vp"; wait "$vp" 2>/dev/null || true
  echo "$n $(awk '/^(summary|totals):/ {print $2; exit}' "$dir/$1-$2.out")"
}
base=""
for mode in "${modes[@]}"; do
  read -r n1 i1 <<<"$(run "$mode" 4)"
  read -r n2 i2 <<<"$(run "$mode" 12)"
  per=$(( (i2 - i1) / (n2 - n1) ))
  [ -n "$base" ] || base=$per
  python3 -c "print(f'$mode: $per instructions/request ({$per / $base:.3f}x)')"
done
rm -rf "$dir"
