//! The index's whole ids, which memory does not keep, read back from the
//! index files and from damaged packs.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::super::{BlobKind, Encryption, Id, PackSaver, PackedBlob, Repository};
use crate::backend::{Backend, FileType, LocalBackend};

/// A repository of three packs of 40 data blobs each, two of them in one
/// index file and the third in another; each pack with its blobs.
fn three_packs(backend: &Arc<dyn Backend>) -> (Repository, BTreeMap<Id, Vec<PackedBlob>>) {
    let repo = Repository::init(backend.clone(), Encryption::None, None).unwrap();
    let mut packs = BTreeMap::new();
    for files in [&[0, 1][..], &[2]] {
        let saver = PackSaver::new(repo.clone());
        for &p in files {
            let mut writer = saver.new_pack().unwrap();
            for i in 0..40 {
                let data = format!("blob {i} of pack {p}").repeat(20);
                let id = repo.blob_id(data.as_bytes());
                writer.add(BlobKind::Data, id, data.as_bytes(), 3).unwrap();
            }
            let pack = writer.finish().unwrap();
            packs.insert(pack.id, pack.blobs.clone());
            saver.save(pack).unwrap();
        }
        saver.finish().unwrap();
    }
    (repo, packs)
}

fn reopened(backend: &Arc<dyn Backend>) -> Repository {
    let opened = Repository::open(backend.clone(), || Ok(Vec::new())).unwrap();
    opened.load_index().unwrap().0
}

fn scratch() -> (tempfile::TempDir, Arc<dyn Backend>) {
    let tmp = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(tmp.path().join("repo")));
    (tmp, backend)
}

#[test]
fn index_records_come_back_whole_from_the_index_files() {
    let (_tmp, backend) = scratch();
    let (written, packs) = three_packs(&backend);
    for repo in [written, reopened(&backend)] {
        let records: BTreeMap<Id, Vec<PackedBlob>> = repo
            .indexed_records(|_| true)
            .unwrap()
            .into_iter()
            .map(|pack| (pack.id, pack.blobs))
            .collect();
        assert_eq!(records, packs);
        let second = *packs.keys().nth(1).unwrap();
        let only_second = repo.indexed_records(|pack| pack.id == second).unwrap();
        assert_eq!(only_second.len(), 1);
        assert_eq!(only_second[0].blobs, packs[&second]);
    }
}

#[test]
fn index_records_refuse_when_an_index_file_is_gone() {
    let (_tmp, backend) = scratch();
    three_packs(&backend);
    let repo = reopened(&backend);
    let mut names = backend.list(FileType::Index).unwrap();
    names.sort();
    backend.remove(FileType::Index, &names[0]).unwrap();
    let err = repo.indexed_records(|_| true).unwrap_err();
    assert!(err.to_string().contains("of the 120 blobs"), "{err}");
}

#[test]
fn failing_blobs_of_a_truncated_pack_are_named_by_whole_id() {
    let (_tmp, backend) = scratch();
    let (_, packs) = three_packs(&backend);
    let repo = reopened(&backend);
    let (&pack, blobs) = packs.iter().next().unwrap();
    let bytes = repo.backend().read(FileType::Pack, &pack.to_hex()).unwrap();
    let mut blobs = blobs.clone();
    blobs.sort_by_key(|blob| blob.offset);
    // Cut in the middle of the 31st blob: it and the rest fail, and the
    // trailer that names them is gone with them.
    let cut = (blobs[30].offset + blobs[30].stored_len / 2) as usize;
    let mut failing = repo.failing_blobs(&pack, &bytes[..cut]).unwrap();
    failing.sort();
    let mut expected: Vec<Id> = blobs[30..].iter().map(|blob| blob.id).collect();
    expected.sort();
    assert_eq!(failing, expected);

    // One flipped byte: the trailer still names the blob.
    let mut flipped = bytes.clone();
    flipped[(blobs[3].offset + 5) as usize] ^= 1;
    assert_eq!(
        repo.failing_blobs(&pack, &flipped).unwrap(),
        vec![blobs[3].id]
    );
    assert!(repo.failing_blobs(&pack, &bytes).unwrap().is_empty());
    assert!(repo.failing_blobs(&pack, &bytes[..40]).is_none());
}
