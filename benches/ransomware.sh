#!/usr/bin/env bash
# Finding the last clean snapshot (issue 14): false alarms on ordinary days,
# and detection of a simulated ransomware attack, on the benchmark corpus.
# It measures detection, not speed: a debug build is fine.
#
#   benches/ransomware.sh                                  # release build, 7 days
#   REWIND_BIN=target/debug/rewind DAYS=10 benches/ransomware.sh
#
# On a copy of the corpus (the corpus itself is never touched): a first
# backup, then DAYS ordinary days, each one of benches/lib/corpus.sh's ~2%
# changes (every 50th small file gets a line, 8 MiB of log lines appended,
# 4 MiB of random.bin rewritten) and a backup; a backup flagged suspicious
# on those days is a false alarm (zero wanted). Then the attack: ATTACK%
# of the non-empty files, chosen at random, encrypted in place (XOR with
# os.urandom, the size kept) and a backup, which should be flagged (exit 5,
# "suspicious": true). Last, `rewind diff` of the attacked snapshot against
# its parent: how many of the encrypted files it names.
#
# Environment:
#   CORPUS=DIR      the corpus to copy (default /work/bench-corpus, created
#                   there if missing); a part of it works too, as long as it
#                   has small/, app.log and random.bin
#   DAYS=N          ordinary days before the attack (default 7)
#   ATTACK=P        percent of the files the attack encrypts (default 30)
#   SEED=N          which files the attack picks (default 1)
#   BENCH_DIR=DIR   scratch directory, room for a copy of the corpus and a
#                   repository (default /tmp/rewind-ransomware-bench);
#                   removed at the end unless KEEP=1
#   REWIND_BIN=PATH a rewind binary (default: `cargo build --release` here)
#   OUT=FILE        the markdown table (default: target/ransomware-results.md)
#
# Exits 0 when there was no false alarm and the attack was flagged, 1 if not.

set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=benches/lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"
# shellcheck source=benches/lib/corpus.sh
source "$SCRIPT_DIR/lib/corpus.sh"

DAYS=${DAYS:-7}
ATTACK=${ATTACK:-30}
SEED=${SEED:-1}
KEEP=${KEEP:-0}
SOURCE_CORPUS=$(realpath -m "${CORPUS:-/work/bench-corpus}")
BENCH_DIR=$(realpath -m "${BENCH_DIR:-/tmp/rewind-ransomware-bench}")
OUT=$(realpath -m "${OUT:-$ROOT/target/ransomware-results.md}")
[[ -z ${REWIND_BIN:-} ]] || REWIND_BIN=$(realpath -m "$REWIND_BIN")
[[ $DAYS =~ ^[1-9][0-9]*$ ]] || die "DAYS must be a positive number"
if ! [[ $ATTACK =~ ^[0-9]+$ ]] || ((ATTACK == 0 || ATTACK > 100)); then
    die "ATTACK must be a percentage"
fi
command -v python3 >/dev/null || die "python3 is missing"

cd "$ROOT"
release_rewind
[[ -x $REWIND_BIN ]] || die "no rewind binary at $REWIND_BIN"

WORK=$BENCH_DIR/work
case $SOURCE_CORPUS/ in
"$WORK"/*) die "CORPUS must not be inside $WORK" ;;
esac
rm -rf "$WORK"
mkdir -p "$WORK" "$SOURCE_CORPUS" "$(dirname "$OUT")"
# corpus.sh's functions change $CORPUS: here, the copy. clean_up_bench
# removes it (OWN_CORPUS=1) with the rest of WORK.
if [[ ! -d $SOURCE_CORPUS/small || ! -f $SOURCE_CORPUS/app.log || ! -f $SOURCE_CORPUS/random.bin ]]; then
    CORPUS=$SOURCE_CORPUS
    make_corpus
fi
CORPUS=$WORK/corpus
CORPUS_UNDO=$WORK/undo
# shellcheck disable=SC2034 # read by clean_up_bench
OWN_CORPUS=1
trap clean_up_bench EXIT
trap 'exit 130' INT TERM
say "copying $SOURCE_CORPUS"
cp -a "$SOURCE_CORPUS" "$CORPUS"

export REWIND_REPO=$WORK/repo REWIND_PASSWORD=rewind-benchmark-password
export XDG_CACHE_HOME=$WORK/cache
"$REWIND_BIN" init >/dev/null

ROWS=$WORK/rows.md
: >"$ROWS"
FALSE_ALARMS=0
DETECTED=no

# back_up LABEL DAY: a backup recorded on day DAY; appends a row to the table
# and sets SNAPSHOT (its id), PARENT and FLAGGED (yes or no).
back_up() {
    local label=$1 day=$2 code=0 row
    "$REWIND_BIN" backup --json --host bench \
        --time "$(date -u -d "2026-03-01 + $day days" +%Y-%m-%dT%H:%M:%SZ)" \
        "$CORPUS" >"$WORK/backup.json" 2>"$WORK/backup.err" || code=$?
    if [[ $code -ne 0 && $code -ne 5 ]]; then
        cat "$WORK/backup.err" >&2
        die "the backup of $label failed (exit $code)"
    fi
    row=$(python3 - "$WORK/backup.json" "$label" "$code" <<'EOF'
import json, sys
snapshot = json.load(open(sys.argv[1]))
label, code = sys.argv[2], sys.argv[3]
s, verdict = snapshot["summary"], snapshot["suspicion"] or {}
changed = s.get("changed_data") or {}
percent = lambda x: "–" if x is None else "%.2f%%" % (100 * x)
print("\t".join([snapshot["id"], snapshot["parent"] or "-", "yes" if snapshot["suspicious"] else "no",
    "| %s | %d | %d | %d | %s | %s | %s | %s |" % (
        label, s["files_new"] + s["files_changed"], changed.get("files_incompressible", 0),
        s["files_new"] + s["files_changed"] + s["files_unchanged"],
        percent(verdict.get("share")), percent(verdict.get("threshold")),
        "**yes**" if snapshot["suspicious"] else "no", code)]))
EOF
)
    IFS=$'\t' read -r SNAPSHOT PARENT FLAGGED line <<<"$row"
    echo "$line" >>"$ROWS"
    say "$label: suspicious $FLAGGED (exit $code)"
}

say "first backup"
back_up "first backup" 0
for day in $(seq 1 "$DAYS"); do
    mutate_corpus "$day"
    back_up "day $day" "$day"
    [[ $FLAGGED == no ]] || FALSE_ALARMS=$((FALSE_ALARMS + 1))
done

say "the attack: encrypting $ATTACK% of the files in place"
python3 - "$CORPUS" "$ATTACK" "$SEED" "$WORK/encrypted" <<'EOF'
import os, random, sys
root, percent, seed, listing = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
files = []
for directory, _, names in os.walk(root):
    for name in names:
        path = os.path.join(directory, name)
        if not os.path.islink(path) and os.path.isfile(path) and os.path.getsize(path) > 0:
            files.append(path)
files.sort()
victims = random.Random(seed).sample(files, len(files) * percent // 100)
with open(listing, "w") as out:
    for path in victims:
        with open(path, "r+b") as f:
            offset = 0
            while block := f.read(1 << 20):
                key = os.urandom(len(block))
                f.seek(offset)
                f.write((int.from_bytes(block, "little") ^ int.from_bytes(key, "little")).to_bytes(len(block), "little"))
                offset += len(block)
        out.write("%d\t%s\n" % (os.path.getsize(path), os.path.relpath(path, "/")))
print("encrypted %d of %d files" % (len(victims), len(files)), file=sys.stderr)
EOF
back_up "**attack**" $((DAYS + 1))
[[ $FLAGGED == no ]] || DETECTED=yes

say "diff of the attacked snapshot against its parent"
code=0
"$REWIND_BIN" diff --json "$PARENT" "$SNAPSHOT" >"$WORK/diff.json" 2>/dev/null || code=$?
[[ $code -eq 1 ]] || die "diff exited $code"
NAMED=$(python3 - "$WORK/diff.json" "$WORK/encrypted" <<'EOF'
import json, sys
marked = {c["path"] for c in json.load(open(sys.argv[1]))["changes"] if c.get("incompressible")}
encrypted = dict(line.rstrip("\n").split("\t")[::-1] for line in open(sys.argv[2]))
judged = {p for p, size in encrypted.items() if int(size) >= 512}
print("diff names %d of the %d encrypted files (%d of the %d of 512 bytes or more, the shortest "
      "a chunk is judged); %d files it names were not encrypted" % (
    len(marked & encrypted.keys()), len(encrypted), len(marked & judged), len(judged),
    len(marked - encrypted.keys())))
EOF
)

{
    echo "Ransomware detection on $(du -sh "$SOURCE_CORPUS" | cut -f1) of corpus ($(find "$CORPUS" -type f | wc -l) files), $DAYS ordinary days, then $ATTACK% of the files encrypted in place; $("$REWIND_BIN" --version):"
    echo
    echo "| backup | files new or changed | rewritten incompressible | files | share | suspicious from | suspicious | exit |"
    echo "|---|---:|---:|---:|---:|---:|---|---:|"
    cat "$ROWS"
    echo
    echo "False alarms: $FALSE_ALARMS of $DAYS ordinary days. Attack detected: $DETECTED. $NAMED."
} >"$OUT"
cat "$OUT"
rm -rf "$CORPUS_UNDO" # the copy goes whole: nothing to put back
[[ $FALSE_ALARMS -eq 0 && $DETECTED == yes ]]
