#!/usr/bin/env bash
# The mount daemon through many small files (issue 16): rewind mount
# against restic mount on FILES files of ~40 bytes, PER_DIR to a directory,
# and on one directory of FILES entries.
#
#   sudo benches/mount-many-files.sh
#   sudo FILES=3000000 TOOLS=rewind REWIND_BIN=/path/to/rewind benches/mount-many-files.sh
#
# FILES (default 1000000), PER_DIR (default 1000). The trees are made once
# under WORK (default /tmp/rewind-mount-many) by a short script; KEEP=1
# keeps WORK (trees and repositories) for the next run. Each phase runs on
# a fresh mount after dropping the page cache:
#   tar   `tar cf - . | wc -c` of the whole tree: seconds, and the daemon's
#         peak RSS and CPU time (user + system)
#   wide  (WIDE=1, the default) the directory of FILES entries: its backup
#         (seconds and peak RSS, when the repository is made), `ls -f | wc
#         -l` (seconds), then 10,000 lookups of names it does not hold (µs
#         each: a name missing from a directory is found missing by binary
#         search), and the daemon's peak RSS
# TAR=0 skips the tar phase (restic takes minutes over it at 1M files).
# TOOLS="...": which of rewind, restic to run (default both; restic is
# skipped if not installed). REWIND_BIN=PATH: a rewind binary (default:
# `cargo build --release` here). Targets (issue 16): the daemon's peak
# through the tar <= 150 MB at 1M files and at 3M, the tar >= 8x restic's.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib/common.sh
source benches/lib/common.sh
# shellcheck source=benches/lib/mount.sh
source benches/lib/mount.sh
# shellcheck source=benches/lib/trees.sh
source benches/lib/trees.sh
FILES=${FILES:-1000000}
PER_DIR=${PER_DIR:-1000}
WIDE=${WIDE:-1}
TAR=${TAR:-1}
WORK=${WORK:-/tmp/rewind-mount-many}
KEEP=${KEEP:-0}
OUT=${OUT:-target/mount-many-files-results.md}
export REWIND_PASSWORD=bench RESTIC_PASSWORD=bench
release_rewind
MNT=$WORK/mnt
mkdir -p "$MNT"
cleanup() {
    unmount "$MNT" || true
    [[ $KEEP == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
cpu_secs() { sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($12 + $13) / hz}'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

# make_tree NAME PER_DIR: WORK/NAME, FILES files of ~40 bytes, PER_DIR to a
# directory (made once)
make_tree() {
    [[ -e $WORK/$1.made ]] && return 0
    say "making $WORK/$1: $FILES files, $2 to a directory"
    many_small_files "$WORK/$1" "$FILES" "$2"
}

# back_up TOOL NAME: a repository WORK/TOOL-NAME holding WORK/NAME (once)
back_up() {
    local repo=$WORK/$1-$2
    [[ -e $repo.made ]] && return 0
    rm -rf "$repo"
    say "$1: backing up $WORK/$2"
    drop
    local timed=(/usr/bin/time -f '%e %M' -o "$repo.backup")
    case $1 in
    rewind) "$REWIND_BIN" --repo "$repo" init >/dev/null && "${timed[@]}" "$REWIND_BIN" --repo "$repo" backup "$WORK/$2" >/dev/null 2>&1 ;;
    restic) restic -r "$repo" init --repository-version 2 >/dev/null && "${timed[@]}" restic -r "$repo" backup --compression auto "$WORK/$2" >/dev/null ;;
    esac
    touch "$repo.made"
}

# mount_tool TOOL NAME: mounts TOOL's repository of NAME; sets DAEMON (its
# pid) and ROOT (NAME in the mount's latest snapshot)
mount_tool() {
    case $1 in
    rewind)
        "$REWIND_BIN" --repo "$WORK/rewind-$2" mount "$MNT" --log-file "$WORK/rewind.log" 2>/dev/null
        DAEMON=$(pgrep -f -- "--repo $WORK/rewind-$2 mount" | tail -1)
        ROOT=$MNT/latest$WORK/$2 ;;
    restic)
        restic -r "$WORK/restic-$2" mount "$MNT" >/dev/null 2>&1 &
        DAEMON=$!
        ROOT=$MNT/snapshots/latest$WORK/$2 ;;
    esac
    poll_until 120 test -d "$ROOT"
}

# missing_lookup_us DIR: the mean time of 10,000 lookups of names DIR lacks
missing_lookup_us() {
    python3 - "$1" <<'EOF'
import os, sys, time
d, n = sys.argv[1], 10000
start = time.perf_counter()
for i in range(n):
    try:
        os.stat(os.path.join(d, "missing-%d" % i))
    except FileNotFoundError:
        pass
print("%.1f" % ((time.perf_counter() - start) / n * 1e6))
EOF
}

TOOLS=${TOOLS:-rewind restic}
make_tree many "$PER_DIR"
if [[ $WIDE == 1 ]]; then
    make_tree wide "$FILES"
fi
rows=()
for tool in $TOOLS; do
    if [[ $tool == restic ]] && ! command -v restic >/dev/null; then
        say "restic is not installed: skipped"
        continue
    fi
    tar_s='' bytes=0 tar_rss='' tar_cpu=''
    if [[ $TAR == 1 ]]; then
        back_up "$tool" many
        drop
        mount_tool "$tool" many
        cpu_before=$(cpu_secs "$DAEMON")
        start=$(now)
        bytes=$( (cd "$ROOT" && tar cf - . 2>/dev/null) | wc -c)
        end=$(now)
        tar_s=$(seconds_between "$start" "$end")
        tar_cpu=$(awk -v a="$cpu_before" -v b="$(cpu_secs "$DAEMON")" 'BEGIN { printf "%.1f", b - a }')
        tar_rss=$(mib "$(peak_rss_kib "$DAEMON")")
        unmount "$MNT"
        eval "TAR_$tool=$tar_s RSS_$tool=$tar_rss"
    fi
    wide_ls='' wide_lookup='' wide_rss='' wide_backup=''
    if [[ $WIDE == 1 ]]; then
        back_up "$tool" wide
        if [[ -e $WORK/$tool-wide.backup ]]; then
            wide_backup=$(awk '{ printf "%s s, %.0f MiB", $1, $2 / 1024 }' "$WORK/$tool-wide.backup")
        fi
        drop
        mount_tool "$tool" wide
        start=$(now)
        # shellcheck disable=SC2012 # the names are ours; `ls -f` is the plain listing
        listed=$(ls -f "$ROOT/d00000" | wc -l)
        end=$(now)
        wide_ls=$(seconds_between "$start" "$end")
        wide_lookup=$(missing_lookup_us "$ROOT/d00000")
        wide_rss=$(mib "$(peak_rss_kib "$DAEMON")")
        unmount "$MNT"
        ((listed >= FILES)) || die "$tool listed $listed names of $FILES files"
    fi
    rows+=("| $tool | $tar_s | $((bytes / 1000000)) | $tar_rss | $tar_cpu | $wide_backup | $wide_ls | $wide_lookup | $wide_rss |")
    say "$tool done"
done

{
    echo "$FILES files of ~40 bytes, $PER_DIR to a directory; page cache dropped and a fresh mount before each phase."
    echo
    echo "| tool | tar of the tree (s) | tar MB | daemon peak RSS, tar (MiB) | daemon CPU, tar (s) | backup of one directory of $FILES (when made) | ls -f of it (s) | lookup of a missing name there (µs) | daemon peak RSS, wide (MiB) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    # shellcheck disable=SC2154 # TAR_rewind and the others are set by eval above
    if [[ -n ${TAR_rewind:-} && -n ${TAR_restic:-} ]]; then
        echo
        printf 'vs restic: tar %.1fx faster; daemon memory %.2f of restic'"'"'s\n' \
            "$(echo "$TAR_restic / $TAR_rewind" | bc -l)" "$(echo "$RSS_rewind / $RSS_restic" | bc -l)"
    fi
} | tee "$OUT"
