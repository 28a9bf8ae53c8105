//! Command-line definitions (one file per subcommand) and what they share:
//! opening the repository, reading the password, selecting snapshots.

mod backup;
mod cat;
mod check;
mod diff;
mod drill;
mod forget;
mod init;
mod interrupt;
mod locks;
mod ls;
mod mount;
mod prune;
mod restore;
mod scrub;
mod size;
mod snapshots;
mod status;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use rewind::{open_location, Backend};
use rewind::{split_selector, Filter};
use rewind::{ExpansionBudget, ExpansionLimits};
use rewind::{LockKind, Opened, Repository, RepositoryLock, Snapshot};

#[derive(Parser)]
#[command(name = "rewind", version, about = "Deduplicated, compressed, encrypted backups that mount read-only", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
pub struct Global {
    /// Repository location: a directory, s3://BUCKET/PREFIX or
    /// s3:http(s)://HOST[:PORT]/BUCKET/PREFIX
    #[arg(
        long,
        short = 'r',
        env = "REWIND_REPO",
        global = true,
        value_name = "LOCATION"
    )]
    repo: Option<String>,
    /// Read the password from this file (else REWIND_PASSWORD, else a prompt)
    #[arg(long, global = true, value_name = "FILE", env = "REWIND_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// Refuse a snapshot that expands to more entries than this (ls, diff,
    /// mount, restore): crafted trees can name one directory over and over
    #[arg(long, global = true, value_name = "N", env = "REWIND_MAX_ENTRIES",
          default_value_t = ExpansionLimits::DEFAULT.entries)]
    max_entries: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new repository
    Init(init::Args),
    /// Back up files and directories, or standard input
    Backup(backup::Args),
    /// List snapshots
    Snapshots(snapshots::Args),
    /// List the entries of a snapshot
    Ls(ls::Args),
    /// Write one file of a snapshot to standard output
    Cat(cat::Args),
    /// Restore a snapshot, or a path in it, into a directory
    Restore(restore::Args),
    /// Compare two snapshots, or a snapshot and a directory: added, removed, changed
    Diff(diff::Args),
    /// Restore drill: restore into scratch space, verify every file, report time and age
    RestoreTest(drill::Args),
    /// Mount every snapshot read-only through FUSE
    Mount(mount::Args),
    /// Verify the repository's structure and, optionally, its data
    Check(check::Args),
    /// Read every pack, find damage, repair it from parity
    Scrub(scrub::Args),
    /// Recovery point per host and scrub health, for people and monitoring
    Status(status::Args),
    /// Forget snapshots: named ones, or every one a retention policy does not keep
    Forget(Box<forget::Args>),
    /// Delete the data no snapshot uses: unused packs go, mostly unused
    /// ones are repacked
    Prune(prune::Args),
    /// List the repository's locks: who is writing to it, since when, and
    /// which locks are stale
    Locks(locks::ListArgs),
    /// Remove stale locks (--stale), or every lock
    Unlock(locks::UnlockArgs),
}

pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Init(args) => init::run(&cli.global, args),
        Command::Backup(args) => backup::run(&cli.global, args),
        Command::Snapshots(args) => snapshots::run(&cli.global, args),
        Command::Ls(args) => ls::run(&cli.global, args),
        Command::Cat(args) => cat::run(&cli.global, args),
        Command::Restore(args) => restore::run(&cli.global, args),
        Command::Diff(args) => diff::run(&cli.global, args),
        Command::RestoreTest(args) => drill::run(&cli.global, args),
        Command::Mount(args) => mount::run(&cli.global, args),
        Command::Check(args) => check::run(&cli.global, args),
        Command::Scrub(args) => scrub::run(&cli.global, args),
        Command::Status(args) => status::run(&cli.global, args),
        Command::Forget(args) => forget::run(&cli.global, args),
        Command::Prune(args) => prune::run(&cli.global, args),
        Command::Locks(args) => locks::list(&cli.global, args),
        Command::Unlock(args) => locks::unlock(&cli.global, args),
    }
}

/// One line: what happened, and what to do about it when we know.
pub fn describe(err: &anyhow::Error) -> String {
    // rewind::Error prints its source itself: a cause whose text already
    // ends the line is not repeated (`{err:#}` would print it twice).
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !line.ends_with(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    if let Some(hint) = err
        .chain()
        .find_map(|e| e.downcast_ref::<rewind::Error>())
        .and_then(|e| e.hint())
    {
        line.push_str(&format!(" (hint: {hint})"));
    }
    line.replace('\n', " ")
}

impl Global {
    fn backend(&self) -> Result<Arc<dyn Backend>> {
        let location = self
            .repo
            .as_deref()
            .context("no repository given: use --repo LOCATION or set REWIND_REPO")?;
        Ok(open_location(location)?)
    }

    /// The password from --password-file, REWIND_PASSWORD, or a prompt.
    fn password(&self, confirm: bool) -> rewind::Result<Vec<u8>> {
        if let Some(file) = &self.password_file {
            let mut bytes = std::fs::read(file).map_err(|e| {
                rewind::Error::io(
                    format!("cannot read the password file {}", file.display()),
                    e,
                )
            })?;
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            return Ok(bytes);
        }
        if let Ok(p) = std::env::var("REWIND_PASSWORD") {
            return Ok(p.into_bytes());
        }
        if !std::io::stderr().is_terminal() {
            return Err(rewind::Error::usage(
                "no password: set REWIND_PASSWORD, use --password-file, or run on a terminal",
            ));
        }
        let first = rpassword::prompt_password("repository password: ")
            .map_err(|e| rewind::Error::io("cannot read the password", e))?;
        if confirm {
            let again = rpassword::prompt_password("repeat the password: ")
                .map_err(|e| rewind::Error::io("cannot read the password", e))?;
            if again != first {
                return Err(rewind::Error::usage("the passwords differ"));
            }
        }
        Ok(first.into_bytes())
    }

    /// Opens the repository without its index (enough for snapshots,
    /// status and check, which loads it itself).
    pub fn open(&self) -> Result<Repository<Opened>> {
        Ok(Repository::open(self.backend()?, || self.password(false))?)
    }

    pub fn expansion_limits(&self) -> ExpansionLimits {
        ExpansionLimits {
            entries: self.max_entries,
            ..ExpansionLimits::DEFAULT
        }
    }

    /// What listing `snapshot` may expand to.
    pub fn expansion_budget(&self, snapshot: &Snapshot) -> ExpansionBudget {
        ExpansionBudget::new(snapshot.id.short(), self.expansion_limits())
    }

    /// Opens the repository with its index loaded, warning about damaged index files.
    pub fn open_with_index(&self) -> Result<Arc<Repository>> {
        load_index(self.open()?)
    }

    /// Opens the repository and takes a lock on it for `command`; the lock
    /// is held until the returned guard is dropped.
    pub fn open_locked(
        &self,
        kind: LockKind,
        command: &str,
    ) -> Result<(Repository<Opened>, RepositoryLock)> {
        let repo = self.open()?;
        let lock = repo.lock(kind, command)?;
        Ok((repo, lock))
    }
}

/// Loads the index of an open repository, warning about damaged index files.
pub fn load_index(repo: Repository<Opened>) -> Result<Arc<Repository>> {
    let (repo, errors) = repo.load_index()?;
    for e in errors {
        rewind::log::warn(&format!("{e} (run `rewind check`)"));
    }
    Ok(Arc::new(repo))
}

/// Host and tag filters for commands that take a snapshot selector.
#[derive(clap::Args, Clone)]
pub struct FilterArgs {
    /// Only consider snapshots of this host
    #[arg(long)]
    host: Option<String>,
    /// Only consider snapshots with this tag (repeatable: all must match)
    #[arg(long = "tag")]
    tags: Vec<String>,
}

impl FilterArgs {
    fn filter(&self) -> Filter {
        Filter {
            host: self.host.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// Resolves `SNAP[:PATH]` to a snapshot and a path inside it.
pub fn select(repo: &Repository, spec: &str, filter: &FilterArgs) -> Result<(Snapshot, String)> {
    let (selector, path) = split_selector(spec)?;
    let snapshots = repo.snapshots()?;
    let snapshot = selector.select(&snapshots, &filter.filter())?.clone();
    Ok((snapshot, path.to_string()))
}

pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
