#!/usr/bin/env bash
# A mount of a repository with many snapshots: how long until it is ready,
# how long the first `ls` of its root takes, and the daemon's memory.
# Issue 3's target: 1,000 snapshots ready in under a second, under 200 MiB;
# issue 16's: 10,000 ready in under a second, `snapshots` under a second.
# The snapshots are copies of one backup on four hosts
# (benches/make_snapshots.rs), so that hosts/ and tags/ have directories.
#
#   sudo benches/many_snapshots.sh            # 10000 snapshots, release build
#   SNAPSHOTS=200 REWIND_BIN=... benches/many_snapshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib/common.sh
source benches/lib/common.sh
SNAPSHOTS=${SNAPSHOTS:-10000}
release_rewind
work=$(mktemp -d /tmp/rewind-many.XXXXXX)
cleanup() { umount "$work/mnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export REWIND_REPO=$work/repo REWIND_PASSWORD="many snapshots"
mkdir -p "$work/mnt"
copied_snapshots "$REWIND_BIN" "$work" "$SNAPSHOTS" 4
timed() { # COMMAND...: its seconds, caches dropped first
    sync; echo 3 >/proc/sys/vm/drop_caches
    /usr/bin/time -f %e -o "$work/time" "$@" >/dev/null 2>&1
    cat "$work/time"
}
listing=$(timed "$REWIND_BIN" snapshots)
listing_json=$(timed "$REWIND_BIN" snapshots --json)
sync
echo 3 >/proc/sys/vm/drop_caches
start=$(date +%s.%N)
"$REWIND_BIN" mount "$work/mnt" --log-file "$work/mount.log" 2>/dev/null
ready=$(date +%s.%N)
entries=$(ls "$work/mnt" | wc -l)
listed=$(date +%s.%N)
ls "$work/mnt/hosts/host-1" "$work/mnt/tags/nightly" "$work/mnt/ids" >/dev/null
others=$(date +%s.%N)
ls "$work/mnt/@2020-01-20/$work/src/etc" >/dev/null
daemon=$(pgrep -f " mount $work/mnt" | tail -1)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$daemon/status")
printf '| snapshots | `snapshots` (s) | `snapshots --json` (s) | mount ready (s) | first ls of the root (s) | ls of a host, a tag, ids/ (s) | root entries | daemon peak RSS (MiB) |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n'
printf '| %d | %s | %s | %.3f | %.3f | %.3f | %d | %.1f |\n' "$SNAPSHOTS" "$listing" "$listing_json" "$(echo "$ready - $start" | bc)" "$(echo "$listed - $ready" | bc)" "$(echo "$others - $listed" | bc)" "$entries" "$(echo "$rss / 1024" | bc -l)"
