//! A whole pack file: its trailer is read, and every blob it lists opened.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind::format::pack;
use rewind::Id;
use rewind::format::{ChunkerParams, Keys};

fuzz_target!(|data: &[u8]| {
    // Unencrypted, so that the fuzzer reaches the trailer's structure.
    let keys = Keys::unencrypted(&Id([7; 32]));
    if let Ok((salt, blobs)) = pack::read_trailer(&keys, data) {
        for blob in &blobs {
            let start = blob.offset as usize;
            let stored = data[start..start + blob.stored_len as usize].to_vec();
            if let Ok(plain) = pack::open_blob(
                &keys,
                &salt,
                stored,
                blob.claim(),
                &ChunkerParams::default(),
            ) {
                assert_eq!(keys.blob_id(&plain), blob.id);
            }
        }
    }
});
