#!/usr/bin/env bash
# Runs every test of the project: unit, integration, property, reference-vector and fuzz-corpus
# tests, the benches once each in test mode, and the doc examples. Works on a fresh machine:
# anything missing is installed first. Ends with one line: "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 1
fi

# The Redis tests start their own redis-server processes (single node, cluster, sentinel, TLS)
# on free loopback ports: they need the binaries (and openssl for the TLS test's certificates),
# not a running server.
missing=()
command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The memcached tests start their own `memcached` processes too.
command -v memcached >/dev/null 2>&1 || missing+=(memcached)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  # Debian starts a system-wide server on 6379; the tests do not use it.
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Every target of every package (benches run once each, in test mode), then the doc examples.
# (The examples crate's `full` feature: the axum examples, Redis and memcached, test servers.)
cargo test --workspace --all-targets --features ratekeeper-examples/full 2>&1 | tee -a "$log"
# The bench of the decision crate's `metrics` feature needs the benches' feature of that name.
cargo test -p ratekeeper-benches --features metrics --bench metrics 2>&1 | tee -a "$log"
# The Redis store without the `tokio` feature (which the run above turns on through the axum
# examples): single nodes on its own connection rather than the redis crate's.
cargo test -p ratekeeper-redis --tests 2>&1 | tee -a "$log"
cargo test --workspace --doc 2>&1 | tee -a "$log"
# Without the storage backends: a storage URI they serve names the feature to enable.
cargo test -p ratekeeper-decision --no-default-features --test config 2>&1 | tee -a "$log"

# The examples that run to completion, run as users run them (the servers' apps are exercised
# by the examples crate's tests); each that exits 0 counts as a passed test.
for example in quickstart core_tour customize porting; do
  cargo run -q -p ratekeeper-examples --example "$example" >/dev/null
  echo "example $example: ok" | tee -a "$log"
done

# One total over all test binaries ("test result: ok. N passed; M failed; ..."), counting the
# vector runner (its own harness) as one test. A failing binary already stopped the script.
awk '/^test result:/ { p += $4; f += $6 }
     /^example [a-z_]+: ok$/ { p += 1 }
     /^vectors: .* parse cases/ { if ($NF == "failed" && $(NF-1) == 0) p += 1; else f += 1 }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
