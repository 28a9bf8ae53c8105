use std::process::ExitCode;

use anyhow::{bail, Result};
use rewind::{Encryption, LockMode, ObjectLock, Repository, MAX_LOCK_PERIOD};

use super::{FromRepoArgs, Global};

/// A test knob: with it set to 1, `--object-lock` also takes periods in
/// seconds (`20s`), so that tests see retention end. Documented in
/// rewind-init(1) as for tests only.
const SHORT_LOCK_KNOB: &str = "REWIND_TEST_SHORT_OBJECT_LOCK";

const DAY: u64 = 86_400;

#[derive(clap::Args)]
pub struct Args {
    /// Encryption of the new repository
    #[arg(long, value_enum, default_value = "aes-256-gcm")]
    encryption: EncryptionArg,
    /// Store Reed–Solomon parity of every file, in percent of its size (e.g. 10),
    /// so that `rewind scrub --repair` can rebuild damaged files
    #[arg(long, value_name = "PERCENT", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    parity: u32,
    /// Cut and name data as the repository given with --from-repo does (its
    /// chunker parameters and id key), so that the two deduplicate against
    /// each other and `rewind copy` between them rewrites no tree
    #[arg(long, requires = "from_repo")]
    copy_chunker_params: bool,
    /// Keep every file of the repository under S3 Object Lock for PERIOD
    /// from when it is written (e.g. 30d, 1y; units y, m, w, d, h; at least
    /// 1d), so that no one holding the password and the S3 keys can delete
    /// or overwrite it before then; `rewind retention renew` extends it for
    /// what the kept snapshots need. The bucket must have Object Lock enabled
    #[arg(long, value_name = "PERIOD", value_parser = parse_lock_period)]
    object_lock: Option<u64>,
    /// governance: a user with the s3:BypassGovernanceRetention permission
    /// can still delete or shorten; compliance: no one can, the account's
    /// root user included (default: governance)
    #[arg(long, value_enum, value_name = "MODE", requires = "object_lock")]
    object_lock_mode: Option<LockModeArg>,
    #[command(flatten)]
    from: FromRepoArgs,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum LockModeArg {
    Governance,
    Compliance,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum EncryptionArg {
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
    None,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    if args.from.given() && !args.copy_chunker_params {
        bail!("--from-repo in `rewind init` goes with --copy-chunker-params");
    }
    let object_lock = object_lock(global, args)?;
    if args.copy_chunker_params {
        return init_sharing_ids(global, args, object_lock);
    }
    let backend = global.backend()?;
    let (encryption, password) = match args.encryption {
        EncryptionArg::Aes256Gcm => (Encryption::Aes256Gcm, Some(global.password(true)?)),
        EncryptionArg::None => (Encryption::None, None),
    };
    let repo = Repository::init_object_locked(
        backend,
        encryption,
        args.parity,
        object_lock,
        password.as_deref(),
    )?;
    global.trail().use_repository(&repo);
    println!(
        "created repository {} at {}",
        repo.config().id.short(),
        repo.location()
    );
    print_object_lock(&repo);
    Ok(ExitCode::SUCCESS)
}

/// The object lock asked for; a usage error on a local directory, which
/// can keep nothing from whoever may write to it.
fn object_lock(global: &Global, args: &Args) -> Result<Option<ObjectLock>> {
    let Some(period) = args.object_lock else {
        return Ok(None);
    };
    if !rewind::is_remote(global.location()?) {
        return Err(anyhow::Error::new(
            rewind::Error::usage(
                "--object-lock needs an S3 bucket with Object Lock: a local directory cannot \
                 keep its files from whoever may write to it, so a client that holds the \
                 password (or ransomware running as its user) can delete or overwrite every \
                 snapshot there; `rewind check` finds such changes, nothing prevents them",
            )
            .with_hint(
                "keep a copy where this client cannot delete it: `rewind copy` into a \
                 repository created with --object-lock in an S3 bucket with Object Lock",
            ),
        ));
    }
    let mode = match args.object_lock_mode {
        None | Some(LockModeArg::Governance) => LockMode::Governance,
        Some(LockModeArg::Compliance) => LockMode::Compliance,
    };
    Ok(Some(ObjectLock { mode, period }))
}

/// `--object-lock PERIOD` in seconds: a keep duration of one day or more
/// (or, with the test knob, `<N>s`).
fn parse_lock_period(text: &str) -> Result<u64, String> {
    if std::env::var(SHORT_LOCK_KNOB).as_deref() == Ok("1") {
        if let Some(seconds) = text.strip_suffix('s').and_then(|n| n.parse::<u64>().ok()) {
            return Ok(seconds.max(1));
        }
    }
    let duration = rewind::parse_keep_duration(text).map_err(|e| e.to_string())?;
    let seconds = u64::try_from(duration.num_seconds()).unwrap_or(0);
    if seconds < DAY {
        return Err(format!(
            "'{text}': an object lock period is at least one day (1d); \
             `rewind retention renew` must run within it"
        ));
    }
    if seconds > MAX_LOCK_PERIOD {
        return Err(format!(
            "'{text}': an object lock period is at most 100 years"
        ));
    }
    Ok(seconds)
}

fn print_object_lock<S: rewind::RepositoryState>(repo: &Repository<S>) {
    let Some(lock) = repo.config().object_lock else {
        return;
    };
    println!(
        "object lock: every file but locks and deletion plans is kept under {} retention \
         for {} from when it is written; run `rewind retention renew` more often than that",
        lock.mode.s3_name(),
        show_period(lock.period)
    );
}

/// A period as `30d`, `1d12h` or (tests) `20s`.
fn show_period(seconds: u64) -> String {
    let (days, hours) = (seconds / DAY, seconds % DAY / 3600);
    match (days, hours, seconds % 3600) {
        (0, 0, rest) => format!("{rest}s"),
        (days, 0, 0) => format!("{days}d"),
        (0, hours, 0) => format!("{hours}h"),
        (days, hours, 0) => format!("{days}d{hours}h"),
        _ => format!("{seconds}s"),
    }
}

/// `init --copy-chunker-params --from-repo SRC`: the source is opened
/// first, so that its wrong password creates nothing.
fn init_sharing_ids(
    global: &Global,
    args: &Args,
    object_lock: Option<ObjectLock>,
) -> Result<ExitCode> {
    if let EncryptionArg::None = args.encryption {
        bail!(
            "--copy-chunker-params needs an encrypted repository: an unencrypted one derives \
             its id key, and so its chunker seed, from its own id, and cannot share another's"
        );
    }
    let source = args.from.open()?;
    let backend = global.backend()?;
    let password = global.password(true)?;
    let repo = Repository::init_sharing_ids(backend, &source, args.parity, object_lock, &password)?;
    global.trail().use_repository(&repo);
    println!(
        "created repository {} at {}, with the chunker parameters and id key of {}",
        repo.config().id.short(),
        repo.location(),
        source.location()
    );
    print_object_lock(&repo);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_periods_are_a_day_or_more() {
        assert_eq!(parse_lock_period("30d"), Ok(30 * DAY));
        assert_eq!(parse_lock_period("1y6m"), Ok(545 * DAY));
        assert!(parse_lock_period("12h")
            .unwrap_err()
            .contains("at least one day"));
        assert!(parse_lock_period("101y").unwrap_err().contains("100 years"));
        assert!(parse_lock_period("soon").is_err());
    }

    #[test]
    fn periods_show_in_their_largest_units() {
        assert_eq!(show_period(30 * DAY), "30d");
        assert_eq!(show_period(DAY + 12 * 3600), "1d12h");
        assert_eq!(show_period(6 * 3600), "6h");
        assert_eq!(show_period(20), "20s");
        assert_eq!(show_period(DAY + 20), "86420s");
    }
}
