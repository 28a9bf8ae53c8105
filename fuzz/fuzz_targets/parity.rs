//! A file and its parity file: the first two bytes (u16 LE) give the
//! file's length, the rest of the input after it is the parity file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind::format::parity;

fuzz_target!(|input: &[u8]| {
    let Some((len, rest)) = input.split_first_chunk::<2>() else {
        return;
    };
    let (data, parity_file) = rest.split_at((u16::from_le_bytes(*len) as usize).min(rest.len()));
    let sound = parity::is_sound(data, parity_file);
    match parity::repair(data, parity_file) {
        Ok(parity::Outcome::Repaired { data: repaired, .. }) => {
            assert!(parity::is_sound(&repaired, parity_file) || !sound);
        }
        Ok(parity::Outcome::Intact) | Err(_) => {}
    }
});
