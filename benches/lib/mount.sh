# shellcheck shell=bash
# Sourced by the benches that read backups through FUSE mounts (s3.sh):
# waiting for a mount to answer, and taking it down.

# Seconds since the epoch, to the nanosecond, and the difference of two.
now() { date +%s.%N; }
seconds_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

# poll_until SECONDS CMD...: runs CMD every 10 ms until it succeeds; fails
# after SECONDS. The polling step bounds what a time measured this way can
# add: 10 ms.
poll_until() {
    local deadline
    deadline=$(($(date +%s%N) + $1 * 1000000000))
    shift
    until "$@" >/dev/null 2>&1; do
        (($(date +%s%N) < deadline)) || return 1
        sleep 0.01
    done
}

is_unmounted() { ! mountpoint -q "$1"; }

# unmount MNT: unmounts (lazily if it is busy) and waits until it is gone.
unmount() {
    mountpoint -q "$1" || return 0
    umount "$1" 2>/dev/null || umount -l "$1"
    poll_until 30 is_unmounted "$1"
}

# peak_rss_kib PID: the peak resident memory of a running process
peak_rss_kib() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
