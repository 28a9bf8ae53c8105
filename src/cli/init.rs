use std::process::ExitCode;

use anyhow::Result;
use rewind::repo::{Encryption, Repository};

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// Encryption of the new repository
    #[arg(long, value_enum, default_value = "aes-256-gcm")]
    encryption: EncryptionArg,
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
    let repo = Repository::init(backend, encryption, password.as_deref())?;
    println!(
        "created repository {} at {}",
        repo.config().id.short(),
        repo.location()
    );
    Ok(ExitCode::SUCCESS)
}
