#!/usr/bin/env bash
# Runs each published package's own tests from its packaged `.crate`, as a user of the crate
# (or crates.io's build) would get it: nothing outside the package is there. The packages are
# unpacked side by side and pointed at each other (`[patch.crates-io]`), since none is
# published yet. Usage: scripts/package-tests.sh [PACKAGE...] (default: every published one).
set -euo pipefail
cd "$(dirname "$0")/.."

# Every package that publishes (the `publish = false` ones use path-only dependencies).
mapfile -t published < <(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["publish"] != []:
        print(p["name"])')
cargo package "${published[@]/#/--package=}" --no-verify --allow-dirty --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/.cargo"
echo "[patch.crates-io]" >"$work/.cargo/config.toml"
for crate in target/package/*.crate; do
  tar -xzf "$crate" -C "$work"
  dir=$(basename "$crate" .crate)
  name=${dir%-*}
  echo "$name = { path = \"$work/$dir\" }" >>"$work/.cargo/config.toml"
done

packages=("$@")
if [ ${#packages[@]} -eq 0 ]; then
  packages=("${published[@]}")
fi
for name in "${packages[@]}"; do
  echo "== $name, from its .crate"
  log="$work/$name.log"
  # Every feature: the facade's README examples (its adapters) are behind features. Tests that
  # start redis-server or memcached need the workspace's unpublished test-support crate, so the
  # packages leave them out; `scripts/test.sh` runs them.
  if ! (cd "$work/$name"-[0-9]* &&
    CARGO_TARGET_DIR="$work/target" cargo test --all-features >"$log" 2>&1); then
    grep -E '^(error|failures:|---- |test .* FAILED)' -A3 "$log" | head -40 >&2
    echo "$name: its packaged tests fail (the log above)" >&2
    exit 1
  fi
  grep -E '^test result' "$log" | awk '{ p += $4 } END { printf "  %d tests passed\n", p }'
done
