#!/usr/bin/env bash
# Issue 4's targets, measured side by side in one run:
#   - `rewind scrub` (deep) against `restic check --read-data` and
#     `borg check --verify-data` on the same corpus;
#   - a sequential read through `rewind mount`, alone and with a background
#     scrub at --scrub=50 running beside it.
#
#   sudo CORPUS=/work/bench-corpus benches/scrub.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib/common.sh
source benches/lib/common.sh
CORPUS=$(realpath "${CORPUS:?set CORPUS to a directory to back up}")
BIG=${BIG:-random.bin}
WORK=${BENCH_DIR:-/tmp/rewind-scrub-bench}
export REWIND_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench XDG_CACHE_HOME=$WORK/cache
release_rewind
rm -rf "$WORK"
mkdir -p "$WORK/mnt"
cleanup() { umount -l "$WORK/mnt" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
timed() { local start; start=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; echo "$(date +%s.%N) - $start" | bc -l; }

"$REWIND_BIN" --repo "$WORK/rewind" init >/dev/null
"$REWIND_BIN" --repo "$WORK/rewind" backup "$CORPUS" >/dev/null 2>&1
drop; rewind_s=$(timed "$REWIND_BIN" --repo "$WORK/rewind" scrub --restart)
printf '| tool | integrity check of every byte | seconds |\n|---|---|---:|\n'
printf '| rewind | scrub (deep) | %.2f |\n' "$rewind_s"
if command -v restic >/dev/null; then
    restic -r "$WORK/restic" init --repository-version 2 >/dev/null
    restic -r "$WORK/restic" backup --compression auto "$CORPUS" >/dev/null
    drop; restic_s=$(timed restic -r "$WORK/restic" check --read-data)
    printf '| restic | check --read-data | %.2f |\n' "$restic_s"
fi
if command -v borg >/dev/null; then
    borg init --encryption repokey-blake2 "$WORK/borg" >/dev/null
    borg create --compression zstd,3 "$WORK/borg::corpus" "$CORPUS"
    drop; borg_s=$(timed borg check --verify-data "$WORK/borg")
    printf '| borg | check --verify-data | %.2f |\n' "$borg_s"
fi
[[ -n ${restic_s:-} ]] && printf 'scrub vs restic: %.2fx faster\n' "$(echo "$restic_s / $rewind_s" | bc -l)"
[[ -n ${borg_s:-} ]] && printf 'scrub vs borg: %.2fx faster\n' "$(echo "$borg_s / $rewind_s" | bc -l)"

# A sequential read through the mount, without and with a background scrub.
read_through_mount() { # extra mount options...
    drop
    "$REWIND_BIN" --repo "$WORK/rewind" mount "$WORK/mnt" --log-file "$WORK/mount.log" "$@" 2>/dev/null
    sleep 1 # let the scrub get going
    local seconds
    seconds=$(timed dd if="$WORK/mnt/latest$CORPUS/$BIG" of=/dev/null bs=1M)
    umount "$WORK/mnt"; sleep 0.5
    echo "$seconds"
}
alone=$(read_through_mount)
scrubbing=$(read_through_mount --scrub=50 --scrub-interval 3600)
size=$(stat -c %s "$CORPUS/$BIG")
printf '\n| sequential read of %s through the mount | MB/s |\n|---|---:|\n' "$BIG"
printf '| alone | %.0f |\n| with a background scrub at --scrub=50 | %.0f |\n' \
    "$(echo "$size / $alone / 1000000" | bc -l)" "$(echo "$size / $scrubbing / 1000000" | bc -l)"
printf 'slowdown: %.1f%%\n' "$(echo "100 * ($scrubbing - $alone) / $alone" | bc -l)"
