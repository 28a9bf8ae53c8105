use std::process::ExitCode;

use anyhow::{bail, Result};
use rewind::{Encryption, Repository};

use super::{FromRepoArgs, Global};

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
    #[command(flatten)]
    from: FromRepoArgs,
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
    if args.copy_chunker_params {
        return init_sharing_ids(global, args);
    }
    let backend = global.backend()?;
    let (encryption, password) = match args.encryption {
        EncryptionArg::Aes256Gcm => (Encryption::Aes256Gcm, Some(global.password(true)?)),
        EncryptionArg::None => (Encryption::None, None),
    };
    let repo = Repository::init_with(backend, encryption, args.parity, password.as_deref())?;
    global.trail().use_repository(&repo);
    println!(
        "created repository {} at {}",
        repo.config().id.short(),
        repo.location()
    );
    Ok(ExitCode::SUCCESS)
}

/// `init --copy-chunker-params --from-repo SRC`: the source is opened
/// first, so that its wrong password creates nothing.
fn init_sharing_ids(global: &Global, args: &Args) -> Result<ExitCode> {
    if let EncryptionArg::None = args.encryption {
        bail!(
            "--copy-chunker-params needs an encrypted repository: an unencrypted one derives \
             its id key, and so its chunker seed, from its own id, and cannot share another's"
        );
    }
    let source = args.from.open()?;
    let backend = global.backend()?;
    let password = global.password(true)?;
    let repo = Repository::init_sharing_ids(backend, &source, args.parity, &password)?;
    global.trail().use_repository(&repo);
    println!(
        "created repository {} at {}, with the chunker parameters and id key of {}",
        repo.config().id.short(),
        repo.location(),
        source.location()
    );
    Ok(ExitCode::SUCCESS)
}
