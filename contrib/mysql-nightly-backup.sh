#!/usr/bin/env bash
# Nightly MySQL / MariaDB backup into a rewind repository: every database
# dumped with mysqldump (or mariadb-dump) in one consistent transaction and
# streamed straight into `rewind backup --stdin-name`. A dump comes back
# with the mysql client reading it from the mount:
#
#   mysql app < /mnt/backups/tags/mysql-app/@2024-06-01/db/mysql/app.sql
#
# Usage (as root, from cron or a systemd timer; see contrib/README.md):
#
#   REWIND_REPO=/srv/backup/repo REWIND_PASSWORD_FILE=/etc/rewind/password \
#       mysql-nightly-backup.sh [DATABASE...]     # default: every database
#
# Each database is its own snapshot at /db/mysql/DATABASE.sql, tagged
# `mysql` and `mysql-DATABASE`. --single-transaction gives a consistent
# dump of InnoDB tables without locking them; MyISAM tables are not
# consistent that way (see mysqldump(1)).
#
# Environment:
#   REWIND_REPO, REWIND_PASSWORD_FILE   the repository and its password (rewind(1))
#   REWIND=PATH        the rewind binary (default: rewind from PATH)
#   MYSQL_DEFAULTS=FILE  a client option file with the credentials (default:
#                      the client's own, e.g. /root/.my.cnf or the unix socket
#                      authentication of root on Debian)
#   HOST=NAME          the snapshots' --host (default: this machine's name)
#
# Exit status 0 when every dump was stored; 1 when any failed (a failed dump
# never becomes a snapshot).

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=contrib/stream-to-rewind.sh
source "$here/stream-to-rewind.sh"

HOST=${HOST:-$(hostname)}
: "${REWIND_REPO:?set REWIND_REPO to the repository}"
dump=$(command -v mariadb-dump || command -v mysqldump) || { echo "neither mariadb-dump nor mysqldump is installed" >&2; exit 1; }
client=$(command -v mariadb || command -v mysql) || { echo "neither mariadb nor mysql is installed" >&2; exit 1; }
defaults=()
[[ -z ${MYSQL_DEFAULTS:-} ]] || defaults=("--defaults-extra-file=$MYSQL_DEFAULTS")

if [[ $# -gt 0 ]]; then
    databases=("$@")
else
    mapfile -t databases < <("$client" "${defaults[@]}" -N -B -e 'SHOW DATABASES' |
        grep -Ev '^(information_schema|performance_schema|sys)$')
fi
[[ ${#databases[@]} -gt 0 ]] || { echo "no databases to back up" >&2; exit 1; }

failed=0
for db in "${databases[@]}"; do
    if stream_to_rewind "db/mysql/$db.sql" --host "$HOST" --tag mysql --tag "mysql-$db" -- \
        "$dump" "${defaults[@]}" --single-transaction --quick --routines --events --triggers \
        --hex-blob --databases "$db" >/dev/null; then
        echo "stored db/mysql/$db.sql" >&2
    else
        failed=1
    fi
done
exit "$failed"
