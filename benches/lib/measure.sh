# shellcheck shell=bash
# Sourced by the benches that time whole commands from a cold page cache
# (compare.sh, prune.sh).

# Empties the page cache (needs root), so that no tool reads what the one
# before it left in memory.
drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# run_timed LOG DIR CMD...: runs CMD in DIR under GNU time, stdin from
# /dev/null, output in LOG.out and LOG.err; sets TIMED_STATUS (its exit
# status), TIMED_SECONDS (wall) and TIMED_RSS_KIB (peak resident memory).
# shellcheck disable=SC2034 # the TIMED_ variables are the caller's to read
run_timed() {
    local log=$1 dir=$2
    shift 2
    set +e
    (cd "$dir" && exec /usr/bin/time -f '%e %M' -o "$log.time" "$@" >"$log.out" 2>"$log.err" </dev/null)
    TIMED_STATUS=$?
    set -e
    TIMED_SECONDS=0 TIMED_RSS_KIB=0
    # GNU time puts "Command exited with non-zero status N" before the figures
    if [[ -s $log.time ]]; then
        read -r TIMED_SECONDS TIMED_RSS_KIB < <(tail -n 1 "$log.time") || true
    fi
}
