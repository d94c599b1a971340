#!/usr/bin/env bash
# The main job: build aksnet and compare the three AKS network models for
# the default design. Extra arguments go to `aksnet plan --compare`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --quiet --bin aksnet
exec ./target/release/aksnet plan --compare "$@"
