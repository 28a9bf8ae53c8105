//! The fixtures: repositories of three backups each, made once per test
//! binary by the real binary, that tests copy before damaging them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use rewind::format::BlobKind;
use rewind::Encryption;

use super::model::Model;
use super::{files_under, rewind, DAYS, PARITY};
use crate::common::{freeze, mkdirs, seed, write, Manifest, Repo, Rng};

/// One backup of a fixture: its source, as it was backed up.
pub struct Backup {
    pub time: &'static str,
    pub src: PathBuf,
    /// The source's manifest, taken before the backup.
    pub expected: Manifest,
    /// Every regular file: absolute path → content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The files this backup added to the repository (`data/ab/ab…`,
    /// `index/…`, `snapshots/…`). Each packer thread fills its own pack, so
    /// there may be more than one data or tree pack.
    pub data_packs: Vec<String>,
    pub tree_packs: Vec<String>,
    pub copy_pack: String,
    pub index_files: Vec<String>,
    pub manifest: String,
}

/// A repository of three backups, made once per test binary, that tests copy.
pub struct Fixture {
    pub root: PathBuf,
    pub repo: PathBuf,
    pub encryption: Encryption,
    pub parity: u32,
    pub backups: Vec<Backup>,
    pub model: Model,
}

static PARITY_FIXTURE: OnceLock<Fixture> = OnceLock::new();
static PLAIN_FIXTURE: OnceLock<Fixture> = OnceLock::new();
static TO_REMOVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

extern "C" fn remove_fixtures() {
    if let Ok(dirs) = TO_REMOVE.lock() {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// An encrypted repository with `--parity 10`.
pub fn parity_fixture() -> &'static Fixture {
    PARITY_FIXTURE.get_or_init(|| Fixture::build("parity", Encryption::Aes256Gcm, PARITY))
}

/// An unencrypted repository without parity.
pub fn plain_fixture() -> &'static Fixture {
    PLAIN_FIXTURE.get_or_init(|| Fixture::build("plain", Encryption::None, 0))
}

impl Fixture {
    fn build(name: &str, encryption: Encryption, parity: u32) -> Fixture {
        // Statics are never dropped: the directory goes at exit.
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("scrub-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        mkdirs(&root);
        {
            let mut dirs = TO_REMOVE.lock().unwrap();
            if dirs.is_empty() {
                // SAFETY: registers a plain function without arguments.
                unsafe { libc::atexit(remove_fixtures) };
            }
            dirs.push(root.clone());
        }
        let started = Instant::now();
        let mut rng = Rng::new(seed(&format!("scrub fixture {name}")));
        let repo = Repo::at(&root.join("repo"), encryption);
        let flag = match encryption {
            Encryption::Aes256Gcm => "aes-256-gcm",
            Encryption::None => "none",
        };
        rewind(
            &repo,
            [
                "init",
                "--encryption",
                flag,
                "--parity",
                &parity.to_string(),
            ],
        )
        .assert_ok();
        let mut backups = Vec::new();
        let mut new_packs = Vec::new();
        for (i, letter) in ["a", "b", "c"].iter().enumerate() {
            let src = root.join("src").join(letter);
            let mut files: Vec<(String, Vec<u8>)> = vec![
                // Several chunks in the first backup (chunks are at most
                // 4 MiB); small elsewhere: each fault case scrubs everything.
                ("big.bin".into(), rng.bytes([17 << 18, 400_000, 300_000][i])),
                ("sub/mid.bin".into(), rng.bytes(200_000)),
                ("sub/deeper/notes.txt".into(), rng.text(20_000)),
                ("empty".into(), Vec::new()),
            ];
            for j in 0..4 {
                let len = rng.range(100, 4000) as usize;
                files.push((format!("small-{j}.txt"), rng.text(len)));
            }
            for (rel, data) in &files {
                let path = src.join(rel);
                mkdirs(path.parent().unwrap());
                write(&path, data);
            }
            let expected = freeze(&src);
            let before = files_under(&repo.path);
            let snapshot = rewind(
                &repo,
                ["backup", "--json", "--time", DAYS[i], src.to_str().unwrap()],
            )
            .assert_ok()
            .json();
            let added: Vec<String> = files_under(&repo.path)
                .difference(&before)
                .cloned()
                .collect();
            let manifest = format!("snapshots/{}", snapshot["id"].as_str().unwrap());
            assert!(added.contains(&manifest), "{added:?}");
            backups.push(Backup {
                time: DAYS[i],
                files: files
                    .into_iter()
                    .map(|(rel, data)| (format!("{}/{rel}", src.display()), data))
                    .collect(),
                src,
                expected,
                // Packs are classified once the model is known.
                data_packs: Vec::new(),
                tree_packs: Vec::new(),
                copy_pack: String::new(),
                index_files: added
                    .iter()
                    .filter(|f| f.starts_with("index/"))
                    .cloned()
                    .collect(),
                manifest,
            });
            new_packs.push(
                added
                    .into_iter()
                    .filter(|f| f.starts_with("data/"))
                    .collect::<Vec<_>>(),
            );
        }
        let model = Model::load(&repo);
        for (b, packs) in backups.iter_mut().zip(new_packs) {
            let of_kind = |kind: BlobKind| -> Vec<String> {
                packs
                    .iter()
                    .filter(|p| model.packs[*p].kind == kind)
                    .cloned()
                    .collect()
            };
            b.data_packs = of_kind(BlobKind::Data);
            b.tree_packs = of_kind(BlobKind::Tree);
            let copies = of_kind(BlobKind::Snapshot);
            assert!(
                !b.data_packs.is_empty() && !b.tree_packs.is_empty() && copies.len() == 1,
                "a backup writes data packs, tree packs and one copy pack: {packs:?}"
            );
            b.copy_pack = copies[0].clone();
        }
        eprintln!(
            "fixture {name}: {} packs, {} files, built in {:.1?}",
            model.packs.len(),
            files_under(&repo.path).len(),
            started.elapsed()
        );
        Fixture {
            root,
            repo: repo.path,
            encryption,
            parity,
            backups,
            model,
        }
    }

    /// A copy of the pristine repository at `to`.
    pub fn copy_to(&self, to: &Path) -> Repo {
        let status = Command::new("cp")
            .arg("-a")
            .arg(&self.repo)
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success(), "cp -a {}", self.repo.display());
        Repo::at(to, self.encryption)
    }

    /// The backup made at `time`.
    pub fn backup(&self, time: &str) -> &Backup {
        self.backups.iter().find(|b| b.time == time).unwrap()
    }

    /// The parity file of a repository file, if the fixture keeps parity.
    pub fn parity_of(&self, file: &str) -> Option<String> {
        if self.parity == 0 {
            return None;
        }
        Some(match file.split_once('/') {
            None => "parity/config".to_string(),
            Some(("data", rest)) => format!("parity/data.{}", &rest[3..]),
            Some((dir, name)) => format!("parity/{dir}.{name}"),
        })
    }
}
