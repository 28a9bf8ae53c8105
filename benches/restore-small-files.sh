#!/usr/bin/env bash
# Restore of many small files by two builds of rewind, alternated, each from
# a repository it made itself (the two may differ in format version).
#
#   benches/restore-small-files.sh OLD_REWIND NEW_REWIND [RUNS]
#
# Prints each run's wall seconds and the medians; NEW/OLD is the ratio.
# Corpus: 200 directories of 100 files of 200 random bytes (20,000 files),
# made once under $WORK (default /tmp/rewind-restore-small-files).
set -euo pipefail
old=$1 new=$2 runs=${3:-9}
work=${WORK:-/tmp/rewind-restore-small-files}
export REWIND_PASSWORD=bench
mkdir -p "$work"
if [ ! -d "$work/src" ]; then
  for d in $(seq -w 0 199); do
    mkdir -p "$work/src/d$d"
    for f in $(seq -w 0 99); do head -c 200 /dev/urandom > "$work/src/d$d/f$f"; done
  done
fi
for tool in old new; do
  bin=${!tool}
  rm -rf "$work/repo-$tool"
  "$bin" --repo "$work/repo-$tool" init >/dev/null
  "$bin" --repo "$work/repo-$tool" backup "$work/src" >/dev/null 2>&1
done
declare -A times
for i in $(seq "$runs"); do
  for tool in old new; do
    bin=${!tool}
    rm -rf "$work/target-$tool"
    sync
    start=$(date +%s.%N)
    "$bin" --repo "$work/repo-$tool" restore latest --target "$work/target-$tool" >/dev/null 2>&1
    end=$(date +%s.%N)
    times[$tool]+="$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}') "
  done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_old=$(echo "${times[old]}" | median) m_new=$(echo "${times[new]}" | median)
echo "old: ${times[old]}"
echo "new: ${times[new]}"
echo "median wall: old $m_old s, new $m_new s, new/old $(awk -v a="$m_old" -v b="$m_new" 'BEGIN {printf "%.2f", b / a}')"
