#!/usr/bin/env bash
# Nightly PostgreSQL backup into a rewind repository: every database dumped
# with pg_dump and streamed straight into `rewind backup --stdin-name` (no
# dump file on disk), plus the roles and tablespaces (pg_dumpall
# --globals-only). Plain SQL by default, so a dump comes back with psql
# reading it from the mount:
#
#   psql -d app_restored -f /mnt/backups/tags/postgres-app/@2024-06-01/db/postgres/app.sql
#
# Usage (as root, from cron or a systemd timer; see contrib/README.md):
#
#   REWIND_REPO=/srv/backup/repo REWIND_PASSWORD_FILE=/etc/rewind/password \
#       pg-nightly-backup.sh [DATABASE...]       # default: every database
#
# Each database is its own snapshot, at /db/postgres/DATABASE.sql tagged
# `postgres` and `postgres-DATABASE` (custom format: DATABASE.dump, tagged
# `postgres-DATABASE-custom`); the globals are /db/postgres/globals.sql,
# tagged `postgres-globals`. A tag per dump lets the mount show each one by
# day: tags/postgres-DATABASE/@DAY/db/postgres/DATABASE.sql. Unchanged rows deduplicate: a night adds roughly the
# changed part of each dump to the repository.
#
# Environment:
#   REWIND_REPO, REWIND_PASSWORD_FILE   the repository and its password (rewind(1))
#   REWIND=PATH         the rewind binary (default: rewind from PATH)
#   FORMAT=plain|custom|both            dump format (default plain; custom is
#                       what pg_restore -t/-n need, but compresses, so it
#                       deduplicates less: use FORMAT=both to have both)
#   PG_USER=postgres    when run as root, pg_dump runs as this user (peer
#                       authentication on the local socket); empty: as the caller
#   PGHOST, PGPORT, PGUSER, PGPASSFILE, ...   libpq settings, passed through
#   HOST=NAME           the snapshots' --host (default: this machine's name)
#
# Exit status 0 when every dump was stored; 1 when any failed (each failure
# is named on stderr, and a failed dump never becomes a snapshot).

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=contrib/stream-to-rewind.sh
source "$here/stream-to-rewind.sh"

FORMAT=${FORMAT:-plain}
PG_USER=${PG_USER-postgres}
HOST=${HOST:-$(hostname)}
case $FORMAT in plain | custom | both) ;; *) echo "FORMAT must be plain, custom or both" >&2; exit 2 ;; esac
: "${REWIND_REPO:?set REWIND_REPO to the repository}"

# A PostgreSQL client program, as PG_USER when we are root.
pg() {
    if [[ $(id -u) -eq 0 && -n $PG_USER ]]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

if [[ $# -gt 0 ]]; then
    databases=("$@")
else
    mapfile -t databases < <(pg psql -X -A -t -d postgres \
        -c "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
fi
[[ ${#databases[@]} -gt 0 ]] || { echo "no databases to back up" >&2; exit 1; }

failed=0
backup() { # NAME TAG -- COMMAND...
    local name=$1 tag=$2; shift 2
    if stream_to_rewind "$name" --host "$HOST" --tag postgres --tag "$tag" "$@" >/dev/null; then
        echo "stored $name" >&2
    else
        failed=1
    fi
}

backup db/postgres/globals.sql postgres-globals -- pg pg_dumpall --globals-only
for db in "${databases[@]}"; do
    if [[ $FORMAT == plain || $FORMAT == both ]]; then
        backup "db/postgres/$db.sql" "postgres-$db" -- pg pg_dump --format=plain "$db"
    fi
    if [[ $FORMAT == custom || $FORMAT == both ]]; then
        backup "db/postgres/$db.dump" "postgres-$db-custom" -- pg pg_dump --format=custom "$db"
    fi
done
exit "$failed"
