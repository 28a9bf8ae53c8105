//! A key file. Only key files with cheap key derivation parameters are
//! unwrapped: the format allows 4 GiB of Argon2 memory, which is no bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind::format::KeyFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = KeyFile::from_bytes(data) {
        let _ = key.to_bytes();
        let text = String::from_utf8_lossy(data);
        if text.contains("\"memory_kib\":8,") && text.contains("\"iterations\":1,") {
            let _ = key.unwrap_master(b"password");
        }
    }
});
