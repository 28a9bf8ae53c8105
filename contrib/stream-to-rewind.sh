# shellcheck shell=bash
# Sourced by the nightly dump scripts beside it: streams the output of a dump
# command into `rewind backup --stdin-name NAME`, and makes sure that a dump
# that fails half-way never becomes a snapshot.
#
# A plain `dump | rewind backup --stdin-name ...` would store a truncated dump
# as if it were whole: rewind sees the end of its input when the dump
# program dies, exactly as when it finishes. Here the pipe's write end stays
# open until the dump's exit status is known; if the dump failed, rewind is
# stopped with SIGTERM before it sees the end of its input, so it writes no
# snapshot (a snapshot manifest is written last; the chunks already stored
# are harmless and shared with the next backup).

# stream_to_rewind NAME [REWIND-BACKUP-OPTION...] -- DUMP-COMMAND [ARG...]
# Prints the new snapshot's id; returns non-zero if the dump or the backup failed.
stream_to_rewind() {
    local name=$1; shift
    local options=()
    while [[ $# -gt 0 && $1 != -- ]]; do options+=("$1"); shift; done
    [[ ${1:-} == -- ]] || { echo "stream_to_rewind: missing -- before the dump command" >&2; return 2; }
    shift
    local dir fifo rewind_pid status=0
    dir=$(mktemp -d "${TMPDIR:-/tmp}/rewind-stream.XXXXXX")
    fifo=$dir/pipe
    mkfifo -m 600 "$fifo"
    "${REWIND:-rewind}" backup --stdin-name "$name" "${options[@]}" <"$fifo" &
    rewind_pid=$!
    exec {hold}>"$fifo"
    if "$@" >&"$hold"; then
        exec {hold}>&-
        wait "$rewind_pid" || status=$?
        [[ $status -eq 0 ]] || echo "rewind backup of $name failed (exit $status)" >&2
    else
        status=$?
        kill -TERM "$rewind_pid" 2>/dev/null || true
        exec {hold}>&-
        wait "$rewind_pid" 2>/dev/null || true
        echo "$1 failed (exit $status): no snapshot of $name was written" >&2
    fi
    rm -rf "$dir"
    return "$status"
}
