//! The `rewind` command: argument parsing and output over the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Chunk-sized buffers come and go on many threads; with an arena per
    // thread, freed buffers linger in each and the peak memory grows with the
    // thread count. Two arenas keep it flat (measured on the benchmark
    // corpus: backup peak 110 MiB instead of 202, and faster than mapping
    // every large buffer).
    // SAFETY: mallopt only tunes the allocator, before any allocation of note.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    // mount(8) runs the binary as /sbin/mount.fuse.rewind for fstab lines.
    if cli::mount_helper::invoked() {
        return cli::mount_helper::main();
    }
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rewind: {}", cli::describe(&err));
            ExitCode::from(1)
        }
    }
}
