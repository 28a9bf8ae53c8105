# shellcheck shell=bash
# Sourced by the benches run from the project root.

# Sets REWIND_BIN to a release build of this checkout unless it names a
# binary already (to set two builds side by side).
release_rewind() {
    if [[ -z ${REWIND_BIN:-} ]]; then
        cargo build --release --quiet --bin rewind
        REWIND_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/rewind
    fi
}

# copied_snapshots BIN WORK COUNT [HOSTS]: in the repository REWIND_REPO
# (which it creates), one backup of WORK/src at 2020-01-01T00:00:00Z and
# COUNT-1 copies of it an hour apart, on HOSTS hosts (1 unless given),
# made by benches/make_snapshots.rs in seconds rather than a backup each.
copied_snapshots() {
    local bin=$1 work=$2 count=$3 hosts=${4:-1}
    mkdir -p "$work/src/etc"
    seq 1 2000 >"$work/src/etc/numbers"
    "$bin" init >/dev/null
    "$bin" backup "$work/src" --time 2020-01-01T00:00:00Z >/dev/null 2>&1
    echo "making $count snapshots (one an hour from 2020-01-01)..." >&2
    cargo bench --quiet --bench make_snapshots -- "$((count - 1))" "$hosts"
}

# Progress on stderr, and the way out, both naming the script.
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }
