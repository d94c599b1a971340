#!/usr/bin/env bash
# Builds the aksnet Debian package: aksnet in /usr/bin, the CNI plugins in
# /usr/lib/aksnet/cni (where `aksnet install` finds them), the agent's
# packaged systemd unit, man pages and shell completions generated from the
# CLI itself. Uses only dpkg-deb and gzip (both in every Debian).
#
#   scripts/build-deb.sh [OUT_DIR]      # default OUT_DIR: target/deb
#
# AKSNET_BIN_DIR=DIR takes aksnet and the three plugins from DIR instead of
# running `cargo build --release` (the package test uses its own build).
# AKSNET_DEB_COMPRESSION (default xz) and AKSNET_DEB_LEVEL (default 6) go to
# dpkg-deb -Z/-z: the test packs its unstripped debug build with gzip -1.
# Prints the path of the .deb it wrote.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-target/deb}
plugins=(aksnet-cni aksnet-ipam aksnet-portmap)

if [ -n "${AKSNET_BIN_DIR:-}" ]; then
  bin=$AKSNET_BIN_DIR
else
  cargo build --release --quiet --bin aksnet --bin aksnet-cni --bin aksnet-ipam --bin aksnet-portmap
  bin=target/release
fi
for b in aksnet "${plugins[@]}"; do
  if [ ! -x "$bin/$b" ]; then
    echo "build-deb: $bin/$b is missing; build it (cargo build --release) or set AKSNET_BIN_DIR" >&2
    exit 1
  fi
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/aksnet

install -D -m 0755 "$bin/aksnet" "$pkg/usr/bin/aksnet"
for p in "${plugins[@]}"; do
  install -D -m 0755 "$bin/$p" "$pkg/usr/lib/aksnet/cni/$p"
done

# The packaged unit starts nothing until the node is configured: either
# /etc/default/aksnet-agent sets AKSNET_AGENT_ARGS, or `aksnet install
# --bin-dir /usr/bin …` writes /etc/systemd/system/aksnet-agent.service,
# which takes precedence over this one.
install -d "$pkg/usr/lib/systemd/system"
cat >"$pkg/usr/lib/systemd/system/aksnet-agent.service" <<'EOF'
[Unit]
Description=aksnet node agent (AKS pod networking)
Documentation=man:aksnet-agent(1)
Wants=network-online.target
After=network-online.target
ConditionPathExists=/etc/default/aksnet-agent

[Service]
Type=simple
Environment=AKSNET_LOG=info
EnvironmentFile=/etc/default/aksnet-agent
ExecStart=/usr/bin/aksnet agent $AKSNET_AGENT_ARGS
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
EOF
chmod 0644 "$pkg/usr/lib/systemd/system/aksnet-agent.service"

man=$pkg/usr/share/man/man1
"$bin/aksnet" man "$man" >/dev/null
gzip -9n "$man"/*.1
chmod 0644 "$man"/*.gz

install -d "$pkg/usr/share/bash-completion/completions" \
  "$pkg/usr/share/zsh/vendor-completions" "$pkg/usr/share/fish/vendor_completions.d"
"$bin/aksnet" completions bash >"$pkg/usr/share/bash-completion/completions/aksnet"
"$bin/aksnet" completions zsh >"$pkg/usr/share/zsh/vendor-completions/_aksnet"
"$bin/aksnet" completions fish >"$pkg/usr/share/fish/vendor_completions.d/aksnet.fish"

install -d "$pkg/usr/share/doc/aksnet"
cat >"$pkg/usr/share/doc/aksnet/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: aksnet

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
EOF

find "$pkg" -type d -exec chmod 0755 {} +
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
install -d "$pkg/DEBIAN"
cat >"$pkg/DEBIAN/control" <<EOF
Package: aksnet
Version: $version
Architecture: $arch
Maintainer: aksnet developers <aksnet@localhost>
Installed-Size: $size
Depends: iproute2, nftables
Section: net
Priority: optional
Homepage: https://github.com/aksnet/aksnet
Description: AKS pod networking (kubenet, Azure CNI, Azure CNI Overlay) for any Linux machine
 CNI plugins (aksnet-cni, aksnet-ipam, aksnet-portmap), the aksnet node
 agent and the aksnet command line: plan a cluster network, install and
 run a node, and a lab of the three models in network namespaces.
EOF

mkdir -p "$out"
deb=$out/aksnet_${version}_${arch}.deb
dpkg-deb --root-owner-group -Z"${AKSNET_DEB_COMPRESSION:-xz}" -z"${AKSNET_DEB_LEVEL:-6}" --build "$pkg" "$deb" >/dev/null
echo "$deb"
