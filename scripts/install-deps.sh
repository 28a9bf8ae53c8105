#!/usr/bin/env bash
# Installs what rewind's build and tests need on a fresh Debian machine:
# FUSE (the mount tests mount for real), the tools the tests use on mounts
# and restores, PostgreSQL for the database-dump tests, and Garage for the
# S3 tests on a distributed object store.
set -euo pipefail
packages=(fuse3 attr rsync tar diffutils findutils coreutils util-linux mount procps time sed postgresql pkg-config curl)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup first" >&2; exit 1; }
# Garage, the distributed object store tests/garage.rs runs (cached outside the checkout).
"$(dirname "$0")/install-garage.sh" >/dev/null
