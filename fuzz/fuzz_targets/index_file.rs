//! An index file's content (version byte, then postcard), loaded into an
//! in-memory index as `Repository::read_index_file` and `load_index` do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind::format::index::INDEX_VERSION;
use rewind::format::{Index, IndexFile};

fuzz_target!(|data: &[u8]| {
    let Some((&INDEX_VERSION, rest)) = data.split_first() else {
        return;
    };
    if let Ok(file) = postcard::from_bytes::<IndexFile>(rest) {
        let mut index = Index::new();
        index.add_file(&file);
        index.compact();
        for pack in &file.packs {
            for blob in &pack.blobs {
                let location = index.get(&blob.id).expect("an added blob is found");
                let _ = index.pack(location.pack());
            }
        }
    }
});
