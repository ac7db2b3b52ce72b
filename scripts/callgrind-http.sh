#!/usr/bin/env bash
# Instructions per request of the hello-world Tide server in each mode (bare, headers, limited
# by default): the server runs under callgrind with one runtime thread, wrk drives it for a
# short and a long run, and (instructions_long - instructions_short) / (requests_long -
# requests_short) cancels start-up. Repeatable where wall time is not. Needs valgrind and wrk.
#
#   [ROUNDS=3] [SERVER=http_bench_axum] scripts/callgrind-http.sh [MODES...]
#
# SERVER picks the example (default http_bench_server, the Tide one; http_bench_axum is the same
# hello world on axum behind ratekeeper-tower, with modes bare, headers and limited).
#
# With ROUNDS > 1 the modes alternate within each round and each figure is the median (the
# difference of two runs still moves by a few hundred instructions between rounds).
set -euo pipefail
cd "$(dirname "$0")/.."
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(bare headers limited)
for tool in valgrind wrk; do
  command -v "$tool" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$tool" >/dev/null; }
done
example=${SERVER:-http_bench_server}
cargo build -q --release -p ratekeeper-examples --example "$example" --features axum
server=target/release/examples/$example
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
rounds=${ROUNDS:-1}
declare -A per
for round in $(seq "$rounds"); do
  for mode in "${modes[@]}"; do
    read -r n1 i1 <<<"$(run "$mode" 4)"
    read -r n2 i2 <<<"$(run "$mode" 12)"
    per[$mode]+="$(( (i2 - i1) / (n2 - n1) )) "
  done
done
base=""
for mode in "${modes[@]}"; do
  med=$(python3 -c "import statistics,sys; print(int(statistics.median([int(x) for x in sys.argv[1:]])))" ${per[$mode]})
  [ -n "$base" ] || base=$med
  python3 -c "print(f'$mode: $med instructions/request ({$med / $base:.3f}x) rounds: ${per[$mode]}')"
done
rm -rf "$dir"
