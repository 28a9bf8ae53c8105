#!/usr/bin/env bash
# Builds the Debian package: the binary, every man page, bash, zsh and fish
# completions generated from the binary, the systemd units and dump scripts
# of contrib/, and the fstab helper (Cargo.toml's [package.metadata.deb]
# says what goes where).
#
#   scripts/build-deb.sh                 # a release build, then target/debian/rewind_*.deb
#   scripts/build-deb.sh --profile dev --no-build --output DIR --fast
#                                        # the debug binary `cargo test` built (tests/package.rs)
#
# --profile and --no-build choose the binary; every other argument goes to
# `cargo deb`. cargo-deb comes from scripts/install-deps.sh. cargo-deb warns
# about the dev profile (it makes no release); the tests use it all the same,
# so that CI needs no release build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools-dir.sh
PATH="$tools/bin:$PATH"
command -v cargo-deb >/dev/null || {
  echo "build-deb.sh: cargo-deb is missing: run scripts/install-deps.sh" >&2
  exit 1
}

profile=release
build=yes
deb_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --profile=*) profile="${1#--profile=}"; shift ;;
    --no-build) build=no; shift ;;
    *) deb_args+=("$1"); shift ;;
  esac
done

if [ "$build" = yes ]; then
  cargo build --locked --profile "$profile" --bin rewind
fi
target_dir=$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
# Cargo writes the dev profile's output to debug/.
out="$target_dir/$([ "$profile" = dev ] && echo debug || echo "$profile")"
[ -x "$out/rewind" ] || {
  echo "build-deb.sh: no binary at $out/rewind: build it first, or drop --no-build" >&2
  exit 1
}

# The completions, where the assets' target/release/completions/ points.
mkdir -p "$out/completions"
"$out/rewind" completions bash >"$out/completions/rewind"
"$out/rewind" completions zsh >"$out/completions/_rewind"
"$out/rewind" completions fish >"$out/completions/rewind.fish"

cargo deb --no-build --profile "$profile" "${deb_args[@]}"
