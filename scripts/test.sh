#!/usr/bin/env bash
# The full test suite: formatting, lints, and every test, root tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
# A bounded coverage-guided run of every fuzz target (libFuzzer, nightly).
./scripts/fuzz.sh --seconds "${AKSNET_FUZZ_SECONDS:-10}"
