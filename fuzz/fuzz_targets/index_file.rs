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
        // Built at once, as a load does, and blob by blob, as a backup adds.
        let loaded = Index::from_packs(file.packs.iter());
        let mut added = Index::new();
        added.add_file(&file);
        added.compact();
        for index in [&loaded, &added] {
            for pack in &file.packs {
                for blob in &pack.blobs {
                    let location = index.get(&blob.id).expect("an added blob is found");
                    let _ = index.pack(location.pack());
                }
            }
        }
    }
});
