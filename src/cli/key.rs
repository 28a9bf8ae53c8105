//! `rewind key`: the passwords that open a repository. Each key file wraps
//! the one master key under its own password; see rewind-key(1).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::{print_json, Global, PasswordSources};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

impl Args {
    /// The name the audit trail records (listing changes nothing).
    pub fn audited_as(&self) -> Option<&'static str> {
        match self.command {
            KeyCommand::List { .. } => None,
            KeyCommand::Add { .. } => Some("key add"),
            KeyCommand::Passwd { .. } => Some("key passwd"),
            KeyCommand::Remove { .. } => Some("key remove"),
            KeyCommand::Rotate { .. } => Some("key rotate"),
        }
    }
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// List the key files: id, created, host, user, label, and which one is in use
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Add a key file for a new password (the repository's data is untouched)
    Add {
        /// A name for the key, shown by `key list`
        #[arg(long)]
        label: Option<String>,
        #[command(flatten)]
        new_password: NewPassword,
    },
    /// Change the password: add a key for the new one, then remove the key in use
    Passwd {
        #[command(flatten)]
        new_password: NewPassword,
    },
    /// Remove a key file: never the last one, and the one in use only with --force-other
    Remove {
        /// The key's id, or a unique prefix of it (`rewind key list`)
        id: String,
        /// Remove the key this command was opened with (another password
        /// must open the repository afterwards)
        #[arg(long)]
        force_other: bool,
    },
    /// Rotate the master key: every file is sealed anew under a new one,
    /// while backups, mounts and restores go on; other passwords are
    /// removed (add them again afterwards)
    Rotate {
        /// Go on with a rotation that was interrupted
        #[arg(long)]
        resume: bool,
        /// Do not wait for writers that began before the rotation: return
        /// unfinished (exit 3) and resume later
        #[arg(long)]
        no_wait: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct NewPassword {
    /// Read the new password from this file (else REWIND_NEW_PASSWORD, else a prompt)
    #[arg(long, value_name = "FILE", env = "REWIND_NEW_PASSWORD_FILE")]
    new_password_file: Option<PathBuf>,
}

impl NewPassword {
    fn read(&self) -> rewind::Result<Vec<u8>> {
        let password = PasswordSources {
            file: self.new_password_file.as_deref(),
            variable: "REWIND_NEW_PASSWORD",
            file_option: "--new-password-file",
            prompt: "new password: ",
        }
        .read(true)?;
        if password.is_empty() {
            return Err(rewind::Error::usage("the new password is empty"));
        }
        Ok(password)
    }
}

/// How many hex digits of a key's id are shown.
const SHORT_ID: usize = 8;

fn short(id: &str) -> &str {
    &id[..SHORT_ID.min(id.len())]
}

/// An RFC 3339 time to the second, in UTC; as written if it is not one.
fn seconds(time: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(time).map_or_else(
        |_| time.to_string(),
        |t| {
            t.with_timezone(&chrono::Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        },
    )
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    if let KeyCommand::Rotate {
        resume,
        no_wait,
        json,
    } = &args.command
    {
        return rotate(global, *resume, *no_wait, *json);
    }
    let repo = global.open()?;
    match &args.command {
        KeyCommand::List { json } => {
            let (keys, errors) = repo.key_files()?;
            for error in &errors {
                rewind::log::warn(&error.to_string());
            }
            if *json {
                print_json(&keys)?;
            } else {
                println!(
                    "{:<3}{:<10} {:<21} {:<20} {:<12} label",
                    "", "id", "created", "host", "user"
                );
                for key in &keys {
                    println!(
                        "{:<3}{:<10} {:<21} {:<20} {:<12} {}",
                        if key.in_use { "*" } else { "" },
                        short(&key.id),
                        seconds(&key.created),
                        key.host,
                        key.username,
                        key.label.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(if errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        KeyCommand::Add {
            label,
            new_password,
        } => {
            let name = repo.add_key(&new_password.read()?, label.as_deref())?;
            println!("added key {}", short(&name));
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Passwd { new_password } => {
            let old = repo.key_in_use().unwrap_or_default();
            let name = repo.change_password(&new_password.read()?)?;
            println!(
                "password changed: key {} replaces key {}",
                short(&name),
                short(&old)
            );
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Remove { id, force_other } => {
            let name = repo.find_key(id)?;
            repo.remove_key(&name, *force_other)?;
            println!("removed key {}", short(&name));
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Rotate { .. } => unreachable!("handled above"),
    }
}

/// How often a rotation looks again at the writers it waits for.
const ROTATION_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// `key rotate`, under the exclusive lock (no prune runs beside it).
fn rotate(global: &Global, resume: bool, no_wait: bool, json: bool) -> Result<ExitCode> {
    let (repo, lock) = global.open_locked(rewind::LockKind::Exclusive, "key rotate")?;
    let repo = super::prune::loaded(repo)?;
    let options = rewind::RotateOptions {
        resume,
        wait: (!no_wait).then_some(ROTATION_POLL),
    };
    let shown = global.show_progress("key rotate", json);
    let report = rewind::rotate_master_key(&repo, &lock, &options, &shown.progress(), |what| {
        if !json {
            rewind::log::info(what)
        }
    });
    drop(shown);
    let report = report?;
    global.trail().bytes(|b| {
        b.written = Some(report.bytes_resealed);
        b.deleted = Some(report.bytes_deleted);
    });
    if json {
        print_json(&report)?;
    } else {
        for snapshot in &report.snapshots {
            println!(
                "snapshot {} is now {}",
                snapshot.old.short(),
                snapshot.new.short()
            );
        }
        println!(
            "sealed anew: {} packs ({}), {} snapshots, {} tombstones, {} deletion plans, {} audit records",
            report.packs_resealed,
            super::size::human_bytes(report.bytes_resealed),
            report.snapshots.len(),
            report.tombstones,
            report.deletion_plans,
            report.audit_records
        );
        for removed in &report.key_files_removed {
            println!("removed key {}", short(removed));
        }
        if report.finished {
            println!(
                "the master key is rotated: key {} opens the repository; add other passwords again with `rewind key add`",
                short(&report.key_file)
            );
        } else {
            println!("the rotation is not finished; it waits for:");
            for reason in &report.waiting_for {
                println!("  {reason}");
            }
            println!("run `rewind key rotate --resume` later");
        }
        if !report.retained.is_empty() {
            println!(
                "the store keeps {} old packs, {} index files and {} manifests under retention: \
                 the old key opens them until a prune after their retention ends deletes them",
                report.retained.packs, report.retained.index_files, report.retained.manifests
            );
        }
    }
    Ok(if report.finished {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
