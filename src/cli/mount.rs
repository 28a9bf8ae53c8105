use std::io::{BufRead, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rewind::{clear_stale_mount, FuseOptions, Mount, MountOptions, MountScrub, VfsOptions};

use super::{audit, Global};

#[derive(clap::Args)]
pub struct Args {
    /// An empty directory to mount the repository on
    mountpoint: PathBuf,
    /// Stay attached to the terminal (for systemd and debugging); logs go to stderr
    #[arg(long, short = 'f')]
    foreground: bool,
    /// Let other users in; the original modes still decide what they may read
    #[arg(long)]
    allow_other: bool,
    /// Forbid running programs from the mount (mount's noexec)
    #[arg(long)]
    noexec: bool,
    /// Memory for decoded chunks, e.g. 64M or 1G (default: 64M, less once
    /// the index passes 48 MiB, about 1.7 million blobs, so that the two
    /// stay within 112 MiB; at least 16M)
    #[arg(long, value_name = "SIZE", value_parser = super::size::parse_memory_size)]
    cache_size: Option<usize>,
    /// Inodes inside snapshots the daemon keeps at once (about 250 bytes
    /// each); past them the kernel is asked to forget the least recently
    /// used, whose names cost one more request if they are used again
    #[arg(long, value_name = "N", default_value_t = VfsOptions::default().max_inodes)]
    max_inodes: usize,
    /// Where the background daemon logs (default: /var/log/rewind-mount.log as root, else ~/.cache/rewind/mount.log)
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Milliseconds one FUSE thread keeps polling for the next request after
    /// a short one, instead of sleeping (0, or a single CPU: never poll).
    /// Polling spends a CPU while lookups, listings and small reads stream
    /// in, and saves a thread wake-up per request
    #[arg(long, value_name = "MILLISECONDS", default_value_t = 5)]
    busy_poll: u64,
    /// Seconds between looks for new snapshots
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    refresh: u64,
    /// Scrub the repository in the background at this many MiB/s (default 20),
    /// yielding to reads; progress and findings appear in .rewind/status
    #[arg(long, value_name = "MiB/s", num_args = 0..=1, default_missing_value = "20", require_equals = true)]
    scrub: Option<f64>,
    /// Seconds to wait after a background scrub pass before the next one
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    scrub_interval: u64,
    /// The source the mount tables show (mount.fuse.rewind: fstab's).
    #[arg(skip)]
    pub(super) source_name: Option<String>,
}

fn default_log_file() -> rewind::Result<PathBuf> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        Ok(PathBuf::from("/var/log/rewind-mount.log"))
    } else {
        let dir = rewind::cache_dir()?;
        rewind::create_private_dir(&dir)?;
        Ok(dir.join("mount.log"))
    }
}

/// Opens the log for appending. The default log is private and never opened
/// through a symbolic link (one planted there would make the daemon write
/// into another file); a log the user names is taken as named.
fn open_log(args: &Args) -> Result<(std::fs::File, PathBuf)> {
    use std::os::unix::fs::OpenOptionsExt;
    let (path, no_follow) = match &args.log_file {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = rewind::create_private_dir(dir);
            }
            (path.clone(), 0)
        }
        None => (default_log_file()?, libc::O_NOFOLLOW),
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(no_follow)
        .open(&path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    Ok((file, path))
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let mountpoint = &args.mountpoint;
    if clear_stale_mount(mountpoint)? {
        eprintln!(
            "rewind: cleared a stale mount at {} left by a daemon that died",
            mountpoint.display()
        );
    }
    let mountpoint = std::fs::canonicalize(mountpoint)
        .with_context(|| format!("cannot use {} as a mountpoint", mountpoint.display()))?;
    if !mountpoint.is_dir() {
        bail!("{} is not a directory", mountpoint.display());
    }
    // Everything that may prompt or fail on bad input happens before detaching.
    let repo = global.open()?;
    if args.foreground {
        let mut mounted = false;
        let outcome = serve(
            repo,
            &mountpoint,
            args,
            global.expansion_limits(),
            |result| {
                if let Ok(()) = result {
                    eprintln!(
                        "rewind: serving the repository at {}; stop with Ctrl-C or `umount {}`",
                        mountpoint.display(),
                        mountpoint.display()
                    );
                    audit::record(global, &Ok(ExitCode::SUCCESS));
                    global.trail().start("unmount");
                    mounted = true;
                }
            },
        );
        if mounted {
            audit::record(global, &outcome);
        }
        return outcome;
    }
    let (log, log_path) = open_log(args)?;

    let (read_end, write_end) = pipe()?;
    // SAFETY: no other threads run yet (opening the repository used none that
    // outlive it), so the child may go on using the whole runtime.
    match unsafe { libc::fork() } {
        -1 => bail!(
            "cannot start the mount daemon: {}",
            std::io::Error::last_os_error()
        ),
        0 => {
            drop(read_end);
            detach(log);
            let mut ready = std::fs::File::from(write_end);
            let mut mounted = false;
            let code = serve(
                repo,
                &mountpoint,
                args,
                global.expansion_limits(),
                |result| {
                    let message = match result {
                        Ok(()) => "ok\n".to_string(),
                        Err(e) => format!("{}\n", super::describe(e)),
                    };
                    let _ = ready.write_all(message.as_bytes());
                    // The parent records the mount; the daemon records the unmount.
                    if result.is_ok() {
                        global.trail().start("unmount");
                        mounted = true;
                    }
                },
            );
            if mounted {
                audit::record(global, &code);
            }
            let failed = code.is_err();
            if let Err(e) = code {
                rewind::log::error(&super::describe(&e));
            }
            std::process::exit(i32::from(failed));
        }
        _child => {
            drop(write_end);
            // One line: "ok", or why the mount failed. EOF means the daemon died.
            let mut answer = String::new();
            std::io::BufReader::new(std::fs::File::from(read_end)).read_line(&mut answer)?;
            match answer.lines().next() {
                Some("ok") => {
                    eprintln!(
                        "rewind: mounted at {} (logs: {}; stop with `umount {}`)",
                        mountpoint.display(),
                        log_path.display(),
                        mountpoint.display()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(error) => bail!("{error}"),
                None => bail!(
                    "the mount daemon ended before the mount was ready; see {}",
                    log_path.display()
                ),
            }
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("cannot create a pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Leaves the terminal's session; standard streams go to /dev/null and
/// messages to the log file.
fn detach(log: std::fs::File) {
    // SAFETY: setsid and dup2 on descriptors we own have no memory effects.
    unsafe {
        libc::setsid();
        if let Ok(null) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
        {
            use std::os::fd::AsRawFd;
            for fd in 0..3 {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
    let _ = std::env::set_current_dir("/");
    rewind::log::to_file(log);
}

/// What the arguments ask of the mount.
fn mount_options(args: &Args, limits: rewind::ExpansionLimits) -> MountOptions {
    let defaults = MountOptions::default();
    MountOptions {
        vfs: VfsOptions {
            cache_bytes: args.cache_size,
            max_inodes: args.max_inodes,
            limits,
            ..defaults.vfs
        },
        fuse: FuseOptions {
            allow_other: args.allow_other,
            no_exec: args.noexec,
            source_name: args.source_name.clone(),
            busy_poll: Duration::from_millis(args.busy_poll),
            ..defaults.fuse
        },
        refresh: Duration::from_secs(args.refresh),
        scrub: args.scrub.map(|rate| MountScrub {
            rate,
            interval: Duration::from_secs(args.scrub_interval),
            state_file: None,
        }),
    }
}

/// Mounts, reports readiness, and unmounts on SIGTERM, SIGINT or SIGHUP;
/// returns when the mount is gone.
fn serve(
    repo: rewind::Repository<rewind::Opened>,
    mountpoint: &Path,
    args: &Args,
    limits: rewind::ExpansionLimits,
    ready: impl FnOnce(&Result<()>),
) -> Result<ExitCode> {
    let options = mount_options(args, limits);
    // Block the stop signals in every thread the mount starts; this one
    // waits for them.
    let signals = stop_signals();
    // SAFETY: signals is an initialised set.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &signals, std::ptr::null_mut()) };
    let started = Mount::start(repo, mountpoint, &options, || {
        // SAFETY: kill to our own pid wakes the signal wait below.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
    });
    let mount = match started {
        Ok(mount) => {
            ready(&Ok(()));
            mount
        }
        Err(e) => {
            let result = Err(e.into());
            ready(&result);
            return result.map(|()| ExitCode::FAILURE);
        }
    };
    let mut signal = 0;
    // SAFETY: sigwait with an initialised set and a valid out pointer.
    unsafe { libc::sigwait(&signals, &mut signal) };
    if signal == libc::SIGUSR1 {
        rewind::log::info(&format!("{} was unmounted; exiting", mountpoint.display()));
        mount.wait()?;
    } else {
        rewind::log::info(&format!(
            "signal {signal}: unmounting {}",
            mountpoint.display()
        ));
        mount.unmount()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn stop_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset uses it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}
