//! The `rewind` command: argument parsing and output over the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Chunk-sized buffers come and go on many threads; above 512 KiB they
    // are mapped and returned at once instead of lingering in per-thread
    // malloc arenas, which would make the peak memory grow with the threads.
    // SAFETY: mallopt only tunes the allocator, before any allocation of note.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 512 * 1024) };
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rewind: {}", cli::describe(&err));
            ExitCode::from(1)
        }
    }
}
