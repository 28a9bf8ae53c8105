#!/usr/bin/env bash
# rewind against restic and borg on the same corpus, in one run, on this machine.
#
#   sudo benches/compare.sh                 # RUNS=1, scratch in /tmp/rewind-bench
#   RUNS=3 TOOLS="rewind restic" benches/compare.sh
#
# Phases, for every tool, each after `sync; echo 3 > /proc/sys/vm/drop_caches`:
#   init, backup1 (the corpus), backup2 (after a ~2% change), restore (the whole
#   second snapshot into an empty directory), check (restic `check --read-data`,
#   borg `check --verify-data`, rewind `check --read-data`).
# Every tool encrypts and compresses: restic repository v2 with
# `--compression auto`, borg `repokey-blake2` with `--compression zstd,3`,
# rewind aes-256-gcm with its default zstd level 3.
#
# The corpus (about 1.9 GiB, 61,000 entries, as in issue 2) and the ~2% change
# between the two backups are described in benches/lib/corpus.sh.
#
# Environment:
#   RUNS=N          repeat every phase N times and report the median (default 1)
#   TOOLS="..."     which of rewind, restic, borg to run (default: all installed)
#   BENCH_DIR=DIR   scratch directory (default /tmp/rewind-bench); removed at the
#                   end unless KEEP=1
#   CORPUS=DIR      use (or create, then keep) the corpus in DIR instead of a
#                   throw-away one in BENCH_DIR; it is changed during the run and
#                   put back as it was at the end
#   REWIND_BIN=PATH a rewind binary (default: `cargo build --release` here)
#   OUT=FILE        the markdown table (default: target/compare-results.md)
#   VERIFY=1        also `diff -r` every restore against the corpus (slow, untimed)
#
# Needs root (to drop the page cache), GNU time (`apt-get install -y time`),
# python3, and for the peers `apt-get install -y restic borgbackup`.

set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
RUNS=${RUNS:-1}
BENCH_DIR=${BENCH_DIR:-/tmp/rewind-bench}
OUT=${OUT:-$ROOT/target/compare-results.md}
KEEP=${KEEP:-0}
VERIFY=${VERIFY:-0}
PASSWORD=rewind-benchmark-password

# shellcheck source=benches/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"
# shellcheck source=benches/lib/corpus.sh
source "$SCRIPT_DIR/lib/corpus.sh"
# shellcheck source=benches/lib/measure.sh
source "$SCRIPT_DIR/lib/measure.sh"

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
check_prerequisites
choose_tools

if [[ -z ${REWIND_BIN:-} ]]; then
    say "building rewind (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet --bin rewind)
    REWIND_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/rewind
fi
[[ -x $REWIND_BIN ]] || die "no rewind binary at $REWIND_BIN"
REWIND_BIN=$(realpath "$REWIND_BIN")

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(realpath "$BENCH_DIR")
if [[ -n ${CORPUS:-} ]]; then
    OWN_CORPUS=0
else
    CORPUS=$BENCH_DIR/corpus
    OWN_CORPUS=1
fi
mkdir -p "$CORPUS"
CORPUS=$(realpath "$CORPUS")
case $CORPUS/ in
"$BENCH_DIR"/work/*) die "CORPUS must not be inside $BENCH_DIR/work" ;;
esac
WORK=$BENCH_DIR/work
rm -rf "$WORK"
mkdir -p "$WORK"/{repos,logs,orig,cache}
RESULTS=$WORK/results.tsv
: >"$RESULTS"
CORPUS_UNDO=$WORK/orig

trap clean_up_bench EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- the tools

repo_of() { echo "$WORK/repos/$1"; }

# tool_cmd TOOL PHASE [TARGET]: prints the command, one word per line
tool_cmd() {
    local tool=$1 phase=$2 target=${3:-} repo
    repo=$(repo_of "$tool")
    case $tool/$phase in
    rewind/init) echo "$REWIND_BIN init" ;;
    rewind/backup*) echo "$REWIND_BIN backup $CORPUS" ;;
    rewind/restore) echo "$REWIND_BIN restore latest --target $target" ;;
    rewind/check) echo "$REWIND_BIN check --read-data" ;;
    restic/init) echo "restic init --repository-version 2" ;;
    restic/backup*) echo "restic --compression auto backup $CORPUS" ;;
    restic/restore) echo "restic restore latest --target $target" ;;
    restic/check) echo "restic check --read-data" ;;
    borg/init) echo "borg init --encryption repokey-blake2 $repo" ;;
    borg/backup*) echo "borg create --compression zstd,3 $repo::$phase $CORPUS" ;;
    borg/restore) echo "borg extract --sparse $repo::backup2" ;;
    borg/check) echo "borg check --verify-data $repo" ;;
    esac
}

# run_phase TOOL PHASE RUN: times one phase from a cold page cache
run_phase() {
    local tool=$1 phase=$2 run=$3 repo target="" dir log cmd
    repo=$(repo_of "$tool")
    log=$WORK/logs/$tool-$phase-$run
    dir=$WORK
    if [[ $phase == restore ]]; then
        target=$WORK/restore-$tool
        rm -rf "$target"
        mkdir -p "$target"
        dir=$target
    fi
    cmd=$(tool_cmd "$tool" "$phase" "$target")
    local -x REWIND_REPO=$repo REWIND_PASSWORD=$PASSWORD
    local -x RESTIC_REPOSITORY=$repo RESTIC_PASSWORD=$PASSWORD RESTIC_CACHE_DIR=$WORK/cache/restic
    local -x BORG_PASSPHRASE=$PASSWORD BORG_BASE_DIR=$WORK/cache/borg BORG_DISPLAY_PASSPHRASE=no
    drop_caches
    # shellcheck disable=SC2086 # the command is split into words on purpose
    run_timed "$log" "$dir" $cmd
    local seconds=$TIMED_SECONDS rss=$TIMED_RSS_KIB status=$TIMED_STATUS
    local size=0
    [[ -d $repo ]] && size=$(du -sb "$repo" | cut -f1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$phase" "$run" "$seconds" "${rss:-0}" "$size" "$status" >>"$RESULTS"
    if ((status != 0)); then
        printf '   %-7s %-8s FAILED (exit %s): %s\n' "$tool" "$phase" "$status" "$(tail -n 3 "$log.err" | tr '\n' ' ')" >&2
    else
        printf '   %-7s %-8s %8.2f s  %6d MiB peak\n' "$tool" "$phase" "$seconds" "$((${rss:-0} / 1024))" >&2
    fi
    if [[ $phase == restore ]]; then
        check_restore "$tool" "$target" "$log"
        rm -rf "$target"
    fi
}

# The restored tree must hold the corpus: same entries and bytes (diff -r with VERIFY=1).
check_restore() {
    local tool=$1 target=$2 log=$3 restored=$2$CORPUS want got
    want=$(cd "$CORPUS" && find . -not -name .rewind-bench-corpus | wc -l)
    got=$( (cd "$restored" 2>/dev/null && find . -not -name .rewind-bench-corpus | wc -l) || echo 0)
    if [[ $want != "$got" ]]; then
        echo "   WARNING: $tool restored $got entries, the corpus has $want (see $log.err)" >&2
    fi
    if ((VERIFY)); then
        if diff -r --no-dereference "$CORPUS" "$restored" >"$log.diff" 2>&1; then
            echo "   $tool: restore verified (diff -r)" >&2
        else
            echo "   WARNING: $tool restore differs from the corpus: $(head -n 3 "$log.diff" | tr '\n' ' ')" >&2
        fi
    fi
}

# ---------------------------------------------------------------- the run

make_corpus
CORPUS_BYTES=$(du -sb --apparent-size "$CORPUS" | cut -f1)
CORPUS_FILES=$(find "$CORPUS" | wc -l)
say "corpus: $CORPUS_FILES entries, $((CORPUS_BYTES >> 20)) MiB (apparent), $(du -sm "$CORPUS" | cut -f1) MiB on disk"
VERSIONS="$("$REWIND_BIN" --version)"
[[ " ${TOOL_LIST[*]} " == *" restic "* ]] && VERSIONS+=", $(restic version | cut -d' ' -f1-2)"
[[ " ${TOOL_LIST[*]} " == *" borg "* ]] && VERSIONS+=", $(borg --version)"
MACHINE="$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
say "$VERSIONS; $MACHINE"

for run in $(seq 1 "$RUNS"); do
    say "run $run of $RUNS"
    for tool in "${TOOL_LIST[@]}"; do
        rm -rf "$(repo_of "$tool")" "$WORK/cache/$tool"
        [[ $tool == rewind ]] || mkdir -p "$WORK/cache/$tool"
        run_phase "$tool" init "$run"
        run_phase "$tool" backup1 "$run"
    done
    mutate_corpus 1
    for tool in "${TOOL_LIST[@]}"; do
        run_phase "$tool" backup2 "$run"
    done
    for tool in "${TOOL_LIST[@]}"; do
        run_phase "$tool" restore "$run"
    done
    for tool in "${TOOL_LIST[@]}"; do
        run_phase "$tool" check "$run"
    done
    revert_corpus
done

# ---------------------------------------------------------------- the table

python3 - "$RESULTS" "$OUT" "$CORPUS_BYTES" "$CORPUS_FILES" "$RUNS" "$VERSIONS; $MACHINE" "${TOOL_LIST[@]}" <<'EOF'
import statistics, sys
from collections import defaultdict

results, out, corpus_bytes, corpus_files, runs, versions = sys.argv[1:7]
tools = sys.argv[7:]
corpus_bytes, runs = int(corpus_bytes), int(runs)
phases = ["init", "backup1", "backup2", "restore", "check"]
rows = defaultdict(list)
for line in open(results):
    tool, phase, run, secs, rss, size, status = line.rstrip("\n").split("\t")
    rows[tool, phase].append((float(secs), int(rss) / 1024, int(size) / 2**20, int(status)))

def med(tool, phase, i):
    vals = [r[i] for r in rows.get((tool, phase), [])]
    return statistics.median(vals) if vals else None

def failed(tool, phase):
    return any(r[3] != 0 for r in rows.get((tool, phase), []))

def mbps(tool, phase):
    s = med(tool, phase, 0)
    if phase == "init" or not s:
        return None
    # backup and restore: corpus bytes per second; check: repository bytes read per second
    n = corpus_bytes if phase != "check" else med(tool, "backup2", 2) * 2**20
    return n / s / 1e6

def fmt(x, spec):
    return "–" if x is None else format(x, spec)

lines = []
lines.append("| tool | phase | seconds | MB/s | peak MiB | repo MiB |")
lines.append("|---|---|---:|---:|---:|---:|")
for phase in phases:
    for tool in tools:
        if (tool, phase) not in rows:
            continue
        size = med(tool, phase, 2) if phase in ("backup1", "backup2") else None
        lines.append("| %s | %s%s | %s | %s | %s | %s |" % (
            tool, phase, " (FAILED)" if failed(tool, phase) else "",
            fmt(med(tool, phase, 0), ".2f"), fmt(mbps(tool, phase), ".0f"),
            fmt(med(tool, phase, 1), ".0f"), fmt(size, ".0f")))

peers = [t for t in tools if t != "rewind"]
targets = {"backup1": 2, "backup2": 3, "restore": 2, "check": 2}
if "rewind" in tools and peers:
    lines.append("")
    lines.append("rewind's ratio to each peer: speed = peer time / rewind time (higher is better); "
                 "size and memory = rewind / peer (lower is better).")
    lines.append("")
    lines.append("| measure | " + " | ".join("vs " + p for p in peers) + " | target (vs restic) |")
    lines.append("|---|" + "---:|" * len(peers) + "---|")
    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b
    for phase in phases:
        cells = [fmt(ratio(med(p, phase, 0), med("rewind", phase, 0)), ".2f") + "×" for p in peers]
        t = targets.get(phase)
        lines.append("| %s speed | %s | %s |" % (phase, " | ".join(cells), "≥ %d×" % t if t else ""))
    cells = [fmt(ratio(med("rewind", "backup2", 2), med(p, "backup2", 2)), ".2f") for p in peers]
    lines.append("| repository size | %s | ≤ 1.00 |" % " | ".join(cells))
    for phase in phases[1:]:
        cells = [fmt(ratio(med("rewind", phase, 1), med(p, phase, 1)), ".2f") for p in peers]
        lines.append("| %s peak memory | %s | ≤ 1.00 |" % (phase, " | ".join(cells)))
    peak = lambda t: max((med(t, ph, 1) or 0) for ph in phases)
    cells = [fmt(ratio(peak("rewind"), peak(p)), ".2f") for p in peers]
    lines.append("| peak memory, any phase | %s | ≤ 1.00 |" % " | ".join(cells))

header = (versions + ". Corpus: %s entries, %.2f GiB (apparent size); %s run%s%s; page cache dropped before every phase. "
          "MB/s: corpus bytes per second for backups and restore, repository bytes per second for check. "
          "repo MiB: `du -sb` after that backup. peak MiB: max RSS from GNU `/usr/bin/time`."
          % (corpus_files, corpus_bytes / 2**30, runs, "s" if runs > 1 else "",
             ", medians" if runs > 1 else ""))
text = header + "\n\n" + "\n".join(lines) + "\n"
open(out, "w").write(text)
print()
print(text)
EOF
say "markdown table written to $OUT; logs in $WORK/logs (kept only with KEEP=1)"
