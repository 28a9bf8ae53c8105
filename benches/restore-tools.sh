#!/usr/bin/env bash
# The targets of issue 5, measured on this machine, in one run:
#
#   1. `rewind diff` of two snapshots of a 50,000-file tree that differ in 1%
#      of the files: under 1 second.
#   2. `rewind diff SNAP:SRC SRC` (a snapshot against its own source): at
#      least 2x faster than `diff -r` between the mount and the source.
#   3. `rewind restore-test` of a 1 GiB snapshot: within 10% of the time of
#      `rewind restore` of the same snapshot.
#
#   sudo benches/restore-tools.sh                    # RUNS=3
#   RUNS=5 REWIND_BIN=target/release/rewind benches/restore-tools.sh
#
# Every timed run starts with `sync; echo 3 > /proc/sys/vm/drop_caches`, and
# `diff -r` reads a fresh mount each time, so every tool reads cold. The
# figures are medians of RUNS runs; this machine is shared, so the ratios
# (measured in the same run) mean more than the seconds.
#
# Environment:
#   RUNS=N          runs per measurement (default 3)
#   TARGETS="1 2 3" which targets to measure (default all)
#   FILES=N         files in the tree of targets 1 and 2 (default 50000)
#   BIG_MIB=N       size of the snapshot of target 3 in MiB (default 1024)
#   BENCH_DIR=DIR   scratch space (default /tmp/rewind-restore-bench), removed
#                   at the end unless KEEP=1
#   REWIND_BIN=PATH a rewind binary (default: `cargo build --release` here)
#
# Needs root (page cache, FUSE) and python3.

set -euo pipefail
export LC_ALL=C

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
RUNS=${RUNS:-3}
FILES=${FILES:-50000}
BIG_MIB=${BIG_MIB:-1024}
BENCH_DIR=${BENCH_DIR:-/tmp/rewind-restore-bench}
KEEP=${KEEP:-0}
TARGETS=${TARGETS:-1 2 3}
want() { [[ " $TARGETS " == *" $1 "* ]]; }

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'restore-tools.sh: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root: dropping the page cache and mounting need it"
command -v python3 >/dev/null || die "python3 is missing"

if [[ -z ${REWIND_BIN:-} ]]; then
    say "building rewind (release)"
    (cd "$ROOT" && cargo build --release --quiet)
    REWIND_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/rewind"
fi
[[ -x $REWIND_BIN ]] || die "no rewind binary at $REWIND_BIN"

MNT=$BENCH_DIR/mnt
cleanup() {
    umount -l "$MNT" 2>/dev/null || true
    [[ $KEEP == 1 ]] || rm -rf "$BENCH_DIR"
}
trap cleanup EXIT
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR" "$MNT"

export REWIND_PASSWORD=rewind-benchmark-password
rewind() { "$REWIND_BIN" "$@"; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# Seconds one command takes (its output discarded); its exit status must be
# one of the allowed ones (diff tools answer 1 for "different").
seconds() {
    local allowed=$1; shift
    local start end status=0
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || status=$?
    end=$(date +%s.%N)
    [[ " $allowed " == *" $status "* ]] || die "\`$*\` exited with $status"
    echo "$end - $start" | bc -l
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
fmt() { printf '%.3f' "$1"; }

# ------------------------------------------------------------ targets 1 and 2
diff_snapshots=nan diff_local=nan diff_r=nan restore=nan restore_test=nan
t1=() t_rewind=() t_diff=() t_restore=() t_test=()
if want 1 || want 2; then
export REWIND_REPO=$BENCH_DIR/repo-tree
SRC=$BENCH_DIR/tree
say "a tree of $FILES files (1-8 KiB each, 100 per directory)"
python3 - "$SRC" "$FILES" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(5)
for i in range(n):
    d = os.path.join(root, f"d{i // 10000:02}", f"e{i // 100 % 100:02}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06}"), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 8192)))
EOF
rewind init >/dev/null
rewind backup "$SRC" --time 2024-06-01T02:00:00Z >/dev/null 2>&1
say "changing 1% of the files, and a second backup"
python3 - "$SRC" "$FILES" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(6)
for i in rng.sample(range(n), n // 100):
    p = os.path.join(root, f"d{i // 10000:02}", f"e{i // 100 % 100:02}", f"f{i:06}")
    with open(p, "r+b") as f:
        f.seek(rng.randint(0, 1000))
        f.write(rng.randbytes(16))
EOF
rewind backup "$SRC" --time 2024-06-02T02:00:00Z >/dev/null 2>&1
changed=$(rewind diff @2024-06-01 @2024-06-02 2>/dev/null | wc -l || true)
[[ $changed -eq $((FILES / 100)) ]] || die "diff found $changed changes, expected $((FILES / 100))"

if want 1; then
say "target 1: rewind diff of the two snapshots ($RUNS runs, cold)"
for _ in $(seq "$RUNS"); do cold; t1+=("$(seconds "1" rewind diff @2024-06-01 @2024-06-02)"); done
diff_snapshots=$(median "${t1[@]}")
fi

if want 2; then
say "target 2: rewind diff latest:SRC SRC against diff -r MOUNT SRC ($RUNS runs each, cold)"
for _ in $(seq "$RUNS"); do
    cold; t_rewind+=("$(seconds "0" rewind diff "latest:$SRC" "$SRC")")
    rewind mount "$MNT" --log-file "$BENCH_DIR/mount.log" >/dev/null 2>&1
    cold; t_diff+=("$(seconds "0" diff -r "$MNT/latest$SRC" "$SRC")")
    umount "$MNT"
done
diff_local=$(median "${t_rewind[@]}")
diff_r=$(median "${t_diff[@]}")
fi
fi

# ------------------------------------------------------------------ target 3
if want 3; then
export REWIND_REPO=$BENCH_DIR/repo-big
BIG=$BENCH_DIR/big
say "a ${BIG_MIB} MiB snapshot: 4 files of $((BIG_MIB / 8)) MiB and $((BIG_MIB / 2)) files of 1 MiB"
python3 - "$BIG" "$BIG_MIB" <<'EOF'
import os, sys
root, mib = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(root, "large"))
os.makedirs(os.path.join(root, "small"))
for i in range(4):
    with open(os.path.join(root, "large", f"l{i}"), "wb") as f:
        for _ in range(mib // 8):
            f.write(os.urandom(1 << 20))
for i in range(mib // 2):
    with open(os.path.join(root, "small", f"s{i:04}"), "wb") as f:
        f.write(os.urandom(1 << 20))
EOF
rewind init >/dev/null
rewind backup "$BIG" >/dev/null 2>&1
say "target 3: rewind restore against rewind restore-test ($RUNS runs each, cold, alternating)"
# restore-test also removes what it restored; the restore's copy is removed
# untimed. Which goes first alternates, so neither always follows the other.
for run in $(seq "$RUNS"); do
    order="restore test"
    (( run % 2 )) || order="test restore"
    for what in $order; do
        rm -rf "$BENCH_DIR/restored"; cold
        if [[ $what == restore ]]; then
            t_restore+=("$(seconds "0" rewind restore "latest:$BIG" --target "$BENCH_DIR/restored")")
        else
            t_test+=("$(seconds "0" rewind restore-test "latest:$BIG" --scratch "$BENCH_DIR")")
        fi
    done
done
rm -rf "$BENCH_DIR/restored"
restore=$(median "${t_restore[@]}")
restore_test=$(median "${t_test[@]}")
fi

# -------------------------------------------------------------------- report
met() { [[ $(echo "$1" | bc -l) == 1 ]] && echo yes || echo NO; }
echo
echo "| target | measured (median of $RUNS, cold cache) | goal | met |"
echo "|---|---|---|---|"
if want 1; then
    echo "| diff of two snapshots, $FILES files, 1% changed | $(fmt "$diff_snapshots") s | < 1 s | $(met "$diff_snapshots < 1") |"
fi
if want 2; then
    echo "| diff latest:SRC SRC vs diff -r MOUNT SRC | $(fmt "$diff_local") s vs $(fmt "$diff_r") s: $(ratio "$diff_r" "$diff_local")x | >= 2x | $(met "$diff_r >= 2 * $diff_local") |"
fi
if want 3; then
    echo "| restore-test vs restore, ${BIG_MIB} MiB | $(fmt "$restore_test") s vs $(fmt "$restore") s: $(ratio "$restore_test" "$restore")x | <= 1.10x | $(met "$restore_test <= 1.1 * $restore") |"
fi
echo
echo "runs (s): diff snapshots ${t1[*]:-}; rewind diff ${t_rewind[*]:-}; diff -r ${t_diff[*]:-}; restore ${t_restore[*]:-}; restore-test ${t_test[*]:-}"
