#!/usr/bin/env bash
# Builds rewind and walks through the quick start of the README on a scratch
# directory: init, backup, snapshots, a change and a second backup, mount,
# copy a file back from the mount, restore, check.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release
rewind="${CARGO_TARGET_DIR:-$PWD/target}/release/rewind"

work=$(mktemp -d /tmp/rewind-quickstart.XXXXXX)
cleanup() { umount "$work/mnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export REWIND_REPO="$work/repo" REWIND_PASSWORD="quickstart password"
mkdir -p "$work/mnt" "$work/data/etc"
cp -L /etc/hostname /etc/os-release "$work/data/etc/" 2>/dev/null || echo demo > "$work/data/etc/hostname"
seq 1 200000 > "$work/data/numbers.txt"

set -x
"$rewind" init
"$rewind" backup "$work/data" --tag demo --time 2024-06-01T02:00:00Z
echo "a change" >> "$work/data/numbers.txt"
"$rewind" backup "$work/data" --tag demo --time 2024-06-02T02:00:00Z
"$rewind" snapshots
"$rewind" ls latest:"$work/data"
"$rewind" mount "$work/mnt"
ls "$work/mnt"
readlink "$work/mnt/@2024-06-01"
cp "$work/mnt/@2024-06-01/$work/data/numbers.txt" "$work/numbers-as-of-june-1st.txt"
diff <(seq 1 200000) "$work/numbers-as-of-june-1st.txt"
diff -r "$work/data" "$work/mnt/latest/$work/data"
cat "$work/mnt/.rewind/status"
umount "$work/mnt"
"$rewind" restore latest:"$work/data" --target "$work/restored" --verify
diff -r "$work/data" "$work/restored"
"$rewind" check --read-data
set +x
echo "quick start finished: backup, mount and restore all worked"
