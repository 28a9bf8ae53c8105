# shellcheck shell=bash
# Sourced by the benches that put repositories in object storage (s3.sh): a
# real S3 server on loopback, s3s-fs serving a directory (a bucket is a
# subdirectory, an object a file in it), started the way the tests start it
# (tests/common/s3_server.rs). Needs common.sh (say, die).

S3S_FS=${S3S_FS:-/var/cache/rewind-test-tools/bin/s3s-fs}
S3_ACCESS_KEY=rewind-bench-key
S3_SECRET_KEY=rewind-bench-secret

# start_s3_server DIR: serves DIR/s3 on a loopback port the system picks;
# sets S3_ROOT, S3_PORT and S3_PID, and exports the credentials (and only
# those: not ~/.aws, not an endpoint meant for another store) that both
# rewind and restic read.
start_s3_server() {
    local log=$1/s3s-fs.log
    [[ -x $S3S_FS ]] || die "no s3s-fs at $S3S_FS: run scripts/install-deps.sh, or set S3S_FS"
    S3_ROOT=$1/s3
    mkdir -p "$S3_ROOT"
    RUST_LOG=s3s_fs=info NO_COLOR=1 "$S3S_FS" --host 127.0.0.1 --port 0 \
        --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$S3_ROOT" >"$log" 2>&1 </dev/null &
    S3_PID=$!
    S3_PORT=
    local _
    for _ in $(seq 1 300); do
        # it logs the address it listens on
        S3_PORT=$(sed -n 's|.*server is running at http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$log" | head -n 1)
        [[ -z $S3_PORT ]] || break
        kill -0 "$S3_PID" 2>/dev/null || die "s3s-fs exited: $(tail -n 3 "$log" | tr '\n' ' ')"
        sleep 0.1
    done
    [[ -n $S3_PORT ]] || die "s3s-fs did not start listening (see $log)"
    unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_DEFAULT_REGION
    export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_REGION=us-east-1
    export AWS_SHARED_CREDENTIALS_FILE=/nonexistent/credentials AWS_CONFIG_FILE=/nonexistent/config
    export NO_PROXY=127.0.0.1,localhost
}

stop_s3_server() {
    if [[ -n ${S3_PID:-} ]]; then
        kill "$S3_PID" 2>/dev/null || true
        wait "$S3_PID" 2>/dev/null || true
        S3_PID=
    fi
}

# s3_location BUCKET PREFIX: the repository location, in the spelling that
# rewind and restic share
s3_location() { echo "s3:http://127.0.0.1:$S3_PORT/$1/$2"; }

create_bucket() { mkdir -p "$S3_ROOT/$1"; }

# object_bytes BUCKET [PREFIX]: the bytes of the objects stored under PREFIX,
# which is what the clients sent (file sizes only: `du -sb` would add the
# server's directories, which differ with each tool's key layout)
object_bytes() {
    local dir=$S3_ROOT/$1/${2:-}
    [[ -d $dir ]] || { echo 0; return; }
    find "$dir" -type f -printf '%s\n' | awk '{ n += $1 } END { printf "%d\n", n }'
}

# empty_bucket BUCKET: removes every object of BUCKET behind the server's
# back, with the metadata s3s-fs keeps beside them in its root
# (.bucket-<base64url of the bucket>.object-<base64url of the key>.*.json)
empty_bucket() {
    local encoded
    encoded=$(printf %s "$1" | base64 -w0 | tr '+/' '-_' | tr -d '=')
    find "$S3_ROOT/$1" -mindepth 1 -delete
    find "$S3_ROOT" -maxdepth 1 -type f -name ".bucket-$encoded.object-*" -delete
}
