//! The `rewind` command: argument parsing and output over the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Chunk-sized buffers come and go on many threads; with an arena per
    // thread, freed buffers linger in each and the peak memory grows with the
    // thread count. Two arenas keep it flat (measured on the benchmark
    // corpus: backup peak 110 MiB instead of 202, and faster than mapping
    // every large buffer).
    // Pack-sized buffers (16 MiB and more) are mapped and unmapped whole.
    // Left to itself glibc raises its mapping threshold to the size of the
    // first such buffer freed, and from then on every pack buffer comes
    // from an arena and stays resident once freed: a backup of 200,000
    // small files peaked at 74 MB instead of 42 (docs/design.md, section 6).
    // SAFETY: mallopt only tunes the allocator, before any allocation of note.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
    }
    quiet_when_the_reader_goes();
    // mount(8) runs the binary as /sbin/mount.fuse.rewind for fstab lines.
    if cli::mount_helper::invoked() {
        return cli::mount_helper::main();
    }
    match cli::run() {
        Ok(code) => code,
        // The reader of standard output went away (`rewind ls | head`).
        Err(err) if reader_went_away(&err) => ExitCode::from(141),
        Err(err) => {
            eprintln!("rewind: {}", cli::describe(&err));
            ExitCode::from(1)
        }
    }
}

/// `rewind log | head`: when the reader of standard output goes away,
/// `println!` panics on the broken pipe. That is not a bug to report with
/// a backtrace but the end of the output: exit quietly, as a program killed
/// by SIGPIPE would (128 + 13). SIGPIPE itself stays ignored: a write to a
/// pipe or socket other than standard output still fails as an error.
fn quiet_when_the_reader_goes() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info);
    }));
}

fn reader_went_away(err: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()) == broken
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                == broken
    })
}
