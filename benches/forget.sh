#!/usr/bin/env bash
# `rewind forget` over many snapshots: the time to plan (a dry run) and to
# forget, and peak memory. Issue 12's target: forget over 1,000 snapshots
# in under a second; issue 16's: `forget --keep-last 100` over 10,000 in
# under two.
#
#   sudo benches/forget.sh                     # 10000 snapshots, release build
#   SNAPSHOTS=200 REWIND_BIN=... benches/forget.sh
#
# The snapshots are one an hour from 2020-01-01, copies of one backup of a
# small tree (benches/make_snapshots.rs); each phase runs after
# `sync; echo 3 > drop_caches`, the first three on a copy of the repository:
#   last     forget --keep-last 100 --group-by '' (and its dry run first)
#   plan     forget --keep-daily 7 --keep-weekly 4 --dry-run
#   forget   the same, for real: a tombstone written and a manifest removed
#            for every snapshot not kept
#   list     snapshots, afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib/common.sh
source benches/lib/common.sh
SNAPSHOTS=${SNAPSHOTS:-10000}
release_rewind
work=$(mktemp -d /tmp/rewind-forget.XXXXXX)
trap 'rm -rf "$work"' EXIT
export REWIND_REPO=$work/repo REWIND_PASSWORD="forget bench"
copied_snapshots "$REWIND_BIN" "$work" "$SNAPSHOTS"
cp -a "$work/repo" "$work/repo-last"
policy=(--keep-daily 7 --keep-weekly 4)
phase() { # NAME ARGS...: prints "NAME seconds peak-MiB"
    local name=$1; shift
    sync; echo 3 >/proc/sys/vm/drop_caches
    /usr/bin/time -f "%e %M" -o "$work/time" "$REWIND_BIN" "$@" >"$work/out" 2>&1
    read -r secs kib <"$work/time"
    printf '| %s | %s | %.0f |\n' "$name" "$secs" "$(echo "$kib / 1024" | bc -l)"
}
printf '| phase (%d snapshots) | seconds | peak MiB |\n|---|---:|---:|\n' "$SNAPSHOTS"
REWIND_REPO=$work/repo-last phase "last, planned" forget --keep-last 100 --group-by '' --dry-run
REWIND_REPO=$work/repo-last phase last forget --keep-last 100 --group-by ''
REWIND_REPO=$work/repo-last phase "list after last" snapshots
phase plan forget "${policy[@]}" --dry-run
phase forget forget "${policy[@]}"
phase list snapshots
echo "kept: $(grep -c . <("$REWIND_BIN" snapshots --json | grep -o '"short_id"'))" >&2
