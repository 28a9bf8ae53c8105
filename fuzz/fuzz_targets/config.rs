//! The repository's `config` file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind::format::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = Config::from_bytes(data, "fuzz") {
        config
            .chunker
            .validate()
            .expect("an opened config has valid chunker bounds");
        let _ = config.to_bytes();
    }
});
