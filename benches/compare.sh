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
# The corpus (about 1.9 GiB, 61,000 entries), as in issue 2:
#   small/      copies of /usr/include and /usr/share (headers, docs, locales)
#   random.bin  256 MiB of random bytes
#   app.log     ~192 MiB of log lines
#   disk.img    a 512 MiB sparse image with 64 MiB of data in 16 regions
#   dump.sql    a ~290 MB plain pg_dump of `pgbench -i -s 30` (generated, no PostgreSQL)
# The ~2% change: every 50th small file gets a line appended, 8 MiB of new
# log lines are appended, 4 MiB in the middle of random.bin are rewritten.
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

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number"
[[ $(id -u) -eq 0 ]] || die "run as root: dropping the page cache needs it"
[[ -x /usr/bin/time ]] || die "GNU time is missing: apt-get install -y time"
command -v python3 >/dev/null || die "python3 is missing"

if [[ -z ${TOOLS:-} ]]; then
    TOOLS="rewind"
    command -v restic >/dev/null && TOOLS+=" restic"
    command -v borg >/dev/null && TOOLS+=" borg"
fi
read -r -a TOOL_LIST <<<"$TOOLS"
for tool in "${TOOL_LIST[@]}"; do
    case $tool in
    rewind) ;;
    restic | borg) command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install -y ${tool/borg/borgbackup})" ;;
    *) die "unknown tool '$tool' (use rewind, restic, borg)" ;;
    esac
done

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

CHANGED=0
cleanup() {
    local status=$?
    if ((CHANGED)); then
        revert_change || true
    fi
    if ((KEEP)); then
        say "kept $BENCH_DIR"
    else
        rm -rf "$WORK"
        if ((OWN_CORPUS)); then
            rm -rf "$CORPUS"
        fi
        rmdir "$BENCH_DIR" 2>/dev/null || true
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# ---------------------------------------------------------------- the corpus

make_log() { # make_log FILE BYTES SEED: web/database-like log lines
    python3 - "$1" "$2" "$3" <<'EOF'
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
levels = ["INFO"] * 6 + ["DEBUG"] * 3 + ["WARN", "ERROR"]
paths = ["/api/v1/users", "/api/v1/orders", "/api/v1/orders/{}", "/static/app.{}.js",
         "/login", "/api/v2/search?q=item{}", "/healthz", "/metrics"]
agents = ["curl/7.88.1", "Mozilla/5.0 (X11; Linux x86_64)", "python-requests/2.28", "Go-http-client/1.1"]
t = 1717200000 + seed % 1000
written = 0
with open(path, "ab") as f:
    while written < size:
        lines = []
        for _ in range(5000):
            t += rng.random() * 0.05
            s = int(t)
            p = rng.choice(paths).format(rng.randrange(10000))
            lines.append("2024-06-%02dT%02d:%02d:%02d.%03dZ %s [worker-%d] %s %s %d %d %dms ip=10.%d.%d.%d ua=\"%s\" req=%016x\n" % (
                1 + (s // 86400) % 28, (s // 3600) % 24, (s // 60) % 60, s % 60, int(t * 1000) % 1000,
                rng.choice(levels), rng.randrange(16), rng.choice(("GET", "GET", "POST", "PUT")), p,
                rng.choice((200, 200, 200, 201, 304, 404, 500)), rng.randrange(100000),
                rng.randrange(2000), rng.randrange(256), rng.randrange(256), rng.randrange(256),
                rng.choice(agents), rng.getrandbits(64)))
        block = "".join(lines).encode()
        block = block[: size - written]
        f.write(block)
        written += len(block)
EOF
}

make_dump() { # make_dump FILE: what `pg_dump` writes after `pgbench -i -s 30`
    python3 - "$1" <<'EOF'
import sys
scale = 30
out = open(sys.argv[1], "w")
out.write("""--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

CREATE TABLE public.pgbench_accounts (
    aid integer NOT NULL,
    bid integer,
    abalance integer,
    filler character(84)
)
WITH (fillfactor='100');

CREATE TABLE public.pgbench_branches (
    bid integer NOT NULL,
    bbalance integer,
    filler character(88)
)
WITH (fillfactor='100');

CREATE TABLE public.pgbench_history (
    tid integer,
    bid integer,
    aid integer,
    delta integer,
    mtime timestamp without time zone,
    filler character(22)
);

CREATE TABLE public.pgbench_tellers (
    tid integer NOT NULL,
    bid integer,
    tbalance integer,
    filler character(84)
)
WITH (fillfactor='100');

--
-- Data for Name: pgbench_accounts; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.pgbench_accounts (aid, bid, abalance, filler) FROM stdin;
""")
filler = " " * 84
rows = 100000 * scale
batch = []
for aid in range(1, rows + 1):
    batch.append("%d\t%d\t0\t%s\n" % (aid, (aid - 1) // 100000 + 1, filler))
    if len(batch) == 20000:
        out.write("".join(batch))
        batch = []
out.write("".join(batch))
out.write("\\.\n\n\n--\n-- Data for Name: pgbench_branches; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n")
out.write("COPY public.pgbench_branches (bid, bbalance, filler) FROM stdin;\n")
for bid in range(1, scale + 1):
    out.write("%d\t0\t\\N\n" % bid)
out.write("\\.\n\n\n--\n-- Data for Name: pgbench_history; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n")
out.write("COPY public.pgbench_history (tid, bid, aid, delta, mtime, filler) FROM stdin;\n\\.\n\n\n")
out.write("--\n-- Data for Name: pgbench_tellers; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n")
out.write("COPY public.pgbench_tellers (tid, bid, tbalance, filler) FROM stdin;\n")
for tid in range(1, scale * 10 + 1):
    out.write("%d\t%d\t0\t\\N\n" % (tid, (tid - 1) // 10 + 1))
out.write("\\.\n\n\n")
for t, k in (("accounts", "aid"), ("branches", "bid"), ("tellers", "tid")):
    out.write("ALTER TABLE ONLY public.pgbench_%s\n    ADD CONSTRAINT pgbench_%s_pkey PRIMARY KEY (%s);\n\n" % (t, t, k))
out.write("--\n-- PostgreSQL database dump complete\n--\n\n")
EOF
}

make_corpus() {
    if [[ -f $CORPUS/.rewind-bench-corpus ]]; then
        say "using the corpus in $CORPUS"
        return
    fi
    [[ -z $(ls -A "$CORPUS") ]] || die "$CORPUS is neither empty nor a corpus made by this script"
    say "generating the corpus in $CORPUS"
    mkdir -p "$CORPUS/small"
    cp -a /usr/include /usr/share "$CORPUS/small/"
    head -c $((256 << 20)) /dev/urandom >"$CORPUS/random.bin"
    make_log "$CORPUS/app.log" $((192 << 20)) 1
    truncate -s 512M "$CORPUS/disk.img"
    local i
    for i in $(seq 0 15); do
        # 16 regions of 4 MiB, every 32 MiB: alternately random and text-like
        if ((i % 2)); then
            head -c $((4 << 20)) /dev/urandom
        else
            dd if="$CORPUS/app.log" bs=1M skip=$((i * 4)) count=4 status=none | tr 'a-m' 'n-z'
        fi | dd of="$CORPUS/disk.img" bs=1M seek=$((i * 32)) conv=notrunc status=none
    done
    make_dump "$CORPUS/dump.sql"
    touch "$CORPUS/.rewind-bench-corpus"
    sync
}

# The ~2% change, and its exact undo (so that RUNS>1 and a kept CORPUS start
# from the same bytes).
SMALL_LIST=$WORK/orig/small-files
apply_change() {
    say "changing ~2% of the corpus"
    CHANGED=1
    (cd "$CORPUS" && find small -type f -size +0 -print0 | sort -z | sed -z -n '50~50p') >"$SMALL_LIST"
    (cd "$CORPUS" && tar -cf "$WORK/orig/small.tar" --null -T "$SMALL_LIST")
    # shellcheck disable=SC2016 # $f expands in the inner shell
    (cd "$CORPUS" && xargs -0 -a "$SMALL_LIST" -n 200 sh -c 'for f in "$@"; do echo "# changed by compare.sh" >>"$f"; done' sh)
    stat -c %s "$CORPUS/app.log" >"$WORK/orig/app.log.size"
    make_log "$CORPUS/app.log" $((8 << 20)) 2
    dd if="$CORPUS/random.bin" of="$WORK/orig/random.region" bs=1M skip=100 count=4 status=none
    head -c $((4 << 20)) /dev/urandom | dd of="$CORPUS/random.bin" bs=1M seek=100 conv=notrunc status=none
    sync
}

revert_change() {
    say "putting the corpus back as it was"
    (cd "$CORPUS" && tar -xf "$WORK/orig/small.tar")
    truncate -s "$(cat "$WORK/orig/app.log.size")" "$CORPUS/app.log"
    dd if="$WORK/orig/random.region" of="$CORPUS/random.bin" bs=1M seek=100 conv=notrunc status=none
    CHANGED=0
    sync
}

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
    local tool=$1 phase=$2 run=$3 repo target="" dir log cmd start end status
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
    drop_caches
    start=$EPOCHREALTIME
    set +e
    (
        cd "$dir"
        export REWIND_REPO=$repo REWIND_PASSWORD=$PASSWORD
        export RESTIC_REPOSITORY=$repo RESTIC_PASSWORD=$PASSWORD RESTIC_CACHE_DIR=$WORK/cache/restic
        export BORG_PASSPHRASE=$PASSWORD BORG_BASE_DIR=$WORK/cache/borg BORG_DISPLAY_PASSPHRASE=no
        # shellcheck disable=SC2086 # the command is split into words on purpose
        exec /usr/bin/time -v -o "$log.time" $cmd >"$log.out" 2>"$log.err" </dev/null
    )
    status=$?
    set -e
    end=$EPOCHREALTIME
    local seconds rss
    seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log.time")
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
    apply_change
    for tool in "${TOOL_LIST[@]}"; do
        run_phase "$tool" backup2 "$run"
    done
    for tool in "${TOOL_LIST[@]}"; do
        run_phase "$tool" restore "$run"
    done
    for tool in "${TOOL_LIST[@]}"; do
        run_phase "$tool" check "$run"
    done
    revert_change
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
          "repo MiB: `du -sb` after that backup. peak MiB: max RSS from `/usr/bin/time -v`."
          % (corpus_files, corpus_bytes / 2**30, runs, "s" if runs > 1 else "",
             ", medians" if runs > 1 else ""))
text = header + "\n\n" + "\n".join(lines) + "\n"
open(out, "w").write(text)
print()
print(text)
EOF
say "markdown table written to $OUT; logs in $WORK/logs (kept only with KEEP=1)"
