#!/usr/bin/env bash
# The full test suite: formatting, lints, and every test, root tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
# The README's and docs' examples, run and compared with what they show
# (the safe ones: aksnet plan; well under a second).
./scripts/docs-examples.sh target/debug/aksnet
# A bounded coverage-guided run of every fuzz target (libFuzzer), where a
# nightly toolchain is installed: `cargo test` above already replays every
# target's corpus and 3,000 mutations of it on the stable toolchain, so a
# machine with only stable Rust still runs every fuzz target's checks.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  ./scripts/fuzz.sh --seconds "${AKSNET_FUZZ_SECONDS:-10}"
else
  echo "aksnet test: no nightly toolchain; libFuzzer runs skipped (scripts/fuzz.sh runs them where nightly is installed)" >&2
fi
