//! A payload (compression byte, then data) as every blob, trailer and
//! metadata file holds: the first four bytes give the decompression limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind::format::crypto;

fuzz_target!(|input: &[u8]| {
    let Some((limit, payload)) = input.split_first_chunk::<4>() else {
        return;
    };
    let limit = u32::from_le_bytes(*limit) as usize % (64 << 20);
    if let Ok(data) = crypto::decompress(payload, limit) {
        assert!(data.len() <= limit);
    }
});
