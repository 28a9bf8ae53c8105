#!/usr/bin/env bash
# Repositories in object storage: rewind against restic 0.14, both talking S3
# to the same local server, in one run, on this machine. Issue 13's targets:
# backup #1 and #2 and restore at least 2x restic's speed; through the mount,
# the first `ls` with a warm cache under 0.2 s and a sequential read at least
# 3x restic's mount; `copy` of a whole repository local -> S3 no slower than
# rewind's own first backup to S3; bytes sent reported (dedup must not regress
# on S3).
#
#   sudo benches/s3.sh                                  # RUNS=3, /work/bench-corpus
#   sudo CORPUS=/tmp/small RUNS=1 benches/s3.sh         # a quick try
#
# The server: s3s-fs (what the tests use, tests/common/s3_server.rs) on
# 127.0.0.1, started by this script, its data on the scratch disk; one bucket
# per tool, a fresh prefix in it for every run. Both tools encrypt and
# compress as in compare.sh: restic repository v2 with `--compression auto`,
# rewind aes-256-gcm with zstd level 3. Every location is spelled
# s3:http://127.0.0.1:PORT/BUCKET/PREFIX.
#
# Once, untimed: rewind backs up the corpus into a local repository (the
# source of `copy`). Then RUNS times, the tools in turn (each run starting
# with the next tool), the page cache dropped (`sync; echo 3 >
# /proc/sys/vm/drop_caches`) before every phase, wall seconds and peak
# memory from GNU time, bytes sent = the growth of the objects under the
# prefix on the server's disk:
#   backup1   backup of the corpus into a new repository (cold: empty cache)
#   copy      rewind only: `copy --from-repo` the local repository into a new
#             prefix (cold: empty cache), against rewind's backup1
#   backup2   backup after a ~2% change (benches/lib/corpus.sh, change 1)
#             (warm: the cache as backup1 left it, as for a nightly backup)
#   restore   restore of the second snapshot into an empty directory (cold:
#             empty cache, as on the machine that lost its disk)
#   first_ls  mount, `ls` the snapshot's root, unmount; then, timed, mount
#             again and poll `ls` of the snapshot's root every 10 ms until it
#             answers (warm: the cache the first mount left)
#   seq_read  a fresh mount (warm cache), then `cat > /dev/null` of the
#             corpus's largest file through it, page cache dropped just before
# Each tool has its own cache in the scratch directory: rewind --cache-dir
# (REWIND_CACHE_DIR), restic --cache-dir (RESTIC_CACHE_DIR). Both mounts run
# in the foreground (`rewind mount --foreground`, `restic mount`) as children
# of this script, so that their peak memory can be read; the seconds count
# from the start of the mount command.
#
# Environment:
#   RUNS=N          fresh repositories and measures per tool; medians (default 3)
#   TOOLS="..."     rewind and/or restic (default: both)
#   CORPUS=DIR      the corpus: used if it is one, else created there (default
#                   /work/bench-corpus); changed during every run and put back
#                   as it was
#   BIG=NAME        the file read through the mounts, relative to CORPUS
#                   (default: the largest by allocated size, so not a sparse
#                   image of mostly holes)
#   COPY_SHARED_IDS=1  make the copy's destination with `init
#                   --copy-chunker-params --from-repo` (blobs keep their ids,
#                   trees are copied as they are); default a plain `init`, where
#                   copy renames every blob and rewrites every tree
#   BENCH_DIR=DIR   scratch directory: the server's data, caches, restores
#                   (default /tmp/rewind-s3-bench); removed at the end unless KEEP=1
#   REWIND_BIN=PATH a rewind binary (default: `cargo build --release` here)
#   S3S_FS=PATH     the s3s-fs server (default: where scripts/install-deps.sh
#                   puts it, /var/cache/rewind-test-tools/bin/s3s-fs)
#   OUT=FILE        the markdown table (default: target/s3-results.md)
#
# Needs root (to drop the page cache, and to mount), FUSE, GNU time
# (`apt-get install -y time`), python3, s3s-fs (scripts/install-deps.sh) and
# restic 0.14 (`apt-get install -y restic`).

set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=benches/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"
# shellcheck source=benches/lib/corpus.sh
source "$SCRIPT_DIR/lib/corpus.sh"
# shellcheck source=benches/lib/measure.sh
source "$SCRIPT_DIR/lib/measure.sh"
# shellcheck source=benches/lib/mount.sh
source "$SCRIPT_DIR/lib/mount.sh"
# shellcheck source=benches/lib/s3.sh
source "$SCRIPT_DIR/lib/s3.sh"

RUNS=${RUNS:-3}
KEEP=${KEEP:-0}
COPY_SHARED_IDS=${COPY_SHARED_IDS:-0}
TOOLS=${TOOLS:-rewind restic}
# paths resolved before the build below changes directory
CORPUS=$(realpath -m "${CORPUS:-/work/bench-corpus}")
BENCH_DIR=$(realpath -m "${BENCH_DIR:-/tmp/rewind-s3-bench}")
OUT=$(realpath -m "${OUT:-$ROOT/target/s3-results.md}")
[[ -z ${REWIND_BIN:-} ]] || REWIND_BIN=$(realpath -m "$REWIND_BIN")
PASSWORD=rewind-benchmark-password
MOUNT_TIMEOUT=600 # seconds a mount may take to answer before the phase fails

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
check_prerequisites
choose_tools
[[ " ${TOOL_LIST[*]} " != *" borg "* ]] || die "borg has no S3 backend (use TOOLS=\"rewind restic\")"
[[ -e /dev/fuse ]] || die "no /dev/fuse: the mount phases need FUSE"
if [[ " ${TOOL_LIST[*]} " == *" rewind "* ]]; then
    [[ -n ${REWIND_BIN:-} ]] || say "building rewind (cargo build --release)"
    cd "$ROOT"
    release_rewind
    [[ -x $REWIND_BIN ]] || die "no rewind binary at $REWIND_BIN"
fi

WORK=$BENCH_DIR/work
case $CORPUS/ in
"$WORK"/*) die "CORPUS must not be inside $WORK" ;;
esac
rm -rf "$WORK"
LOGS=$WORK/logs
MNT=$WORK/mnt
LOCAL_REPO=$WORK/local-repo # the source of `copy`
CACHES=$WORK/cache
mkdir -p "$CORPUS" "$LOGS" "$MNT" "$CACHES" "$(dirname "$OUT")"
CORPUS_UNDO=$WORK/undo
RESULTS=$WORK/results.tsv # tool, phase, run, seconds, peak KiB, bytes, exit status
: >"$RESULTS"

export REWIND_PASSWORD=$PASSWORD REWIND_FROM_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD
export REWIND_CACHE_DIR=$CACHES/rewind RESTIC_CACHE_DIR=$CACHES/restic
# rewind's other state (the scrub state) stays in the scratch directory too
export XDG_CACHE_HOME=$CACHES/xdg

MOUNT_PID=
MOUNT_SECONDS=0
# Takes down what this script started (the mount, the server), then
# clean_up_bench puts the corpus back and removes the scratch directory.
clean_up_s3_bench() {
    local status=$?
    set +e
    stop_mount
    stop_s3_server
    (exit "$status")
    clean_up_bench
}
trap clean_up_s3_bench EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the tools

# command_for TOOL STEP PREFIX [TARGET]: sets CMD to the command of that step
# on the repository under PREFIX in TOOL's bucket
command_for() {
    local tool=$1 step=$2 repo
    repo=$(s3_location "$tool" "$3")
    case $tool/$step in
    rewind/init) CMD=("$REWIND_BIN" --repo "$repo" init) ;;
    # the copy has a cache of its own, so that backup2 finds the one backup1 left
    rewind/init-copy)
        CMD=("$REWIND_BIN" --repo "$repo" --cache-dir "$CACHES/rewind-copy" init)
        if ((COPY_SHARED_IDS)); then
            CMD+=(--copy-chunker-params --from-repo "$LOCAL_REPO")
        fi
        ;;
    rewind/copy) CMD=("$REWIND_BIN" --repo "$repo" --cache-dir "$CACHES/rewind-copy" copy --from-repo "$LOCAL_REPO") ;;
    rewind/backup*) CMD=("$REWIND_BIN" --repo "$repo" backup "$CORPUS") ;;
    rewind/restore) CMD=("$REWIND_BIN" --repo "$repo" restore latest --target "$4") ;;
    rewind/mount) CMD=("$REWIND_BIN" --repo "$repo" mount "$MNT" --foreground --log-file "$LOGS/rewind-mount.log") ;;
    restic/init) CMD=(restic -r "$repo" init --repository-version 2) ;;
    restic/backup*) CMD=(restic -r "$repo" --compression auto backup "$CORPUS") ;;
    restic/restore) CMD=(restic -r "$repo" restore latest --target "$4") ;;
    restic/mount) CMD=(restic -r "$repo" mount "$MNT") ;;
    *) die "no $step step for $tool" ;;
    esac
}

# Where the snapshot's root appears in each tool's mount.
snapshot_root() {
    case $1 in
    rewind) echo "$MNT/latest/" ;;
    restic) echo "$MNT/snapshots/latest/" ;;
    esac
}

empty_cache() { rm -rf "${CACHES:?}/$1"; }

# record TOOL PHASE RUN SECONDS PEAK_KIB BYTES STATUS, and say it
record() {
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
    if (($7 != 0)); then
        printf '   %-7s %-9s FAILED (exit %s): see %s\n' "$1" "$2" "$7" "$LOGS/$1-$2-$3.err" >&2
    else
        printf '   %-7s %-9s %8.3f s  %6d MiB peak  %8d MiB\n' "$1" "$2" "$4" "$(($5 / 1024))" "$(($6 >> 20))" >&2
    fi
}

# step TOOL STEP PREFIX: an untimed step that must pass
step() {
    local log=$LOGS/$1-$2-$3
    command_for "$@"
    run_timed "$log" "$WORK" "${CMD[@]}"
    ((TIMED_STATUS == 0)) || die "$1 $2 failed (exit $TIMED_STATUS): $(tail -n 3 "$log.err" | tr '\n' ' ')"
}

# timed TOOL PHASE RUN PREFIX: backup1, backup2 or copy from a cold page
# cache; bytes sent: what the objects under PREFIX grew by
timed() {
    local tool=$1 phase=$2 run=$3 prefix=$4 before
    before=$(object_bytes "$tool" "$prefix")
    command_for "$tool" "$phase" "$prefix"
    drop_caches
    run_timed "$LOGS/$tool-$phase-$run" "$WORK" "${CMD[@]}"
    record "$tool" "$phase" "$run" "$TIMED_SECONDS" "$TIMED_RSS_KIB" \
        "$(($(object_bytes "$tool" "$prefix") - before))" "$TIMED_STATUS"
}

# timed_restore TOOL RUN PREFIX: the latest snapshot into an empty directory,
# with an empty cache; the restored tree must hold as many entries as the corpus
timed_restore() {
    local tool=$1 run=$2 prefix=$3 target=$WORK/restore status want got
    rm -rf "$target"
    mkdir -p "$target"
    empty_cache "$tool"
    command_for "$tool" restore "$prefix" "$target"
    drop_caches
    run_timed "$LOGS/$tool-restore-$run" "$target" "${CMD[@]}"
    status=$TIMED_STATUS
    want=$(find "$CORPUS" | wc -l)
    got=$(find "$target$CORPUS" 2>/dev/null | wc -l)
    if ((status == 0 && want != got)); then
        echo "   WARNING: $tool restored $got entries, the corpus has $want" >&2
        status=99
    fi
    record "$tool" restore "$run" "$TIMED_SECONDS" "$TIMED_RSS_KIB" 0 "$status"
    rm -rf "$target"
}

# start_mount TOOL PREFIX: starts the tool's mount in the background (MOUNT_PID)
start_mount() {
    command_for "$1" mount "$2"
    "${CMD[@]}" >>"$LOGS/$1-mount.out" 2>&1 </dev/null &
    MOUNT_PID=$!
}

# stop_mount: unmounts and waits for the mount's process to end
stop_mount() {
    unmount "$MNT" || true
    if [[ -n $MOUNT_PID ]]; then
        wait "$MOUNT_PID" 2>/dev/null || true
        MOUNT_PID=
    fi
}

# mount_and_list TOOL PREFIX: sets MOUNT_SECONDS to the seconds from the
# start of the mount until an `ls` of the snapshot's root answers (fails if
# it never did)
mount_and_list() {
    local start
    start=$(now)
    start_mount "$1" "$2"
    poll_until "$MOUNT_TIMEOUT" ls -A "$(snapshot_root "$1")" || return 1
    MOUNT_SECONDS=$(seconds_between "$start" "$(now)")
}

# timed_mount TOOL RUN PREFIX: the first_ls and seq_read phases
timed_mount() {
    local tool=$1 run=$2 prefix=$3 status=0 file start end
    # a first mount fills the cache; its time is not the measure
    mount_and_list "$tool" "$prefix" || status=1
    stop_mount
    drop_caches
    MOUNT_SECONDS=0
    mount_and_list "$tool" "$prefix" || status=1
    record "$tool" first_ls "$run" "$MOUNT_SECONDS" "$(peak_rss_kib "$MOUNT_PID")" 0 "$status"
    stop_mount
    ((status == 0)) || return 0
    start_mount "$tool" "$prefix"
    file=$(snapshot_root "$tool")$CORPUS/$BIG
    status=0
    poll_until "$MOUNT_TIMEOUT" test -e "$file" || status=1
    drop_caches
    start=$(now)
    cat "$file" >/dev/null 2>>"$LOGS/$tool-seq_read-$run.err" || status=$?
    end=$(now)
    record "$tool" seq_read "$run" "$(seconds_between "$start" "$end")" "$(peak_rss_kib "$MOUNT_PID")" "$BIG_BYTES" "$status"
    stop_mount
}

# The tools in turn: run N starts with tool N (modulo their number).
tools_for_run() {
    local i n=${#TOOL_LIST[@]}
    for ((i = 0; i < n; i++)); do
        echo "${TOOL_LIST[(i + $1 - 1) % n]}"
    done
}

# ---------------------------------------------------------------- the run

make_corpus
CORPUS_BYTES=$(du -sb --apparent-size "$CORPUS" | cut -f1)
CORPUS_FILES=$(find "$CORPUS" | wc -l)
if [[ -z ${BIG:-} ]]; then
    BIG=$(cd "$CORPUS" && find . -type f -printf '%b %s %P\n' | sort -n -k1,1 -k2,2 | tail -n 1 | cut -d' ' -f3-)
fi
[[ -f $CORPUS/$BIG ]] || die "no file $BIG in $CORPUS"
BIG_BYTES=$(stat -c %s "$CORPUS/$BIG")
say "corpus: $CORPUS_FILES entries, $((CORPUS_BYTES >> 20)) MiB (apparent), $(du -sm "$CORPUS" | cut -f1) MiB on disk; read through the mounts: $BIG ($((BIG_BYTES >> 20)) MiB)"
VERSIONS=()
for tool in "${TOOL_LIST[@]}"; do
    case $tool in
    rewind) VERSIONS+=("$("$REWIND_BIN" --version)") ;;
    restic) VERSIONS+=("$(restic version | cut -d' ' -f1-2)") ;;
    esac
done
MACHINE="$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
ABOUT="$(printf '%s, ' "${VERSIONS[@]}")s3s-fs on 127.0.0.1, $MACHINE"
say "$ABOUT"

start_s3_server "$WORK"
say "s3s-fs listening on 127.0.0.1:$S3_PORT, serving $S3_ROOT"
for tool in "${TOOL_LIST[@]}"; do
    create_bucket "$tool"
done

LOCAL_BYTES=0
if [[ " ${TOOL_LIST[*]} " == *" rewind "* ]]; then
    say "setup: rewind backs up the corpus into a local repository (the source of copy; untimed)"
    run_timed "$LOGS/local-init" "$WORK" "$REWIND_BIN" --repo "$LOCAL_REPO" init
    run_timed "$LOGS/local-backup" "$WORK" "$REWIND_BIN" --repo "$LOCAL_REPO" backup "$CORPUS"
    ((TIMED_STATUS == 0)) || die "the local backup failed: $(tail -n 3 "$LOGS/local-backup.err" | tr '\n' ' ')"
    LOCAL_BYTES=$(find "$LOCAL_REPO" -type f -printf '%s\n' | awk '{ n += $1 } END { printf "%d\n", n }')
fi

for run in $(seq 1 "$RUNS"); do
    say "run $run of $RUNS: backup #1 and rewind's copy local -> S3 (cold caches)"
    prefix=run$run
    mapfile -t order < <(tools_for_run "$run")
    for tool in "${order[@]}"; do
        empty_cache "$tool"
        step "$tool" init "$prefix"
        timed "$tool" backup1 "$run" "$prefix"
        if [[ $tool == rewind ]]; then
            empty_cache rewind-copy
            step rewind init-copy "copy$run"
            timed rewind copy "$run" "copy$run"
        fi
    done
    mutate_corpus 1
    say "run $run of $RUNS: backup #2 (warm cache)"
    for tool in "${order[@]}"; do
        timed "$tool" backup2 "$run" "$prefix"
    done
    say "run $run of $RUNS: restore of snapshot #2 (cold cache)"
    for tool in "${order[@]}"; do
        timed_restore "$tool" "$run" "$prefix"
    done
    say "run $run of $RUNS: mount (warm cache)"
    for tool in "${order[@]}"; do
        timed_mount "$tool" "$run" "$prefix"
    done
    revert_corpus
    for tool in "${order[@]}"; do
        empty_bucket "$tool"
    done
done

# ---------------------------------------------------------------- the table

python3 - "$RESULTS" "$OUT" "$ABOUT" "$CORPUS_BYTES" "$CORPUS_FILES" "$RUNS" "$BIG" "$LOCAL_BYTES" \
    "$COPY_SHARED_IDS" "${TOOL_LIST[@]}" <<'EOF'
import statistics, sys
from collections import defaultdict

results, out, about, corpus_bytes, corpus_files, runs, big, local_bytes, shared_ids = sys.argv[1:10]
tools = sys.argv[10:]
corpus_bytes, runs, local_bytes = int(corpus_bytes), int(runs), int(local_bytes)
rows = defaultdict(list)
for line in open(results):
    tool, phase, run, secs, rss, size, status = line.rstrip("\n").split("\t")
    rows[tool, phase].append((float(secs), int(rss) / 1024, int(size), int(status)))

phases = [
    ("backup1", "backup #1 (cold cache)"),
    ("copy", "copy of the local repository -> S3 (cold cache)"),
    ("backup2", "backup #2 after a ~2% change (warm cache)"),
    ("restore", "restore of snapshot #2 (cold cache)"),
    ("first_ls", "mount: first `ls` of the snapshot's root (warm cache)"),
    ("seq_read", "mount: `cat` of %s (warm cache, page cache dropped)" % big),
]

def ok(tool, phase):
    return bool(rows.get((tool, phase))) and all(r[3] == 0 for r in rows[tool, phase])

def med(tool, phase, i):
    if not ok(tool, phase):
        return None
    return statistics.median(r[i] for r in rows[tool, phase])

def mbps(tool, phase):
    s = med(tool, phase, 0)
    if not s or phase == "first_ls":
        return None
    n = med(tool, phase, 2) if phase == "seq_read" else corpus_bytes
    return n / s / 1e6

def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b

def fmt(x, spec, suffix=""):
    return "–" if x is None else format(x, spec) + suffix

lines = ["| phase | tool | seconds | MB/s | peak MiB | MiB sent |", "|---|---|---:|---:|---:|---:|"]
for phase, label in phases:
    for tool in tools:
        if (tool, phase) not in rows:
            continue
        sent = med(tool, phase, 2) if phase in ("backup1", "backup2", "copy") else None
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            label, tool if ok(tool, phase) else tool + " (FAILED)",
            fmt(med(tool, phase, 0), ".3f" if phase == "first_ls" else ".2f"), fmt(mbps(tool, phase), ".0f"),
            fmt(med(tool, phase, 1), ".0f"), fmt(None if sent is None else sent / 2**20, ".1f")))

def verdict(value, good):
    return "–" if value is None else ("met" if good(value) else "**missed**")

targets = [
    "| measure | rewind | goal | verdict |",
    "|---|---:|---|---|",
]
def speed_row(phase, label, goal):
    r = ratio(med("restic", phase, 0), med("rewind", phase, 0))
    targets.append("| %s: restic's time / rewind's | %s | ≥ %g× | %s |" % (label, fmt(r, ".2f", "×"), goal, verdict(r, lambda v: v >= goal)))
speed_row("backup1", "backup #1", 2)
speed_row("backup2", "backup #2", 2)
speed_row("restore", "restore", 2)
ls = med("rewind", "first_ls", 0)
targets.append("| first `ls` through the mount, warm cache (restic: %s s) | %s s | < 0.2 s | %s |" % (
    fmt(med("restic", "first_ls", 0), ".3f"), fmt(ls, ".3f"), verdict(ls, lambda v: v < 0.2)))
r = ratio(mbps("rewind", "seq_read"), mbps("restic", "seq_read"))
targets.append("| sequential read through the mount: rewind's MB/s / restic's | %s | ≥ 3× | %s |" % (fmt(r, ".2f", "×"), verdict(r, lambda v: v >= 3)))
r = ratio(med("rewind", "backup1", 0), med("rewind", "copy", 0))
targets.append("| copy local -> S3: rewind's backup #1 time / its copy time | %s | ≥ 1.00× | %s |" % (fmt(r, ".2f", "×"), verdict(r, lambda v: v >= 1)))
for phase, label in (("backup1", "backup #1"), ("backup2", "backup #2")):
    r = ratio(med("rewind", phase, 2), med("restic", phase, 2))
    targets.append("| bytes sent by %s: rewind / restic | %s | reported | |" % (label, fmt(r, ".2f")))
r = ratio(med("rewind", "backup1", 2), local_bytes or None)
targets.append("| bytes sent by backup #1 / the same backup in a local repository (%s MiB) | %s | ≈ 1.00 (dedup does not regress on S3) | |" % (
    fmt(local_bytes / 2**20 if local_bytes else None, ".1f"), fmt(r, ".2f")))
r = ratio(med("rewind", "copy", 2), med("rewind", "backup1", 2))
targets.append("| bytes sent by copy / by backup #1 | %s | reported | |" % fmt(r, ".2f"))
for phase, label in (("backup1", "backup #1"), ("backup2", "backup #2"), ("restore", "restore"), ("seq_read", "mount daemon after the read")):
    r = ratio(med("rewind", phase, 1), med("restic", phase, 1))
    targets.append("| peak memory, %s: rewind / restic | %s | reported | |" % (label, fmt(r, ".2f")))

header = ("%s. Corpus: %s entries, %.2f GiB (apparent size); %d run%s%s, tools in turn; page cache dropped "
          "before every phase. Both tools talk S3 to the same s3s-fs server on loopback, each in its own bucket. "
          "seconds and peak MiB (max RSS) from GNU time; for the mount phases, wall seconds from the start of "
          "the mount command (first_ls) or of the `cat` (seq_read), and the mount process's peak RSS. "
          "MB/s: corpus bytes per second (backups, copy, restore), bytes of the file per second (seq_read). "
          "MiB sent: what the objects under the repository's prefix grew by. Caches: cold = emptied before "
          "the phase; warm = as the phase before left it. The copy's destination was made by %s."
          % (about, corpus_files, corpus_bytes / 2**30, runs, "s" if runs > 1 else "", ", medians" if runs > 1 else "",
             "`init --copy-chunker-params --from-repo`" if shared_ids == "1" else "a plain `init`"))
text = header + "\n\n" + "\n".join(lines) + "\n\nIssue 13's targets (ratios to restic measured in the same run):\n\n" + "\n".join(targets) + "\n"
open(out, "w").write(text)
print()
print(text)
EOF
say "markdown table written to $OUT; logs in $LOGS (kept only with KEEP=1)"

failed=$(awk -F'\t' '$7 != 0 { print $1 " " $2 }' "$RESULTS" | sort -u | tr '\n' ',')
[[ -z $failed ]] || die "some phases failed: ${failed%,} (KEEP=1 keeps the logs in $LOGS)"
