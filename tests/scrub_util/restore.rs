//! What a restore of a damaged repository must do: bring back every file
//! that is intact, and name and leave out every file that lost data.

use std::collections::BTreeSet;
use std::path::Path;

use super::fixture::Backup;
use super::rewind;
use crate::common::{under, Manifest, Repo};

/// Restores the snapshot of `backup` (selected by time) into `target`;
/// every file not in `lost` equals the source in content and metadata, and
/// no file in `lost` is there. Returns the restore's exit code.
#[track_caller]
pub fn restore_all_but(
    repo: &Repo,
    backup: &Backup,
    target: &Path,
    lost: &BTreeSet<String>,
) -> i32 {
    let run = rewind(
        repo,
        [
            "restore",
            &format!("@{}", backup.time),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    let restored_root = under(target, &backup.src);
    if lost.is_empty() {
        let run = run.assert_ok();
        backup.expected.assert_same(
            &Manifest::of(&restored_root),
            &format!("restore of {} ({})", backup.time, run.what),
        );
        return 0;
    }
    let run = run.assert_code(1);
    let actual = Manifest::of(&restored_root);
    let prefix = format!("{}/", backup.src.display());
    for (path, data) in &backup.files {
        let rel = path.strip_prefix(&prefix).unwrap();
        let got = restored_root.join(rel);
        if lost.contains(path) {
            assert!(
                !got.exists(),
                "{path} lost data but was restored anyway\n{}",
                run.stderr
            );
            assert!(
                run.stderr.contains(path.as_str()),
                "the restore names {path}:\n{}",
                run.stderr
            );
            continue;
        }
        let expected = &backup.expected.entries[rel.as_bytes()];
        let meta = actual.entries.get(rel.as_bytes()).unwrap_or_else(|| {
            panic!(
                "{path} is intact in the repository but was not restored\n{}",
                run.stderr
            )
        });
        assert_eq!(
            std::fs::read(&got).unwrap(),
            *data,
            "{path}: restored content differs"
        );
        assert_eq!(
            (meta.mode, meta.uid, meta.gid, meta.size, meta.mtime),
            (
                expected.mode,
                expected.uid,
                expected.gid,
                expected.size,
                expected.mtime
            ),
            "{path}: restored metadata differs"
        );
    }
    1
}
