#!/usr/bin/env bash
# Runs a command of this checkout inside a brand-new minimal Debian 12 root:
# what a newcomer's machine has (Debian and a Rust toolchain), nothing more.
# A package that the build or the tests need but scripts/setup.sh does not
# install makes the command fail here, even on a machine where someone
# installed it by hand.
#
#   scripts/clean-root.sh ./scripts/test.sh
#   scripts/clean-root.sh ./scripts/main.sh
#
# The root is made by mmdebstrap (variant "apt": essential packages and apt);
# the Rust toolchain ($RUSTUP_HOME, $CARGO_HOME) and this checkout are
# bind-mounted at the paths they have here, so the build reuses target/ and
# the crate cache. Every mount lives in a private mount namespace and goes
# away with it; the root directory is deleted afterwards, also on failure.
# The root namespace's links, routes and rules are not touched: the command's
# tests make their own network namespaces, as they do outside.
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: scripts/clean-root.sh COMMAND [ARG...]   (run from the checkout)" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "clean-root: run as root (it builds a Debian root and mounts into it)" >&2
  exit 1
fi

src=$(cd "$(dirname "$0")/.." && pwd)
suite=${AKSNET_CLEAN_ROOT_SUITE:-bookworm}
mirror=${AKSNET_CLEAN_ROOT_MIRROR:-http://deb.debian.org/debian}

# The toolchain, found the way cargo itself finds it.
for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
  [ -x "$d/cargo" ] && PATH="$d:$PATH"
done
command -v cargo >/dev/null || { echo "clean-root: cargo not found" >&2; exit 1; }
cargo_home=${CARGO_HOME:-$HOME/.cargo}
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_bin=$(dirname "$(command -v cargo)")

if ! command -v mmdebstrap >/dev/null; then
  echo "clean-root: installing mmdebstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

root=$(mktemp -d /var/tmp/aksnet-clean-root.XXXXXX)
cleanup() {
  # The mounts were private to the namespace below, so nothing is mounted
  # here any more; --one-file-system is a second guard.
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

start=$(date +%s)
echo "clean-root: building a minimal Debian $suite root in $root" >&2
mmdebstrap --variant=apt --quiet "$suite" "$root" "deb $mirror $suite main" \
  "deb $mirror $suite-updates main" >&2
echo "clean-root: root ready in $(( $(date +%s) - start )) s ($(du -sh "$root" | cut -f1)); running: $*" >&2

export root src cargo_home rustup_home cargo_bin
unshare --mount --propagation private --fork --kill-child -- bash -euo pipefail -c '
  # The root must be a mount point of its own: `ip netns exec` and `ip -n`
  # run `mount --make-rslave /`, which a plain directory refuses.
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs -o mode=0755 tmpfs "$root/run"
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  for d in "$src" "$cargo_home" "$rustup_home"; do
    mkdir -p "$root$d"
    mount --bind "$d" "$root$d"
  done
  exec chroot "$root" /usr/bin/env -i \
    HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 CI="${CI:-}" \
    CARGO_HOME="$cargo_home" RUSTUP_HOME="$rustup_home" \
    PATH="$cargo_bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    bash -c "cd \"\$0\" && exec \"\$@\"" "$src" "$@"
' clean-root "$@"
