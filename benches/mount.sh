#!/usr/bin/env bash
# Reading backups through FUSE: rewind mount against restic mount and borg
# mount on the same corpus, and against the FUSE ceiling (a trivial in-memory
# filesystem, benches/fuse_ceiling.rs) measured in the same run.
#
#   sudo CORPUS=/work/bench-corpus benches/mount.sh
#
# CORPUS: a directory to back up (benches/compare.sh makes one with
# CORPUS=DIR KEEP=0 and leaves it). It must hold a large file BIG (default
# random.bin) and a text file DUMP (default dump.sql).
# Phases, each on a fresh mount after dropping the page cache:
#   ls      the first `ls` of the mount root
#   seq     `dd` of BIG through the mount, the median of SEQ_RUNS (default 3)
#           reads by fresh daemons (the ceiling serves the same size, and
#           gets the same median of SEQ_RUNS cold reads); then the same with
#           the tool's repository files read into the page cache first, so
#           that the disk's speed is out of the measure (not the daemon's:
#           each read is by a fresh daemon)
#   dump    `cat` of DUMP through the mount
#   tar     `tar cf - . | wc -c` of the whole snapshot, the median of SEQ_RUNS
#           runs by fresh daemons; the highest of the daemons' peak RSS, the
#           median of the CPU time (user + system) they spent
#   disk    `cat` of rewind's pack files with the page cache dropped, the
#           median of SEQ_RUNS: what this disk gives a cold sequential read
# TOOLS="...": which of rewind, restic, borg to run (default: all; a peer
# that is not installed is skipped). REWIND_BIN=PATH: a rewind binary
# (default: `cargo build --release` here), to set two builds side by side.
# Needs root, restic, borg and python3-pyfuse3 for the peers (skipped if absent).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib/common.sh
source benches/lib/common.sh
CORPUS=$(realpath "${CORPUS:?set CORPUS to a directory to back up}")
BIG=${BIG:-random.bin}
DUMP=${DUMP:-dump.sql}
WORK=${BENCH_DIR:-/tmp/rewind-mount-bench}
SEQ_RUNS=${SEQ_RUNS:-3}
OUT=${OUT:-target/mount-results.md}
export REWIND_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
release_rewind
cargo build --release --quiet --bench fuse_ceiling
CEILING_BIN=$(find "${CARGO_TARGET_DIR:-target}/release/deps" -maxdepth 1 -name 'fuse_ceiling-*' -type f -executable -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)

rm -rf "$WORK"
mkdir -p "$WORK/mnt"
MNT=$WORK/mnt
cleanup() { umount -l "$MNT" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
rows=()

wait_mounted() { for _ in $(seq 1 600); do mountpoint -q "$MNT" && ls "$MNT" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
unmount() { umount "$MNT" 2>/dev/null || umount -l "$MNT"; sleep 0.5; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
# CPU seconds (user + system, all threads) of a process; the command name
# may hold spaces, so count fields from its closing parenthesis
cpu_secs() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($12 + $13) / hz}' || echo "?"; }

# mount_tool TOOL: mounts; sets DAEMON (pid) and ROOT (the snapshot's copy of CORPUS)
mount_tool() {
    case $1 in
    rewind)
        "$REWIND_BIN" --repo "$WORK/rewind" mount "$MNT" --log-file "$WORK/rewind.log" 2>/dev/null
        DAEMON=$(pgrep -f -- "--repo $WORK/rewind mount" | tail -1 || true)
        ROOT=$MNT/latest$CORPUS ;;
    restic)
        restic -r "$WORK/restic" mount "$MNT" >/dev/null 2>&1 &
        DAEMON=$!
        wait_mounted
        ROOT=$MNT/snapshots/latest$CORPUS ;;
    borg)
        borg mount "$WORK/borg" "$MNT"
        DAEMON=$(pgrep -f "borg mount $WORK/borg" | head -1 || true)
        ROOT=$MNT/corpus${CORPUS} ;;
    esac
    wait_mounted
}

first_ls() { # TOOL: time of the first ls of the mount root, from a fresh mount
    drop
    local start end
    start=$(now)
    mount_tool "$1"
    end=$(now)
    ls "$MNT" >/dev/null
    local listed
    listed=$(now)
    echo "$(secs "$start" "$end") $(secs "$end" "$listed")"
}

declare -A T
for tool in ${TOOLS:-rewind restic borg}; do
    case $tool in
    rewind) "$REWIND_BIN" --repo "$WORK/rewind" init >/dev/null && "$REWIND_BIN" --repo "$WORK/rewind" backup "$CORPUS" >/dev/null 2>&1 ;;
    restic) command -v restic >/dev/null || continue
        restic -r "$WORK/restic" init --repository-version 2 >/dev/null && restic -r "$WORK/restic" backup --compression auto "$CORPUS" >/dev/null ;;
    borg) { command -v borg >/dev/null && /usr/bin/python3 -c 'import pyfuse3' 2>/dev/null; } || continue
        borg init --encryption repokey-blake2 "$WORK/borg" >/dev/null && borg create --compression zstd,3 "$WORK/borg::corpus" "$CORPUS" ;;
    esac
    T[$tool]=1
    read -r mount_s ls_s < <(first_ls "$tool")
    # seq read of BIG: median of SEQ_RUNS reads, each by a fresh daemon
    seq_runs=()
    for _ in $(seq 1 "$SEQ_RUNS"); do
        unmount; drop; mount_tool "$tool"
        size=$(stat -c %s "$ROOT/$BIG")
        start=$(now); dd if="$ROOT/$BIG" of=/dev/null bs=1M status=none; end=$(now)
        seq_runs+=("$(echo "$size / $(secs "$start" "$end") / 1000000" | bc -l)")
    done
    seq_mbs=$(median "${seq_runs[@]}")
    # the same with the repository's files in the page cache: the daemon
    # still starts cold, but the disk's speed is out of the measure
    seq_runs=()
    for _ in $(seq 1 "$SEQ_RUNS"); do
        unmount; drop; find "$WORK/$tool" -type f -exec cat {} + >/dev/null; mount_tool "$tool"
        stat -c %s "$ROOT/$BIG" >/dev/null
        start=$(now); dd if="$ROOT/$BIG" of=/dev/null bs=1M status=none; end=$(now)
        seq_runs+=("$(echo "$size / $(secs "$start" "$end") / 1000000" | bc -l)")
    done
    warm_mbs=$(median "${seq_runs[@]}")
    unmount; drop; mount_tool "$tool"
    dsize=$(stat -c %s "$ROOT/$DUMP")
    start=$(now); cat "$ROOT/$DUMP" >/dev/null; end=$(now)
    dump_mbs=$(echo "$dsize / $(secs "$start" "$end") / 1000000" | bc -l)
    # tar of the whole snapshot: median time of SEQ_RUNS, each by a fresh
    # daemon; the highest of their peak RSS
    tar_runs=()
    cpu_runs=()
    rss=0
    for _ in $(seq 1 "$SEQ_RUNS"); do
        unmount; drop; mount_tool "$tool"
        cpu_before=$(cpu_secs "$DAEMON")
        start=$(now); bytes=$( (cd "$ROOT" && tar cf - . 2>/dev/null) | wc -c); end=$(now)
        tar_runs+=("$(secs "$start" "$end")")
        cpu_runs+=("$(echo "$(cpu_secs "$DAEMON") - $cpu_before" | bc -l)")
        peak=$(peak_rss_mib "$DAEMON")
        if [[ $peak =~ ^[0-9]+$ ]] && ((peak > rss)); then rss=$peak; fi
    done
    tar_s=$(median "${tar_runs[@]}")
    tar_cpu=$(median "${cpu_runs[@]}")
    unmount
    rows+=("$(printf '| %s | %.3f | %.3f | %.0f | %.0f | %.0f | %.1f | %s | %s | %.1f |' "$tool" "$mount_s" "$ls_s" "$seq_mbs" "$warm_mbs" "$dump_mbs" "$tar_s" "$((bytes / 1000000))" "$rss" "$tar_cpu")")
    eval "SEQ_$tool=$seq_mbs; WARM_$tool=$warm_mbs; TAR_$tool=$tar_s; RSS_$tool=$rss; LS_$tool=$ls_s; DUMP_$tool=$dump_mbs"
    echo "$tool done" >&2
done

# The ceiling: the same size through a trivial in-memory FUSE filesystem,
# mounted with rewind's options; the median of SEQ_RUNS cold reads, as for
# the tools.
size_mib=$(( $(stat -c %s "$CORPUS/$BIG") / 1048576 ))
"$CEILING_BIN" "$MNT" "$size_mib" >/dev/null 2>&1 &
wait_mounted
ceiling_runs=()
for _ in $(seq 1 "$SEQ_RUNS"); do
    drop
    start=$(now); dd if="$MNT/file" of=/dev/null bs=1M status=none; end=$(now)
    ceiling_runs+=("$(echo "$size_mib * 1048576 / $(secs "$start" "$end") / 1000000" | bc -l)")
done
ceiling=$(median "${ceiling_runs[@]}")
unmount

# The disk: a cold sequential read of rewind's pack files, outside FUSE
disk_runs=()
pack_bytes=$(du -sb "$WORK/rewind/data" | cut -f1)
for _ in $(seq 1 "$SEQ_RUNS"); do
    drop
    start=$(now); find "$WORK/rewind/data" -type f -exec cat {} + >/dev/null; end=$(now)
    disk_runs+=("$(echo "$pack_bytes / $(secs "$start" "$end") / 1000000" | bc -l)")
done
disk=$(median "${disk_runs[@]}")

# shellcheck disable=SC2154 # SEQ_rewind and the others are set by eval above
{
    echo "Corpus: $CORPUS ($(du -sh --apparent-size "$CORPUS" | cut -f1), $(find "$CORPUS" | wc -l) entries); page cache dropped and a fresh mount before each phase."
    echo
    echo "| tool | mount (s) | first ls (s) | seq read $BIG (MB/s, median of $SEQ_RUNS) | the same, repository in page cache | cat $DUMP (MB/s) | tar of the snapshot (s, median of $SEQ_RUNS) | tar MB | daemon peak RSS during tar (MiB, highest of $SEQ_RUNS) | daemon CPU during tar (s, median) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    printf '| FUSE ceiling (in-memory) | | | %.0f | %.0f | | | | | |\n' "$ceiling" "$ceiling"
    echo
    printf 'rewind sequential read, cold daemon cache (a fresh daemon; the repository in the page cache, as the ceiling serves from memory) = %.0f%% of the FUSE ceiling measured in this run; with the page cache dropped too %.0f%%, where this disk reads the pack files at %.0f MB/s (cat, cold; medians of '"$SEQ_RUNS"' each).\n' "$(echo "100 * $WARM_rewind / $ceiling" | bc -l)" "$(echo "100 * $SEQ_rewind / $ceiling" | bc -l)" "$disk"
    echo
    for peer in restic borg; do
        [[ -n ${T[$peer]:-} ]] || continue
        seq_peer=SEQ_$peer; tar_peer=TAR_$peer; rss_peer=RSS_$peer; dump_peer=DUMP_$peer
        printf 'vs %s: sequential read %.1fx, cat of the dump %.1fx, tar %.1fx faster; daemon memory %.2f of %s'"'"'s\n' "$peer" \
            "$(echo "$SEQ_rewind / ${!seq_peer}" | bc -l)" "$(echo "$DUMP_rewind / ${!dump_peer}" | bc -l)" \
            "$(echo "${!tar_peer} / $TAR_rewind" | bc -l)" "$(echo "$RSS_rewind / ${!rss_peer}" | bc -l)" "$peer"
    done
} | tee "$OUT"
