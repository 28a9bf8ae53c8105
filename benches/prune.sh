#!/usr/bin/env bash
# Forget and prune after a history of backups: rewind against restic and borg,
# in one run, on this machine. Issue 12's targets: prune at least 3x faster
# than restic's, peak memory and repository size after it no more than restic's.
#
#   sudo benches/prune.sh                           # 30 generations, RUNS=3
#   sudo GENERATIONS=5 RUNS=1 benches/prune.sh      # a quick try
#   sudo TOOLS="restic borg" benches/prune.sh       # the peers alone
#
# Setup, once: every tool backs up the corpus GENERATIONS times, each into its
# own repository, with a different ~2% change to the corpus before every
# backup but the first (benches/lib/corpus.sh), so that every repository
# holds the same history. As in compare.sh, every tool encrypts and
# compresses: restic repository v2 with `--compression auto`, borg
# `repokey-blake2` with `--compression zstd,3`, rewind aes-256-gcm with its
# default zstd level 3.
#
# Then RUNS times, the tools in turn (each run starting with the next tool):
# a fresh copy (`cp -a`) of the tool's repository and cache as setup left
# them, `sync; echo 3 > /proc/sys/vm/drop_caches`, and, timed by GNU time
# (wall seconds, peak resident memory), the forget and the prune, each at its
# defaults for how much unused space a pack may keep:
#   rewind  rewind forget --keep-last 7 --prune
#   restic  restic forget --keep-last 7 --prune
#   borg    borg prune --keep-last 7, then borg compact (seconds summed, the
#           larger peak)
# Repository size (`du -sb`) before and after. The table gives medians and
# ratios to restic. After the last run, untimed, each pruned copy must pass
# its check (rewind `check --read-data`, restic `check`, borg `check`) and
# hold the KEEP_LAST newest snapshots, or the script fails.
#
# Environment:
#   GENERATIONS=N   backups in the history (default 30)
#   KEEP_LAST=N     snapshots kept by the forget (default 7)
#   RUNS=N          prunes per tool, each on a fresh copy; medians (default 3)
#   SETUP_DIR=DIR   keep the repositories the setup made in DIR and reuse them
#                   when it holds a complete setup of the same GENERATIONS,
#                   TOOLS and corpus (the setup takes most of the time)
#   SETUP_ONLY=1    stop after the setup (run it while the machine is busy,
#                   then measure with SETUP_DIR on a quiet machine)
#   TOOLS="..."     which of rewind, restic, borg to run (default: all installed)
#   CORPUS=DIR      the corpus: used if it is one, else created there (default
#                   /work/bench-corpus); changed during setup and put back as
#                   it was
#   BENCH_DIR=DIR   scratch directory, room for two copies of every repository
#                   (default /tmp/rewind-prune-bench); removed at the end
#                   unless KEEP=1
#   REWIND_BIN=PATH a rewind binary (default: `cargo build --release` here)
#   OUT=FILE        the markdown table (default: target/prune-results.md)
#
# Needs root (to drop the page cache), GNU time (`apt-get install -y time`),
# python3, and for the peers `apt-get install -y restic borgbackup`.

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

GENERATIONS=${GENERATIONS:-30}
KEEP_LAST=${KEEP_LAST:-7}
RUNS=${RUNS:-3}
KEEP=${KEEP:-0}
# paths resolved before the build below changes directory
CORPUS=$(realpath -m "${CORPUS:-/work/bench-corpus}")
BENCH_DIR=$(realpath -m "${BENCH_DIR:-/tmp/rewind-prune-bench}")
OUT=$(realpath -m "${OUT:-$ROOT/target/prune-results.md}")
[[ -z ${REWIND_BIN:-} ]] || REWIND_BIN=$(realpath -m "$REWIND_BIN")
PASSWORD=rewind-benchmark-password

for var in GENERATIONS KEEP_LAST RUNS; do
    [[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive number"
done
check_prerequisites
choose_tools

if [[ " ${TOOL_LIST[*]} " == *" rewind "* ]]; then
    if [[ -z ${REWIND_BIN:-} ]]; then
        say "building rewind (cargo build --release)"
    fi
    cd "$ROOT"
    release_rewind
    [[ -x $REWIND_BIN ]] || die "no rewind binary at $REWIND_BIN"
fi

WORK=$BENCH_DIR/work
case $CORPUS/ in
"$WORK"/*) die "CORPUS must not be inside $WORK" ;;
esac
rm -rf "$WORK"
LIVE=$WORK/live         # the repositories the tools work on, one directory per tool
PRISTINE=${SETUP_DIR:-$WORK/pristine} # each tool's directory as setup left it
LOGS=$WORK/logs
mkdir -p "$CORPUS" "$LIVE" "$PRISTINE" "$LOGS" "$(dirname "$OUT")"
CORPUS_UNDO=$WORK/undo
RESULTS=$WORK/results.tsv # tool, run, seconds, peak KiB, bytes after, exit status
SIZES=$WORK/sizes.tsv     # tool, bytes before
CHECKS=$WORK/checks.tsv   # tool, "ok" or what failed
: >"$RESULTS"
: >"$SIZES"
: >"$CHECKS"

trap clean_up_bench EXIT
trap 'exit 130' INT TERM

# Each tool keeps its cache beside its repository, so that a copy of the
# directory is the whole state the tool would find after the backups (borg
# refuses a repository older than its cache and security directory).
export REWIND_PASSWORD=$PASSWORD RESTIC_PASSWORD=$PASSWORD BORG_PASSPHRASE=$PASSWORD
export XDG_CACHE_HOME=$LIVE/rewind/cache RESTIC_CACHE_DIR=$LIVE/restic/cache
export BORG_BASE_DIR=$LIVE/borg/cache BORG_DISPLAY_PASSPHRASE=no

# ---------------------------------------------------------------- the tools

repo_of() { echo "$LIVE/$1/repo"; }

# command_for TOOL STEP [GENERATION]: sets CMD to the command of that step
command_for() {
    local tool=$1 step=$2 generation=${3:-} repo
    repo=$(repo_of "$tool")
    case $tool/$step in
    rewind/init) CMD=("$REWIND_BIN" --repo "$repo" init) ;;
    rewind/backup) CMD=("$REWIND_BIN" --repo "$repo" backup "$CORPUS") ;;
    rewind/prune) CMD=("$REWIND_BIN" --repo "$repo" forget --keep-last "$KEEP_LAST" --prune) ;;
    rewind/check) CMD=("$REWIND_BIN" --repo "$repo" check --read-data) ;;
    restic/init) CMD=(restic -r "$repo" init --repository-version 2) ;;
    restic/backup) CMD=(restic -r "$repo" --compression auto backup "$CORPUS") ;;
    restic/prune) CMD=(restic -r "$repo" forget --keep-last "$KEEP_LAST" --prune) ;;
    restic/check) CMD=(restic -r "$repo" check) ;;
    borg/init) CMD=(borg init --encryption repokey-blake2 "$repo") ;;
    borg/backup) CMD=(borg create --compression "zstd,3" "$repo::generation-$generation" "$CORPUS") ;;
    borg/prune) CMD=(borg prune --keep-last "$KEEP_LAST" "$repo") ;;
    borg/compact) CMD=(borg compact "$repo") ;;
    borg/check) CMD=(borg check "$repo") ;;
    *) die "no $step step for $tool" ;;
    esac
}

# The timed steps: one command where the tool has one.
prune_steps() {
    case $1 in
    borg) echo prune compact ;;
    *) echo prune ;;
    esac
}

snapshot_count() {
    local tool=$1 repo
    repo=$(repo_of "$tool")
    case $tool in
    rewind) "$REWIND_BIN" --repo "$repo" snapshots --json ;;
    restic) restic -r "$repo" snapshots --json ;;
    borg) borg list --json "$repo" ;;
    esac 2>/dev/null | python3 -c '
import json, sys
listed = json.load(sys.stdin)
print(len(listed["archives"] if isinstance(listed, dict) else listed))'
}

# setup_step TOOL STEP [GENERATION]: runs one untimed step, or fails the bench
setup_step() {
    local tool=$1 step=$2 generation=${3:-} log
    log=$LOGS/setup-$tool-$step$generation
    command_for "$tool" "$step" "$generation"
    run_timed "$log" "$WORK" "${CMD[@]}"
    ((TIMED_STATUS == 0)) || die "$tool $step $generation failed (exit $TIMED_STATUS): $(tail -n 3 "$log.err" | tr '\n' ' ')"
    if [[ $step == backup ]]; then
        printf '   %-7s backup %-4s %8.2f s\n' "$tool" "$generation" "$TIMED_SECONDS" >&2
    fi
}

# measure_prune TOOL RUN: times the forget and prune on a fresh copy from a cold page cache
measure_prune() {
    local tool=$1 run=$2 step seconds=0 rss=0 status=0 after log
    rm -rf "${LIVE:?}/$tool"
    cp -a "$PRISTINE/$tool" "$LIVE/$tool"
    drop_caches
    for step in $(prune_steps "$tool"); do
        command_for "$tool" "$step"
        log=$LOGS/$tool-$step-$run
        run_timed "$log" "$WORK" "${CMD[@]}"
        seconds=$(awk -v a="$seconds" -v b="$TIMED_SECONDS" 'BEGIN { printf "%.2f", a + b }')
        ((TIMED_RSS_KIB > rss)) && rss=$TIMED_RSS_KIB
        status=$TIMED_STATUS
        if ((status != 0)); then
            printf '   %-7s %-8s FAILED (exit %s): %s\n' "$tool" "$step" "$status" "$(tail -n 3 "$log.err" | tr '\n' ' ')" >&2
            break
        fi
    done
    after=$(du -sb "$(repo_of "$tool")" | cut -f1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$run" "$seconds" "$rss" "$after" "$status" >>"$RESULTS"
    if ((status == 0)); then
        printf '   %-7s %8.2f s  %6d MiB peak  %8d MiB after\n' "$tool" "$seconds" "$((rss / 1024))" "$((after >> 20))" >&2
    fi
}

# verify_pruned TOOL: the last pruned copy passes its check and holds the
# snapshots the policy keeps; the verdict goes to CHECKS
verify_pruned() {
    local tool=$1 verdict=ok count want log
    log=$LOGS/$tool-check
    want=$((KEEP_LAST < GENERATIONS ? KEEP_LAST : GENERATIONS))
    command_for "$tool" check
    run_timed "$log" "$WORK" "${CMD[@]}"
    if ((TIMED_STATUS != 0)); then
        verdict="check failed (exit $TIMED_STATUS): $(tail -n 3 "$log.err" | tr '\n' ' ')"
    else
        count=$(snapshot_count "$tool" || echo "none")
        [[ $count == "$want" ]] || verdict="$count snapshots left, not $want"
    fi
    printf '   %-7s %s\n' "$tool" "$verdict" >&2
    printf '%s\t%s\n' "$tool" "$verdict" >>"$CHECKS"
}

# ---------------------------------------------------------------- the run

make_corpus
CORPUS_BYTES=$(du -sb --apparent-size "$CORPUS" | cut -f1)
CORPUS_FILES=$(find "$CORPUS" | wc -l)
say "corpus: $CORPUS_FILES entries, $((CORPUS_BYTES >> 20)) MiB (apparent), $(du -sm "$CORPUS" | cut -f1) MiB on disk"
VERSIONS=()
for tool in "${TOOL_LIST[@]}"; do
    case $tool in
    rewind) VERSIONS+=("$("$REWIND_BIN" --version)") ;;
    restic) VERSIONS+=("$(restic version | cut -d' ' -f1-2)") ;;
    borg) VERSIONS+=("$(borg --version)") ;;
    esac
done
MACHINE="$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM"
ABOUT="$(printf '%s, ' "${VERSIONS[@]}")$MACHINE"
say "$ABOUT"

SETUP_KEY="generations=$GENERATIONS tools=${TOOL_LIST[*]} corpus=$CORPUS_BYTES"
if [[ -f $PRISTINE/complete && $(cat "$PRISTINE/complete") == "$SETUP_KEY" ]]; then
    say "setup: reusing the repositories in $PRISTINE ($SETUP_KEY)"
else
    say "setup: $GENERATIONS generations, backed up by ${TOOL_LIST[*]}"
    rm -rf "${PRISTINE:?}"/*
    for tool in "${TOOL_LIST[@]}"; do
        mkdir -p "$LIVE/$tool/cache"
        setup_step "$tool" init
    done
    for generation in $(seq 1 "$GENERATIONS"); do
        if ((generation > 1)); then
            mutate_corpus $((generation - 1))
        fi
        for tool in "${TOOL_LIST[@]}"; do
            setup_step "$tool" backup "$generation"
        done
    done
    revert_corpus
    for tool in "${TOOL_LIST[@]}"; do
        mv "$LIVE/$tool" "$PRISTINE/$tool"
    done
    echo "$SETUP_KEY" >"$PRISTINE/complete"
fi
for tool in "${TOOL_LIST[@]}"; do
    printf '%s\t%s\n' "$tool" "$(du -sb "$PRISTINE/$tool/repo" | cut -f1)" >>"$SIZES"
done
if ((${SETUP_ONLY:-0})); then
    say "setup done; measure later with SETUP_DIR=$PRISTINE on a quiet machine"
    exit 0
fi

for run in $(seq 1 "$RUNS"); do
    say "run $run of $RUNS: forget --keep-last $KEEP_LAST and prune"
    for i in "${!TOOL_LIST[@]}"; do
        measure_prune "${TOOL_LIST[(i + run - 1) % ${#TOOL_LIST[@]}]}" "$run"
    done
done

say "checking the pruned repositories (untimed)"
for tool in "${TOOL_LIST[@]}"; do
    verify_pruned "$tool"
done

# ---------------------------------------------------------------- the table

python3 - "$RESULTS" "$SIZES" "$CHECKS" "$OUT" "$ABOUT" "$CORPUS_BYTES" "$CORPUS_FILES" \
    "$GENERATIONS" "$KEEP_LAST" "$RUNS" "${TOOL_LIST[@]}" <<'EOF'
import statistics, sys
from collections import defaultdict

results, sizes, checks, out, about, corpus_bytes, corpus_files, generations, keep_last, runs = sys.argv[1:11]
tools = sys.argv[11:]
runs = int(runs)
rows = defaultdict(list)
for line in open(results):
    tool, run, secs, rss, after, status = line.rstrip("\n").split("\t")
    rows[tool].append((float(secs), int(rss) / 1024, int(after) / 2**20, int(status)))
before = {t: int(b) / 2**20 for t, b in (l.rstrip("\n").split("\t") for l in open(sizes))}
verdict = dict(l.rstrip("\n").split("\t", 1) for l in open(checks))

def med(tool, i):
    vals = [r[i] for r in rows.get(tool, [])]
    return statistics.median(vals) if vals else None

def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b

def fmt(x, spec, suffix=""):
    return "–" if x is None else format(x, spec) + suffix

lines = [
    "| tool | seconds | (fastest–slowest) | peak MiB | repo MiB before | repo MiB after | speed vs restic | memory / restic | size after / restic | check |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
]
failed = {t for t in tools if any(r[3] != 0 for r in rows[t])}
for tool in tools:
    if tool in failed:
        lines.append("| %s | FAILED | | | %s | | | | | %s |" % (tool, fmt(before.get(tool), ".0f"), verdict.get(tool, "–")))
        continue
    secs = [r[0] for r in rows[tool]]
    vs_restic = "restic" in tools and "restic" not in failed
    lines.append("| %s | %s | %.2f–%.2f | %s | %s | %s | %s | %s | %s | %s |" % (
        tool, fmt(med(tool, 0), ".2f"), min(secs), max(secs),
        fmt(med(tool, 1), ".0f"), fmt(before.get(tool), ".0f"), fmt(med(tool, 2), ".0f"),
        fmt(ratio(med("restic", 0), med(tool, 0)) if vs_restic else None, ".2f", "×"),
        fmt(ratio(med(tool, 1), med("restic", 1)) if vs_restic else None, ".2f"),
        fmt(ratio(med(tool, 2), med("restic", 2)) if vs_restic else None, ".2f"),
        verdict.get(tool, "–")))

header = ("%s. Corpus: %s entries, %.2f GiB (apparent size), backed up %s times with a ~2%% change "
          "between backups; then forget all but the newest %s snapshots and prune, on a fresh copy of "
          "each repository, page cache dropped; %d run%s%s. seconds and peak MiB (max RSS) from GNU time; "
          "repo MiB: `du -sb`. speed vs restic: restic's time / the tool's (higher is better); memory and "
          "size: the tool's / restic's (lower is better). Issue 12's targets for rewind: speed ≥ 3×, "
          "memory ≤ 1.00, size ≤ 1.00."
          % (about, corpus_files, int(corpus_bytes) / 2**30, generations, keep_last, runs,
             "s" if runs > 1 else "", ", medians" if runs > 1 else ""))
text = header + "\n\n" + "\n".join(lines) + "\n"
open(out, "w").write(text)
print()
print(text)
EOF
say "markdown table written to $OUT; logs in $LOGS (kept only with KEEP=1)"

failed=$(awk -F'\t' '$6 != 0 { print $1 }' "$RESULTS" | sort -u | tr '\n' ' ')
unsound=$(awk -F'\t' '$2 != "ok" { print $1 }' "$CHECKS" | tr '\n' ' ')
[[ -z $failed ]] || die "a prune failed: $failed(its error is above; KEEP=1 keeps the logs in $LOGS)"
[[ -z $unsound ]] || die "a pruned repository is not sound: $unsound(KEEP=1 keeps the logs in $LOGS)"
