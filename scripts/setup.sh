#!/usr/bin/env bash
# Installs what aksnet needs on a Debian machine, only what is missing.
# Sourced by main.sh and test.sh; safe to run again.
set -euo pipefail

APT_PACKAGES=(
  ca-certificates                     # cargo fetches crates over HTTPS
  iproute2 nftables procps            # the kernel interfaces the plugins, agent and lab drive
  curl util-linux                     # the podman test's client and nsenter
  mount                               # mount(8): the CNI edge tests put a data directory on a tmpfs
  etcd-server                         # the etcd store backend and its tests
  protobuf-compiler libprotobuf-dev   # etcd-client's build: protoc and its well-known .proto files
  gcc libc6-dev                       # the linker rustc calls, and the C parts of rusqlite
  containernetworking-plugins         # the reference plugins we test and benchmark against
  podman runc busybox-static          # the real-runtime CNI test
  iperf3                              # lab throughput benchmark
  bind9-dnsutils                      # dig: the lab DNS tests query the cluster DNS from inside pods
  librsvg2-bin                        # rsvg-convert: the lab diagram test renders its SVGs to PNG
  fonts-dejavu-core                   # the font the diagram test measures text with
  openssl                             # the TLS etcd tests make a throwaway CA with it
  g++                                 # libFuzzer's C++ sources, built by the fuzz targets (scripts/fuzz.sh)
  jq                                  # scripts/plan-corpus.sh reads the plans' JSON
)

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "aksnet setup: run as root (it installs packages and creates network namespaces)" >&2
    exit 1
  fi
}

install_missing_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "aksnet setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

check_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
      [ -x "$d/cargo" ] && export PATH="$d:$PATH"
    done
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "aksnet setup: cargo not found; install Rust 1.89 or newer (rustup) and run again" >&2
    exit 1
  fi
}

need_root
install_missing_packages
check_rust
