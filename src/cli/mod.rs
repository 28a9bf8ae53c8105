//! Command-line definitions (one file per subcommand) and what they share:
//! opening the repository, reading the password, selecting snapshots, and
//! the audit record of each command that changes the repository or reads
//! data out of it.

mod audit;
mod backup;
mod cat;
mod check;
mod completions;
mod config;
mod copy;
mod diff;
mod drill;
mod forget;
mod init;
mod interrupt;
mod key;
mod locks;
mod log;
mod ls;
mod mount;
pub mod mount_helper;
mod profile;
mod progress;
mod prune;
mod restore;
mod retention;
mod run;
mod scrub;
mod size;
mod snapshots;
mod status;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use rewind::{split_selector, Filter};
use rewind::{Backend, ErrorKind};
use rewind::{ExpansionBudget, ExpansionLimits};
use rewind::{LoadedProfile, LockKind, Opened, Repository, RepositoryLock, Snapshot};

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
    /// Cache of a repository in object storage: index files, snapshots and
    /// the packs of directory trees, each checked against its name when read
    /// (default: $XDG_CACHE_HOME/rewind, /var/cache/rewind for root)
    #[arg(long, global = true, value_name = "DIR", env = "REWIND_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Read everything from the repository itself, keeping no local cache
    #[arg(long, global = true)]
    no_cache: bool,
    /// Show no progress and no summaries on stderr (warnings and errors still appear)
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// Take the repository, the password file and each command's defaults
    /// from this profile: /etc/rewind/NAME.toml, else
    /// ~/.config/rewind/NAME.toml, or a path if NAME has a '/' (see
    /// rewind-profile(5)); options given override it
    #[arg(
        long,
        short = 'P',
        global = true,
        value_name = "NAME",
        env = "REWIND_PROFILE"
    )]
    profile: Option<String>,
    /// The profile read for --profile.
    #[arg(skip)]
    loaded_profile: Option<LoadedProfile>,
    /// What the running command tells its audit record.
    #[arg(skip)]
    trail: audit::Trail,
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
    /// Copy snapshots from another repository: those this one lacks, and
    /// of their data only what it lacks
    Copy(copy::Args),
    /// Delete the data no snapshot uses: unused packs go, mostly unused
    /// ones are repacked
    Prune(prune::Args),
    /// List the repository's locks: who is writing to it, since when, and
    /// which locks are stale
    Locks(locks::ListArgs),
    /// Remove stale locks (--stale), or every lock
    Unlock(locks::UnlockArgs),
    /// Manage the passwords that open the repository: list, add, passwd, remove
    Key(key::Args),
    /// Show the audit trail: who ran which command on the repository, when, and how it ended
    Log(log::Args),
    /// Object lock: extend the retention of what the snapshots need (renew)
    Retention(retention::Args),
    /// Run a profile's whole job: its backups, forget and prune, check,
    /// copy and restore test, with its hooks (rewind -P NAME run)
    Run(run::Args),
    /// Check a profile without running it (rewind -P NAME config check)
    Config(config::Args),
    /// Print the completion script for a shell: bash, zsh or fish
    Completions(completions::Args),
}

pub fn run() -> Result<ExitCode> {
    run_parsed(profile::parse_from(std::env::args_os().collect())?)
}

fn run_parsed(cli: Cli) -> Result<ExitCode> {
    if cli.global.quiet {
        rewind::log::quiet();
    }
    match audited_as(&cli.command) {
        Some(name) => audit::audited(&cli.global, name, || dispatch(&cli)),
        None => dispatch(&cli),
    }
}

/// The name a command's audit record gives it, for the commands that
/// change the repository or read data out of it; dry runs do neither.
fn audited_as(command: &Command) -> Option<&'static str> {
    Some(match command {
        Command::Init(_) => "init",
        Command::Backup(_) => "backup",
        Command::Cat(_) => "cat",
        Command::Restore(args) if !args.dry_run => "restore",
        Command::RestoreTest(_) => "restore-test",
        Command::Mount(_) => "mount",
        Command::Scrub(args) if args.repair => "scrub",
        Command::Forget(args) if !args.dry_run => "forget",
        Command::Copy(args) if !args.dry_run => "copy",
        Command::Prune(args) if !args.dry_run => "prune",
        Command::Unlock(_) => "unlock",
        Command::Key(args) => return args.audited_as(),
        _ => return None,
    })
}

fn dispatch(cli: &Cli) -> Result<ExitCode> {
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
        Command::Copy(args) => copy::run(&cli.global, args),
        Command::Prune(args) => prune::run(&cli.global, args),
        Command::Locks(args) => locks::list(&cli.global, args),
        Command::Unlock(args) => locks::unlock(&cli.global, args),
        Command::Key(args) => key::run(&cli.global, args),
        Command::Log(args) => log::run(&cli.global, args),
        Command::Retention(args) => retention::run(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Config(args) => config::run(&cli.global, args),
        Command::Completions(args) => completions::run(args),
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
        backend_for(self.location()?, self.cache_root().as_deref())
    }

    /// Where repositories in object storage are cached, unless --no-cache.
    fn cache_root(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(rewind::default_cache_root)
    }

    /// The repository's storage past any cache: what check and scrub
    /// verify is the store itself.
    pub fn backend_uncached(&self) -> Result<Arc<dyn Backend>> {
        backend_for(self.location()?, None)
    }

    /// [`Global::open`] past any cache.
    pub fn open_uncached(&self) -> Result<Repository<Opened>> {
        let opened = Repository::open(self.backend_uncached()?, || self.password(false));
        self.trail.opening(&opened);
        Ok(opened?)
    }

    fn location(&self) -> Result<&str> {
        self.repo
            .as_deref()
            .context("no repository given: use --repo LOCATION or set REWIND_REPO")
    }

    /// The password from --password-file, REWIND_PASSWORD, or a prompt.
    fn password(&self, confirm: bool) -> rewind::Result<Vec<u8>> {
        self.password_sources().read(confirm)
    }

    fn password_sources(&self) -> PasswordSources<'_> {
        PasswordSources {
            file: self.password_file.as_deref(),
            variable: "REWIND_PASSWORD",
            file_option: "--password-file",
            prompt: "repository password: ",
        }
    }

    /// Opens the repository without its index (enough for snapshots,
    /// status and check, which loads it itself).
    pub fn open(&self) -> Result<Repository<Opened>> {
        let opened = Repository::open(self.backend()?, || self.password(false));
        self.trail.opening(&opened);
        Ok(opened?)
    }

    /// Opens the repository if that needs no prompt (the password is in a
    /// file or the environment): for the audit record of a command that
    /// failed before it opened the repository.
    fn open_without_prompt(&self) -> Result<Repository<Opened>> {
        let password = || {
            self.password_sources()
                .given()?
                .ok_or_else(|| rewind::Error::usage("no password without a prompt"))
        };
        Ok(Repository::open(self.backend()?, password)?)
    }

    /// The profile given with --profile, read; an error naming the command
    /// that needs one when none was given.
    pub fn profile(&self, command: &str) -> Result<&LoadedProfile> {
        self.loaded_profile.as_ref().with_context(|| {
            format!("{command} runs a profile: give its name, as in rewind -P NAME {command}")
        })
    }

    /// What the running command tells its audit record.
    pub fn trail(&self) -> &audit::Trail {
        &self.trail
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

/// The storage a repository location names, with its cache under
/// `cache_root` if it is in object storage; `--repo` and `--from-repo` take
/// the same locations.
pub fn backend_for(location: &str, cache_root: Option<&Path>) -> Result<Arc<dyn Backend>> {
    Ok(rewind::open_location_cached(location, cache_root)?)
}

/// Where a password comes from: a file, else an environment variable, else
/// a prompt on a terminal; never an argument.
struct PasswordSources<'a> {
    file: Option<&'a Path>,
    variable: &'static str,
    file_option: &'static str,
    prompt: &'static str,
}

impl PasswordSources<'_> {
    fn read(&self, confirm: bool) -> rewind::Result<Vec<u8>> {
        if let Some(password) = self.given()? {
            return Ok(password);
        }
        if !std::io::stderr().is_terminal() {
            return Err(rewind::Error::usage(format!(
                "no password: set {}, use {}, or run on a terminal",
                self.variable, self.file_option
            )));
        }
        let first = rpassword::prompt_password(self.prompt)
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

    /// The password from the file or the variable, if one is given.
    fn given(&self) -> rewind::Result<Option<Vec<u8>>> {
        if let Some(file) = self.file {
            let mut bytes = std::fs::read(file).map_err(|e| {
                rewind::Error::io(
                    format!("cannot read the password file {}", file.display()),
                    e,
                )
            })?;
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            return Ok(Some(bytes));
        }
        Ok(std::env::var(self.variable).ok().map(String::into_bytes))
    }
}

/// The repository that `copy` copies from and `init --copy-chunker-params`
/// takes its parameters from.
#[derive(clap::Args)]
pub struct FromRepoArgs {
    /// The source repository: a location as for --repo
    #[arg(long, value_name = "LOCATION")]
    from_repo: Option<String>,
    /// Read the source repository's password from this file (else
    /// REWIND_FROM_PASSWORD, else a prompt)
    #[arg(long, value_name = "FILE", env = "REWIND_FROM_PASSWORD_FILE")]
    from_password_file: Option<PathBuf>,
}

impl FromRepoArgs {
    /// Opens the source repository without its index; errors say it is the
    /// source, and how to give its location and password.
    pub fn open(&self) -> Result<Repository<Opened>> {
        let location = self
            .from_repo
            .as_deref()
            .context("no source repository given: use --from-repo LOCATION")?;
        let password = PasswordSources {
            file: self.from_password_file.as_deref(),
            variable: "REWIND_FROM_PASSWORD",
            file_option: "--from-password-file",
            prompt: "source repository password: ",
        };
        let cache_root = rewind::default_cache_root();
        Repository::open(backend_for(location, cache_root.as_deref())?, || {
            password.read(false)
        })
        .map_err(|e| {
            let hint = match e.kind() {
                ErrorKind::WrongPassword => Some(
                    "check REWIND_FROM_PASSWORD, REWIND_FROM_PASSWORD_FILE or --from-password-file",
                ),
                ErrorKind::NotFound => Some("check --from-repo"),
                _ => None,
            };
            let e = e.context("the source repository (--from-repo)");
            anyhow::Error::new(match hint {
                Some(hint) => e.with_hint(hint),
                None => e,
            })
        })
    }

    pub fn given(&self) -> bool {
        self.from_repo.is_some()
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
