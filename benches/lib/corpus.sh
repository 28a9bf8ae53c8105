# shellcheck shell=bash
# Sourced by the benches that back up the corpus of issue 2 (compare.sh,
# prune.sh); needs common.sh (say, die), python3, and two variables:
#   CORPUS       the corpus directory
#   CORPUS_UNDO  where mutate_corpus keeps what it overwrites, until
#                revert_corpus puts it back (a directory outside CORPUS)
#
# The corpus (about 1.9 GiB, 61,000 entries):
#   small/      copies of /usr/include and /usr/share (headers, docs, locales)
#   random.bin  256 MiB of random bytes
#   app.log     ~192 MiB of log lines
#   disk.img    a 512 MiB sparse image with 64 MiB of data in 16 regions
#   dump.sql    a ~290 MB plain pg_dump of `pgbench -i -s 30` (generated, no PostgreSQL)

make_log() { # make_log FILE BYTES SEED: web/database-like log lines
    python3 - "$1" "$2" "$3" <<'EOF'
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
levels = ["INFO"] * 6 + ["DEBUG"] * 3 + ["WARN", "ERROR"]
paths = ["/api/v1/users", "/api/v1/orders", "/api/v1/orders/{}", "/static/app.{}.js",
         "/login", "/api/v2/search?q=item{}", "/healthz", "/metrics"]
agents = ["curl/7.88.1", "Mozilla/5.0 (X11; Linux x86_64)", "python-requests/2.28", "Go-http-client/1.1"]
t = 1717200000 + seed % 1000
written = 0
with open(path, "ab") as f:
    while written < size:
        lines = []
        for _ in range(5000):
            t += rng.random() * 0.05
            s = int(t)
            p = rng.choice(paths).format(rng.randrange(10000))
            lines.append("2024-06-%02dT%02d:%02d:%02d.%03dZ %s [worker-%d] %s %s %d %d %dms ip=10.%d.%d.%d ua=\"%s\" req=%016x\n" % (
                1 + (s // 86400) % 28, (s // 3600) % 24, (s // 60) % 60, s % 60, int(t * 1000) % 1000,
                rng.choice(levels), rng.randrange(16), rng.choice(("GET", "GET", "POST", "PUT")), p,
                rng.choice((200, 200, 200, 201, 304, 404, 500)), rng.randrange(100000),
                rng.randrange(2000), rng.randrange(256), rng.randrange(256), rng.randrange(256),
                rng.choice(agents), rng.getrandbits(64)))
        block = "".join(lines).encode()
        block = block[: size - written]
        f.write(block)
        written += len(block)
EOF
}

make_dump() { # make_dump FILE: what `pg_dump` writes after `pgbench -i -s 30`
    python3 - "$1" <<'EOF'
import sys
scale = 30
out = open(sys.argv[1], "w")
out.write("""--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

CREATE TABLE public.pgbench_accounts (
    aid integer NOT NULL,
    bid integer,
    abalance integer,
    filler character(84)
)
WITH (fillfactor='100');

CREATE TABLE public.pgbench_branches (
    bid integer NOT NULL,
    bbalance integer,
    filler character(88)
)
WITH (fillfactor='100');

CREATE TABLE public.pgbench_history (
    tid integer,
    bid integer,
    aid integer,
    delta integer,
    mtime timestamp without time zone,
    filler character(22)
);

CREATE TABLE public.pgbench_tellers (
    tid integer NOT NULL,
    bid integer,
    tbalance integer,
    filler character(84)
)
WITH (fillfactor='100');

--
-- Data for Name: pgbench_accounts; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.pgbench_accounts (aid, bid, abalance, filler) FROM stdin;
""")
filler = " " * 84
rows = 100000 * scale
batch = []
for aid in range(1, rows + 1):
    batch.append("%d\t%d\t0\t%s\n" % (aid, (aid - 1) // 100000 + 1, filler))
    if len(batch) == 20000:
        out.write("".join(batch))
        batch = []
out.write("".join(batch))
out.write("\\.\n\n\n--\n-- Data for Name: pgbench_branches; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n")
out.write("COPY public.pgbench_branches (bid, bbalance, filler) FROM stdin;\n")
for bid in range(1, scale + 1):
    out.write("%d\t0\t\\N\n" % bid)
out.write("\\.\n\n\n--\n-- Data for Name: pgbench_history; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n")
out.write("COPY public.pgbench_history (tid, bid, aid, delta, mtime, filler) FROM stdin;\n\\.\n\n\n")
out.write("--\n-- Data for Name: pgbench_tellers; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n")
out.write("COPY public.pgbench_tellers (tid, bid, tbalance, filler) FROM stdin;\n")
for tid in range(1, scale * 10 + 1):
    out.write("%d\t%d\t0\t\\N\n" % (tid, (tid - 1) // 10 + 1))
out.write("\\.\n\n\n")
for t, k in (("accounts", "aid"), ("branches", "bid"), ("tellers", "tid")):
    out.write("ALTER TABLE ONLY public.pgbench_%s\n    ADD CONSTRAINT pgbench_%s_pkey PRIMARY KEY (%s);\n\n" % (t, t, k))
out.write("--\n-- PostgreSQL database dump complete\n--\n\n")
EOF
}

make_corpus() {
    if [[ -f $CORPUS/.rewind-bench-corpus ]]; then
        say "using the corpus in $CORPUS"
        return
    fi
    [[ -z $(ls -A "$CORPUS") ]] || die "$CORPUS is neither empty nor a corpus made by this script"
    say "generating the corpus in $CORPUS"
    mkdir -p "$CORPUS/small"
    cp -a /usr/include /usr/share "$CORPUS/small/"
    head -c $((256 << 20)) /dev/urandom >"$CORPUS/random.bin"
    make_log "$CORPUS/app.log" $((192 << 20)) 1
    truncate -s 512M "$CORPUS/disk.img"
    local i
    for i in $(seq 0 15); do
        # 16 regions of 4 MiB, every 32 MiB: alternately random and text-like
        if ((i % 2)); then
            head -c $((4 << 20)) /dev/urandom
        else
            dd if="$CORPUS/app.log" bs=1M skip=$((i * 4)) count=4 status=none | tr 'a-m' 'n-z'
        fi | dd of="$CORPUS/disk.img" bs=1M seek=$((i * 32)) conv=notrunc status=none
    done
    make_dump "$CORPUS/dump.sql"
    touch "$CORPUS/.rewind-bench-corpus"
    sync
}

# mutate_corpus N: the ~2% change number N (1, 2, ...; each picks other files
# and another region): every 50th small file gets a line appended, 8 MiB of
# new log lines are appended, 4 MiB of random.bin are rewritten. Change 1 is
# the one compare.sh makes. What it overwrites goes to CORPUS_UNDO first.
mutate_corpus() {
    local n=$1 undo random_mib offset
    say "changing ~2% of the corpus (change $n)"
    mkdir -p "$CORPUS_UNDO"
    # one undo entry per change, numbered so that revert_corpus undoes the last first
    undo=$CORPUS_UNDO/$(printf '%04d' "$(find "$CORPUS_UNDO" -mindepth 1 -maxdepth 1 -printf . | wc -c)")
    mkdir "$undo"
    (cd "$CORPUS" && find small -type f -size +0 -print0 | sort -z | sed -z -n "$(((n - 1) % 50 + 50))~50p") >"$undo/small-files"
    # whole or not at all: a half-written archive would truncate a file on revert
    (cd "$CORPUS" && tar -cf "$undo/small.tar.part" --null -T "$undo/small-files")
    mv "$undo/small.tar.part" "$undo/small.tar"
    # shellcheck disable=SC2016 # $line and $f expand in the inner shell
    (cd "$CORPUS" && xargs -0 -a "$undo/small-files" -n 200 sh -c 'line=$1; shift; for f in "$@"; do echo "$line" >>"$f"; done' sh "# changed by ${0##*/}")
    stat -c %s "$CORPUS/app.log" >"$undo/app.log.size"
    make_log "$CORPUS/app.log" $((8 << 20)) $((n + 1))
    random_mib=$(($(stat -c %s "$CORPUS/random.bin") >> 20))
    ((random_mib >= 4)) || die "$CORPUS/random.bin is smaller than 4 MiB"
    offset=$(((100 + 4 * (n - 1)) % (random_mib - 3)))
    echo "$offset" >"$undo/random.offset"
    dd if="$CORPUS/random.bin" of="$undo/random.region" bs=1M skip="$offset" count=4 status=none
    head -c $((4 << 20)) /dev/urandom | dd of="$CORPUS/random.bin" bs=1M seek="$offset" conv=notrunc status=none
    sync
}

# Undoes every change mutate_corpus made, the last first, so that the corpus
# is byte for byte what it was (for RUNS>1 and for a kept CORPUS). Each part
# of an undo entry is written before what it saves is changed, so an entry
# left by an interrupted change undoes just what that change did.
revert_corpus() {
    [[ -n ${CORPUS_UNDO:-} && -d $CORPUS_UNDO ]] || return 0
    local undos=() undo
    mapfile -t undos < <(find "$CORPUS_UNDO" -mindepth 1 -maxdepth 1 -type d | sort -r)
    ((${#undos[@]})) || return 0
    say "putting the corpus back as it was"
    for undo in "${undos[@]}"; do
        if [[ -f $undo/small.tar ]]; then
            (cd "$CORPUS" && tar -xf "$undo/small.tar")
        fi
        if [[ -s $undo/app.log.size ]]; then
            truncate -s "$(cat "$undo/app.log.size")" "$CORPUS/app.log"
        fi
        if [[ -f $undo/random.region ]]; then
            dd if="$undo/random.region" of="$CORPUS/random.bin" bs=1M seek="$(cat "$undo/random.offset")" conv=notrunc status=none
        fi
        rm -rf "$undo"
    done
    sync
}

# On exit: puts the corpus back, and unless KEEP=1 removes WORK, the corpus
# if the bench made it (OWN_CORPUS=1) and BENCH_DIR if empty.
clean_up_bench() {
    local status=$?
    revert_corpus || true
    if ((KEEP)); then
        say "kept $BENCH_DIR"
    else
        rm -rf "$WORK"
        if ((${OWN_CORPUS:-0})); then
            rm -rf "$CORPUS"
        fi
        rmdir "$BENCH_DIR" 2>/dev/null || true
    fi
    exit "$status"
}
