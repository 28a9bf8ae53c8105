//! The `rewind` command: argument parsing and output over the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rewind: {}", cli::describe(&err));
            ExitCode::from(1)
        }
    }
}
