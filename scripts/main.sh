#!/usr/bin/env bash
# The main job: build aksnet and its CNI plugins, then run `aksnet lab demo`:
# a small lab for each AKS network model (kubenet, Azure CNI, Azure CNI
# Overlay) in network namespaces, a connectivity check of each against the
# models' documented behaviour, one comparison table, and everything torn
# down. Extra arguments go to `aksnet lab demo` (e.g. `--output json`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --quiet --bin aksnet --bin aksnet-cni --bin aksnet-ipam --bin aksnet-portmap
exec ./target/release/aksnet lab demo "$@"
