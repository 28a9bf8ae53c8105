#!/usr/bin/env bash
# Installs the Garage object store that tests/garage.rs runs as a
# three-node cluster on loopback. Garage is AGPL: it is only ever run as a
# separate process, never linked into rewind, so it lives in a cache outside
# the checkout, one directory per pinned version, and a second run is a no-op.
#
# Prints the path of the garage binary on its last line; tests/garage.rs
# finds it at the same place (or in $REWIND_GARAGE_BIN, which skips all this).
#
# Two ways in, tried in order:
#  1. the official static release binary, only when its SHA-256 is recorded
#     below (the release site is out of reach from the machines this project
#     runs on, so none could be recorded yet: this way is skipped);
#  2. `cargo install garage --locked` of the same version from the crate
#     registry, without the features the tests do not use (metrics, K2V,
#     LMDB), no LTO and opt-level 1: the tests move megabytes, and a build
#     that fits in CI's time matters more than the server's speed. Measured:
#     16 CPU-minutes, 40 minutes of wall time on two cores shared with other
#     builds (so roughly 10 on two idle ones).
set -euo pipefail

version=2.5.0
release_url="https://garagehq.deuxfleurs.fr/_releases/v${version}/x86_64-unknown-linux-musl/garage"
# The SHA-256 of $release_url, recorded after downloading it once by hand;
# empty while unrecorded, which skips the download.
release_sha256=""

# The cache every test server shares (REWIND_TEST_TOOLS overrides it).
source "$(dirname "$0")/tools-dir.sh"
cache_root="$tools"
prefix="$cache_root/garage-$version"
binary="$prefix/bin/garage"

if [ -x "$binary" ] && "$binary" --version >/dev/null 2>&1; then
  echo "$binary"
  exit 0
fi
mkdir -p "$prefix/bin"

download_release() {
  [ -n "$release_sha256" ] || return 1
  command -v curl >/dev/null || return 1
  local partial="$binary.partial"
  curl -fsSL --retry 3 --connect-timeout 10 -o "$partial" "$release_url" || return 1
  if ! echo "$release_sha256  $partial" | sha256sum -c --quiet -; then
    echo "install-garage.sh: $release_url does not match its recorded SHA-256" >&2
    rm -f "$partial"
    return 1
  fi
  chmod 755 "$partial"
  mv "$partial" "$binary"
}

build_with_cargo() {
  command -v cargo >/dev/null || {
    echo "install-garage.sh: cargo is missing: install Rust with rustup first" >&2
    return 1
  }
  echo "install-garage.sh: building garage $version into $prefix (16 CPU-minutes)" >&2
  local started=$SECONDS
  # Its own target dir, kept if the build is interrupted so that a second
  # run resumes it, removed once the binary is in place.
  CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install garage --locked --version "=$version" \
    --no-default-features --features bundled-libs,sqlite \
    --root "$prefix" --target-dir "$prefix/build"
  rm -rf "$prefix/build"
  echo "install-garage.sh: built in $((SECONDS - started)) s" >&2
}

if ! download_release; then
  build_with_cargo
fi
"$binary" --version >&2
echo "$binary"
