//! Source trees with a history, for the prune tests: each generation of a
//! tree keeps what the last one had, adds a file and replaces others, so
//! that forgetting the older snapshots leaves packs wholly unused and packs
//! partly used. Each backed-up generation keeps a copy of what it held, so
//! that a test can check that its snapshot restores byte for byte.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use rewind::Encryption;

use super::binary::{arg, under, Repo};
use super::command::run;
use super::files::{mkdirs, write};
use super::rng::{seed, Rng};

/// Files every generation writes anew: their old versions are what a
/// forget leaves unused, small enough to share packs with what stays used.
const REPLACED_FILES: usize = 12;
const REPLACED_FILE_SIZE: usize = 24 * 1024;
/// The incompressible bytes a generation replaces: what only its snapshot
/// holds once the next generation is backed up.
pub const REPLACED_RANDOM_BYTES: u64 = (REPLACED_FILES * REPLACED_FILE_SIZE) as u64;
/// The file every generation adds and no later one changes.
const ADDED_FILE_SIZE: usize = 300 * 1024;
/// Written by the first generation and never changed: several chunks that
/// every snapshot uses.
const LASTING_FILE_SIZE: usize = 1536 * 1024;

/// A source tree that changes from one generation to the next.
pub struct Lineage {
    pub src: PathBuf,
    copies: PathBuf,
    rng: Rng,
    generation: usize,
}

impl Lineage {
    /// A tree at `dir/name`, its copies beside it; `name` also seeds it.
    pub fn new(dir: &Path, name: &str) -> Lineage {
        Lineage {
            src: dir.join(name),
            copies: dir.join(format!("{name}.copies")),
            rng: Rng::new(seed(name)),
            generation: 0,
        }
    }

    /// Changes the tree into its next generation and returns a copy of it
    /// as it now is.
    pub fn advance(&mut self) -> PathBuf {
        let (src, g) = (&self.src, self.generation);
        if g == 0 {
            write(&src.join("lasting.bin"), &self.rng.bytes(LASTING_FILE_SIZE));
        }
        write(
            &src.join(format!("added/generation-{g}.bin")),
            &self.rng.bytes(ADDED_FILE_SIZE),
        );
        for i in 0..REPLACED_FILES {
            write(
                &src.join(format!("replaced/file-{i:02}.bin")),
                &self.rng.bytes(REPLACED_FILE_SIZE),
            );
        }
        // Compressible, so that repacking meets compressed blobs too.
        write(&src.join("replaced/notes.txt"), &self.rng.text(40 * 1024));
        let copy = self.copies.join(format!("generation-{g}"));
        mkdirs(&self.copies);
        run(Command::new("cp").arg("-a").arg(src).arg(&copy)).assert_ok();
        self.generation += 1;
        copy
    }

    /// `backup --time TIME SRC` as a command of `repo`, for the next
    /// generation (the tree must have advanced to it): the hour of the
    /// time is the generation's number.
    pub fn backup_command(&self, repo: &Repo) -> Command {
        let mut cmd = repo.command();
        cmd.args(["backup", "--json", "--time"])
            .arg(generation_time(self.generation - 1))
            .arg(arg(&self.src));
        cmd
    }

    /// Puts a file into the tree as it is now (the next generation holds it).
    pub fn put(&self, name: &str, content: &[u8]) {
        write(&self.src.join(name), content);
    }

    /// Advances the tree and backs it up.
    #[track_caller]
    pub fn back_up_next(&mut self, repo: &Repo) -> Snap {
        let copy = self.advance();
        let snapshot = run(&mut self.backup_command(repo)).assert_ok().json();
        self.snap(&snapshot, copy)
    }

    /// What a backup of this tree printed (`--json`), with the copy of the
    /// generation it backed up.
    pub fn snap(&self, snapshot: &serde_json::Value, copy: PathBuf) -> Snap {
        Snap {
            id: snapshot["id"].as_str().expect("a snapshot id").to_string(),
            src: self.src.clone(),
            copy,
        }
    }
}

fn generation_time(generation: usize) -> OsString {
    format!("2024-06-01T{generation:02}:00:00Z").into()
}

/// A snapshot, and what it must restore to.
#[derive(Clone, Debug)]
pub struct Snap {
    pub id: String,
    /// The absolute path it backed up.
    pub src: PathBuf,
    /// A copy of what was there when it was backed up.
    pub copy: PathBuf,
}

impl Snap {
    /// Restores the whole snapshot under `scratch` and compares it with
    /// the copy, byte for byte (`diff -r`).
    #[track_caller]
    pub fn assert_restores(&self, repo: &Repo, scratch: &Path) {
        let target = scratch.join(&self.id[..12]);
        let _ = std::fs::remove_dir_all(&target);
        repo.restore(&self.id, &target, &[]).assert_ok();
        let diff = run(Command::new("diff")
            .args(["-r", "--no-dereference", "--"])
            .arg(&self.copy)
            .arg(under(&target, &self.src)));
        assert!(
            diff.ok(),
            "snapshot {} does not restore to what it backed up:\n{}{}",
            &self.id[..12],
            diff.text(),
            diff.stderr
        );
        std::fs::remove_dir_all(&target).unwrap();
    }
}

/// A repository and the snapshots of one lineage in it.
pub struct History {
    pub repo: Repo,
    pub lineage: Lineage,
    /// Oldest first.
    pub snaps: Vec<Snap>,
    /// Where restores go.
    pub scratch: PathBuf,
}

impl History {
    /// An encrypted repository at `dir/repo`, initialized with `init_args`
    /// (say `--parity 10`), with `generations` backups of one lineage seeded
    /// by `name`.
    pub fn build(dir: &Path, name: &str, generations: usize, init_args: &[&str]) -> History {
        let repo = Repo::at(&dir.join("repo"), Encryption::Aes256Gcm);
        let mut args = vec!["init"];
        args.extend_from_slice(init_args);
        repo.run(args).assert_ok();
        let mut lineage = Lineage::new(dir, name);
        let snaps = (0..generations)
            .map(|_| lineage.back_up_next(&repo))
            .collect();
        History {
            repo,
            lineage,
            snaps,
            scratch: dir.join("restored"),
        }
    }

    /// The snapshots the repository lists, which must all be known, each
    /// restored and compared with its copy; returns them.
    #[track_caller]
    pub fn assert_listed_restore(&self) -> Vec<Snap> {
        assert_listed_restore(&self.repo, &self.snaps, &self.scratch)
    }
}

/// Every snapshot `repo` lists, looked up among `known` (it must be there)
/// and restored byte for byte under `scratch`; returns them.
#[track_caller]
pub fn assert_listed_restore(repo: &Repo, known: &[Snap], scratch: &Path) -> Vec<Snap> {
    let by_id: BTreeMap<&str, &Snap> = known.iter().map(|s| (s.id.as_str(), s)).collect();
    let listed: Vec<Snap> = repo
        .snapshots()
        .iter()
        .map(|s| {
            let id = s["id"].as_str().unwrap();
            (*by_id
                .get(id)
                .unwrap_or_else(|| panic!("snapshot {id} was never made by this test")))
            .clone()
        })
        .collect();
    for snap in &listed {
        snap.assert_restores(repo, scratch);
    }
    listed
}
