//! `rewind completions SHELL`: the shell's completion script, generated from
//! the command-line definitions, so it always knows every command and option.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

use super::Cli;

#[derive(clap::Args)]
pub struct Args {
    /// The shell to complete for
    shell: Shell,
}

/// The shells the package installs completions for.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

pub fn run(args: &Args) -> Result<ExitCode> {
    // Generated into memory first: clap_complete panics when its writer
    // fails, and a closed pipe (`| head`) is an error, not a crash.
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell.generator(),
        &mut Cli::command(),
        "rewind",
        &mut script,
    );
    std::io::stdout().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}
