//! A snapshot manifest's content (JSON), as `Repository::read_snapshot` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind::Snapshot;

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = serde_json::from_slice::<Snapshot>(data) {
        let _ = (snapshot.time_label(), snapshot.same_paths(&snapshot.paths));
        let mut all = vec![snapshot];
        rewind::format::sort_by_time(&mut all);
    }
});
