# shellcheck shell=bash
# Sourced by the benches of issue 16's tree of many small files
# (many-files.sh, mount-many-files.sh).

# many_small_files DIR FILES PER_DIR: DIR holds FILES files of ~40 bytes,
# PER_DIR to a directory (d00000, d00001, ...), each its own content. Made
# once: a marker DIR.made beside it says it is whole.
many_small_files() {
    local dir=$1 files=$2 per_dir=$3
    [[ -e $dir.made ]] && return 0
    rm -rf "$dir"
    python3 - "$dir" "$files" "$per_dir" <<'PY'
import os, sys
root, files, per_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for n in range(files):
    d = os.path.join(root, "d%05d" % (n // per_dir))
    if n % per_dir == 0:
        os.makedirs(d)
    with open(os.path.join(d, "f%d" % (n % per_dir)), "w") as f:
        f.write("file %d of %d, about forty bytes\n" % (n, files))
PY
    touch "$dir.made"
}
