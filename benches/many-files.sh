#!/usr/bin/env bash
# Backup and restore of many small files (issue 16): rewind against restic
# on FILES files of ~40 bytes, PER_DIR to a directory, and the limit a
# restore is measured against: a plain `tar -x` of the same tree, from a
# tar file on tmpfs, onto the disk the restores write to.
#
#   sudo benches/many-files.sh
#   sudo FILES=3000000 TOOLS=rewind REWIND_BIN=/path/to/rewind benches/many-files.sh
#   sudo FILES=20000 RUNS=1 REWIND_BIN=target/debug/rewind benches/many-files.sh
#
# FILES (default 1000000), PER_DIR (default 1000), RUNS (default 3): fresh
# runs, the tools alternated within each; the table gives medians. WORK
# (default /tmp/rewind-many-files) must be on the disk under test: the tree,
# the repositories and the restore targets go there; the tar file goes to
# TMPFS (default /dev/shm). KEEP=1 keeps the tree and the tar for the next
# run. Page cache dropped before every row:
#   backup #1  into a new repository
#   backup #2  the same tree again, nothing changed
#   restore    the latest snapshot into an empty directory
#   limit      `tar -x` of the tree's tar from tmpfs into an empty directory
# each with wall seconds and peak RSS (GNU time). TOOLS="...": which of
# rewind, restic to run (default both; restic skipped if not installed).
# REWIND_BIN=PATH: a rewind binary (default: `cargo build --release` here).
# Targets (issue 16) at 1M files and at 3M: peak RSS of backup and restore
# <= 150 MB; restore <= 1.2x the limit; backup >= 2.5x restic's speed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib/common.sh
source benches/lib/common.sh
# shellcheck source=benches/lib/measure.sh
source benches/lib/measure.sh
# shellcheck source=benches/lib/trees.sh
source benches/lib/trees.sh
FILES=${FILES:-1000000}
PER_DIR=${PER_DIR:-1000}
RUNS=${RUNS:-3}
WORK=${WORK:-/tmp/rewind-many-files}
TMPFS=${TMPFS:-/dev/shm}
KEEP=${KEEP:-0}
OUT=${OUT:-target/many-files-results.md}
TOOLS=${TOOLS:-rewind restic}
export REWIND_PASSWORD=bench RESTIC_PASSWORD=bench
check_prerequisites
release_rewind
mkdir -p "$WORK/logs" "$(dirname "$OUT")"
TAR=$TMPFS/rewind-many-files-$FILES.tar
cleanup() {
    rm -rf "${WORK:?}"/repo-* "${WORK:?}"/target-*
    [[ $KEEP == 1 ]] || rm -rf "$WORK" "$TAR"
}
trap cleanup EXIT

SRC=$WORK/src-$FILES-$PER_DIR
say "making $SRC: $FILES files, $PER_DIR to a directory"
many_small_files "$SRC" "$FILES" "$PER_DIR"
if [[ ! -e $TAR ]]; then
    say "making $TAR"
    tar -cf "$TAR.part" -C "$SRC" . && mv "$TAR.part" "$TAR"
fi

tools=()
for tool in $TOOLS; do
    if [[ $tool == restic ]] && ! command -v restic >/dev/null; then
        say "restic is not installed: skipped"
        continue
    fi
    tools+=("$tool")
done

# timed ROW TOOL CMD...: runs CMD from a cold page cache; appends its wall
# seconds and peak RSS (MiB) to the lists of ROW for TOOL
declare -A SECS RSS
timed() {
    local row=$1 tool=$2
    shift 2
    drop_caches
    run_timed "$WORK/logs/$row-$tool" "$WORK" "$@"
    ((TIMED_STATUS == 0)) || die "$tool $row failed: see $WORK/logs/$row-$tool.err"
    SECS[$row-$tool]+="$TIMED_SECONDS "
    RSS[$row-$tool]+="$(awk -v k="$TIMED_RSS_KIB" 'BEGIN { printf "%.0f", k / 1024 }') "
}

# backups_and_restore TOOL: the rows of one run for TOOL, each fresh
backups_and_restore() {
    local tool=$1 repo=$WORK/repo-$1 target=$WORK/target-$1
    rm -rf "$repo" "$target"
    case $tool in
    rewind)
        "$REWIND_BIN" --repo "$repo" init >/dev/null
        timed backup1 "$tool" "$REWIND_BIN" --repo "$repo" backup "$SRC"
        timed backup2 "$tool" "$REWIND_BIN" --repo "$repo" backup "$SRC"
        timed restore "$tool" "$REWIND_BIN" --repo "$repo" restore latest --target "$target" ;;
    restic)
        restic -r "$repo" init --repository-version 2 >/dev/null
        timed backup1 "$tool" restic -r "$repo" backup --compression auto "$SRC"
        timed backup2 "$tool" restic -r "$repo" backup --compression auto "$SRC"
        timed restore "$tool" restic -r "$repo" restore latest --target "$target" ;;
    esac
    local restored
    restored=$(find "$target" -type f | wc -l)
    ((restored == FILES)) || die "$tool restored $restored files of $FILES"
    rm -rf "$repo" "$target"
}

for run in $(seq "$RUNS"); do
    for tool in "${tools[@]}"; do
        say "run $run: $tool"
        backups_and_restore "$tool"
    done
    say "run $run: the limit, tar -x"
    rm -rf "$WORK/target-tar"
    mkdir -p "$WORK/target-tar"
    timed limit tar tar -xf "$TAR" -C "$WORK/target-tar"
    rm -rf "$WORK/target-tar"
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
cell() { # cell ROW TOOL: "seconds s, peak MiB"
    local secs=${SECS[$1-$2]:-} rss=${RSS[$1-$2]:-}
    [[ -n $secs ]] || { echo "-"; return; }
    echo "$(echo "$secs" | median) s, $(echo "$rss" | median) MiB"
}
med() { echo "${SECS[$1-$2]:-}" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }

{
    echo "$FILES files of ~40 bytes, $PER_DIR to a directory; medians of $RUNS runs; page cache dropped before each row."
    echo
    header="| |"
    for tool in "${tools[@]}"; do header+=" $tool |"; done
    echo "$header"
    printf '|---|'; printf -- '---:|%.0s' "${tools[@]}"; echo
    for row in backup1 backup2 restore; do
        case $row in
        backup1) label="backup #1" ;;
        backup2) label="backup #2, nothing changed" ;;
        restore) label="restore" ;;
        esac
        line="| $label |"
        for tool in "${tools[@]}"; do line+=" $(cell "$row" "$tool") |"; done
        echo "$line"
    done
    echo
    echo "limit: \`tar -x\` from tmpfs onto the same disk: $(cell limit tar)"
    echo
    limit=$(med limit tar)
    for tool in "${tools[@]}"; do
        target=''
        [[ $tool == rewind ]] && target=' (target <= 1.2)'
        echo "- $tool restore / limit: $(ratio "$(med restore "$tool")" "$limit")$target"
    done
    if [[ -n ${SECS[restore-rewind]:-} && -n ${SECS[restore-restic]:-} ]]; then
        echo "- restore speed, rewind / restic: $(ratio "$(med restore restic)" "$(med restore rewind)")x (target >= 1.7)"
        echo "- backup #1 speed, rewind / restic: $(ratio "$(med backup1 restic)" "$(med backup1 rewind)")x (target >= 2.5)"
    fi
} | tee "$OUT"
