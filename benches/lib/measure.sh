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

# Root (to drop the page cache), GNU time and python3 (for the tables).
check_prerequisites() {
    [[ $(id -u) -eq 0 ]] || die "run as root: dropping the page cache needs it"
    [[ -x /usr/bin/time ]] || die "GNU time is missing: apt-get install -y time"
    command -v python3 >/dev/null || die "python3 is missing"
}

# Sets TOOL_LIST from TOOLS (default: rewind and the installed peers) and
# checks that each is known and installed.
choose_tools() {
    if [[ -z ${TOOLS:-} ]]; then
        TOOLS="rewind"
        command -v restic >/dev/null && TOOLS+=" restic"
        command -v borg >/dev/null && TOOLS+=" borg"
    fi
    read -r -a TOOL_LIST <<<"$TOOLS"
    local tool
    for tool in "${TOOL_LIST[@]}"; do
        case $tool in
        rewind) ;;
        restic | borg) command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install -y ${tool/borg/borgbackup})" ;;
        *) die "unknown tool '$tool' (use rewind, restic, borg)" ;;
        esac
    done
}
