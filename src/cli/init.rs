use std::process::ExitCode;

use anyhow::Result;
use rewind::{Encryption, Repository};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Encryption of the new repository
    #[arg(long, value_enum, default_value = "aes-256-gcm")]
    encryption: EncryptionArg,
    /// Store Reed–Solomon parity of every file, in percent of its size (e.g. 10),
    /// so that `rewind scrub --repair` can rebuild damaged files
    #[arg(long, value_name = "PERCENT", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    parity: u32,
}

#[derive(clap::ValueEnum, Clone, Copy)]
enum EncryptionArg {
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
    None,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let backend = global.backend()?;
    let (encryption, password) = match args.encryption {
        EncryptionArg::Aes256Gcm => (Encryption::Aes256Gcm, Some(global.password(true)?)),
        EncryptionArg::None => (Encryption::None, None),
    };
    let repo = Repository::init_with(backend, encryption, args.parity, password.as_deref())?;
    println!(
        "created repository {} at {}",
        repo.config().id.short(),
        repo.location()
    );
    Ok(ExitCode::SUCCESS)
}
