#!/usr/bin/env bash
# Installs what rewind's build and tests need on a fresh Debian machine:
# FUSE (the mount tests mount for real), the tools the tests use on mounts
# and restores, PostgreSQL for the database-dump tests, SQLite for the
# README's server setup (tests/setup_walk.rs), an S3 server for the S3
# tests, one that implements Object Lock for the object lock tests,
# Garage for the tests on a distributed object store, and cargo-deb with
# what tests/package.rs checks the installed package with (man-db,
# systemd-analyze, bash-completion).
set -euo pipefail
packages=(fuse3 attr rsync tar diffutils findutils coreutils util-linux mount procps time sed postgresql pkg-config curl python3 python3-venv
          dpkg-dev binutils man-db systemd bash-completion sqlite3)
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

# s3s-fs: an S3 server over a directory, which tests/s3.rs starts on
# loopback. Built once into a cache outside the checkout (a clean clone
# reuses it); the version is pinned so every machine tests against the
# same server. tests/common/s3_server.rs looks for it in the same place.
s3s_fs_version=0.14.1
source "$(dirname "$0")/tools-dir.sh"
if ! "$tools/bin/s3s-fs" --version 2>/dev/null | grep -qF "$s3s_fs_version"; then
  cargo install s3s-fs --version "$s3s_fs_version" --locked --features binary --root "$tools"
fi

# moto: an S3 server that implements Object Lock (a bucket's lock
# configuration, each object's retention, and refusing to delete a version
# still under it), which tests/object_lock.rs starts on loopback. In a Python
# venv in the same cache, the version pinned; tests/common/moto.rs looks for
# it there.
moto_version=5.2.5
moto="$tools/moto"
if ! "$moto/bin/python" -c "import sys, moto; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null; then
  rm -rf "$moto"
  /usr/bin/python3 -m venv "$moto"
  "$moto/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
fi

# cargo-deb, which scripts/build-deb.sh runs to make the Debian package
# (tests/package.rs builds and installs it), in the same cache, the version
# pinned: a build takes about a minute and a half on 2 cores, once.
cargo_deb_version=3.8.0
if ! "$tools/bin/cargo-deb" --version 2>/dev/null | grep -qF "$cargo_deb_version"; then
  cargo install cargo-deb --version "$cargo_deb_version" --locked --root "$tools"
fi

# Garage, the distributed object store tests/garage.rs runs (cached outside the checkout).
"$(dirname "$0")/install-garage.sh" >/dev/null
