#!/usr/bin/env bash
# Redis backup into a rewind repository: a fresh RDB snapshot fetched from
# the server with `redis-cli --rdb` (the server forks and streams it; no
# BGSAVE file is touched), checked with redis-check-rdb when it is
# installed, then stored as /db/redis/dump.rdb, tagged `redis`.
#
# Usage (as root, from cron or a systemd timer; see contrib/README.md):
#
#   REWIND_REPO=/srv/backup/repo REWIND_PASSWORD_FILE=/etc/rewind/password \
#       redis-backup.sh
#
# To restore: stop Redis, copy the file back from the mount, start Redis:
#
#   systemctl stop redis-server
#   cp /mnt/backups/tags/redis/@2024-06-01/db/redis/dump.rdb /var/lib/redis/dump.rdb
#   chown redis:redis /var/lib/redis/dump.rdb && systemctl start redis-server
#
# The RDB is written to a private temporary directory first (it is about
# the size of the data set in memory, compressed): redis-cli cannot tell a
# reader that the transfer failed, and a check before storing is worth it.
#
# Environment:
#   REWIND_REPO, REWIND_PASSWORD_FILE   the repository and its password (rewind(1))
#   REWIND=PATH        the rewind binary (default: rewind from PATH)
#   REDIS_ARGS="..."   redis-cli connection arguments (default: none, i.e.
#                      127.0.0.1:6379); pass a password in REDISCLI_AUTH, not here
#   HOST=NAME          the snapshot's --host (default: this machine's name)
#   TMPDIR=DIR         where the RDB is written first (default /var/tmp)

set -euo pipefail
HOST=${HOST:-$(hostname)}
: "${REWIND_REPO:?set REWIND_REPO to the repository}"
read -r -a redis_args <<<"${REDIS_ARGS:-}"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/rewind-redis.XXXXXX")
trap 'rm -rf "$work"' EXIT
rdb=$work/dump.rdb
redis-cli "${redis_args[@]}" --rdb "$rdb" >&2
if command -v redis-check-rdb >/dev/null; then
    redis-check-rdb "$rdb" >&2 || { echo "the RDB from the server does not check: not stored" >&2; exit 1; }
fi
"${REWIND:-rewind}" backup --stdin-name db/redis/dump.rdb --host "$HOST" --tag redis <"$rdb" >/dev/null
echo "stored db/redis/dump.rdb ($(stat -c %s "$rdb") bytes)" >&2
