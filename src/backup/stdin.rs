//! Backing up a stream (standard input, or any reader) as one file: its
//! chunks go to the packers, and the file is given a path of directories
//! made up for it, owned by the user who runs the backup, dated at the
//! snapshot's time.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

use chrono::{DateTime, Utc};
use crossbeam_channel::Sender;

use super::archiver::Archiver;
use super::packer::NewBlob;
use crate::error::{Error, Result};
use crate::repo::Id;
use crate::tree::{Node, NodeKind, Timestamp, Tree};

/// Stores `reader` as the file at `path` (absolute, in the snapshot) and
/// returns the root tree.
pub(super) fn back_up_stream(
    archiver: &Archiver,
    path: &Path,
    reader: Box<dyn Read + Send>,
    time: DateTime<Utc>,
) -> Result<Id> {
    let (blob_tx, packers) = archiver.start_packers();
    let stored = store_stream(archiver, path, reader, time, &blob_tx);
    drop(blob_tx);
    archiver.finish(packers, stored)
}

fn store_stream(
    archiver: &Archiver,
    path: &Path,
    reader: Box<dyn Read + Send>,
    time: DateTime<Utc>,
    blob_tx: &Sender<NewBlob>,
) -> Result<Id> {
    let mut extents = Vec::new();
    let tally = archiver.file_tally(true);
    let size = archiver
        .store_chunks(reader, None, &mut extents, blob_tx, tally.as_ref())
        .map_err(|e| e.context(format!("reading the stream stored as {}", path.display())))?;
    if let Some(tally) = &tally {
        tally.read_whole();
    }
    archiver.counters.files_new.fetch_add(1, Relaxed);
    archiver.progress.add(1, 0);
    archiver.counters.bytes_total.fetch_add(size, Relaxed);
    let names: Vec<&OsStr> = path.iter().skip(1).collect();
    let stamp = Timestamp {
        sec: time.timestamp(),
        nsec: time.timestamp_subsec_nanos(),
    };
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let synthetic = |name: &OsStr, kind: NodeKind, mode: u32| Node {
        name: name.as_bytes().to_vec(),
        kind,
        mode,
        uid,
        gid,
        user: archiver.owners.user(uid),
        group: archiver.owners.group(gid),
        mtime: stamp,
        atime: stamp,
        ctime: stamp,
        size: 0,
        device: 0,
        inode: 0,
        links: 1,
        rdev: 0,
        link_target: vec![],
        xattrs: vec![],
        content: vec![],
        subtree: None,
    };
    let (file_name, dirs) = names
        .split_last()
        .ok_or_else(|| Error::usage("--stdin-name needs a file name"))?;
    let mut node = synthetic(file_name, NodeKind::File, 0o600);
    node.content = extents;
    node.size = size;
    let mut tree_id = archiver.store_tree(&Tree::whole(vec![node]))?;
    for dir in dirs.iter().rev() {
        let mut node = synthetic(dir, NodeKind::Dir, 0o700);
        node.subtree = Some(tree_id);
        tree_id = archiver.store_tree(&Tree::whole(vec![node]))?;
    }
    Ok(tree_id)
}
