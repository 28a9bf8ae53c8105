//! Helpers for the scrub fault-injection tests: repositories built once per
//! test binary by the real binary and copied for each test, a model of what
//! every pack holds and which paths need it (read with the library from the
//! pristine repository), faults applied to files, and the scrub report's
//! findings.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rewind::repo::{pack, BlobKind, Encryption, Id, PackedBlob};
use rewind::tree::{Extent, NodeKind};
use serde_json::Value;

use crate::common::*;

/// The recorded times of the three backups of every fixture.
pub const DAYS: [&str; 3] = [
    "2024-06-01T02:00:00Z",
    "2024-06-02T02:00:00Z",
    "2024-06-03T02:00:00Z",
];

/// The parity of the parity fixture, in percent.
pub const PARITY: u32 = 10;

// ------------------------------------------------------------ running rewind

/// Fails the test if a run of the binary panicked.
#[track_caller]
pub fn assert_no_panic(what: &str, stderr: &str) {
    assert!(!stderr.contains("panicked"), "`{what}` panicked:\n{stderr}");
}

/// `rewind ARGS...`, not checked except that nothing panicked.
#[track_caller]
pub fn rewind<I, S>(repo: &Repo, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let run = repo.run(args);
    assert_no_panic(&run.what, &run.stderr);
    run
}

/// `rewind scrub --json --state STATE EXTRA...`, which must exit with
/// `code` and print a report; the report.
#[track_caller]
pub fn scrub(repo: &Repo, state: &Path, extra: &[&str], code: i32) -> Value {
    let mut args: Vec<OsString> = vec!["scrub".into(), "--json".into(), "--state".into()];
    args.push(state.into());
    args.extend(extra.iter().map(OsString::from));
    rewind(repo, args).assert_code(code).json()
}

/// The findings of a scrub report by repository file (`data/ab/ab…`).
#[track_caller]
pub fn findings(report: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for f in report["findings"].as_array().expect("a findings array") {
        let file = f["file"].as_str().expect("a file").to_string();
        assert!(
            out.insert(file.clone(), f.clone()).is_none(),
            "{file} is reported twice: {report:#}"
        );
    }
    out
}

/// Asserts that the report's findings are exactly `files`, each with `status`.
#[track_caller]
pub fn assert_findings(report: &Value, files: &BTreeSet<String>, status: &str, context: &str) {
    let found = findings(report);
    let names: BTreeSet<String> = found.keys().cloned().collect();
    assert_eq!(
        &names, files,
        "{context}: the scrub must report exactly the damaged files:\n{report:#}"
    );
    for (file, f) in &found {
        assert_eq!(
            f["status"], status,
            "{context}: {file} should be {status}:\n{f:#}"
        );
    }
}

/// A finding's affected paths: snapshot time (found through `snapshots`)
/// → paths.
#[track_caller]
pub fn affected_by_time(
    finding: &Value,
    snapshots: &[Value],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let Some(map) = finding["affected"].as_object() else {
        return out;
    };
    for (short, paths) in map {
        let snapshot = snapshots
            .iter()
            .find(|s| s["short_id"] == short.as_str())
            .unwrap_or_else(|| panic!("the finding names an unknown snapshot {short}"));
        let paths: BTreeSet<String> = paths
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        out.insert(snapshot["time"].as_str().unwrap().to_string(), paths);
    }
    out
}

// ------------------------------------------------------------------ fixtures

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

/// Every file under `dir`, relative to it (`data/ab/ab…`), sorted.
pub fn files_under(dir: &Path) -> BTreeSet<String> {
    all_paths(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| p.strip_prefix(dir).unwrap().to_str().unwrap().to_string())
        .collect()
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

// ---------------------------------------------------------------- the model

pub struct PackInfo {
    /// `data/ab/ab…`
    pub file: String,
    pub id: Id,
    /// The kind of its blobs (backups never mix them).
    pub kind: BlobKind,
    pub blobs: Vec<PackedBlob>,
    pub size: usize,
}

pub enum Entry {
    File(Vec<(u64, u32, Id)>),
    Dir(TreeModel),
    Other,
}

pub struct TreeModel {
    pub id: Id,
    pub entries: Vec<(String, Entry)>,
}

pub struct SnapshotModel {
    pub time: String,
    pub short: String,
    pub root: TreeModel,
}

/// What the pristine repository holds, read with the library.
pub struct Model {
    /// By `data/ab/ab…`.
    pub packs: BTreeMap<String, PackInfo>,
    pub snapshots: Vec<SnapshotModel>,
}

impl Model {
    /// The pack that holds a blob.
    pub fn pack_of(&self, blob: &Id) -> &PackInfo {
        self.packs
            .values()
            .find(|p| p.blobs.iter().any(|b| b.id == *blob))
            .unwrap()
    }

    /// Where a blob is in its pack.
    pub fn blob(&self, blob: &Id) -> &PackedBlob {
        self.pack_of(blob)
            .blobs
            .iter()
            .find(|b| b.id == *blob)
            .unwrap()
    }

    fn load(repo: &Repo) -> Model {
        let lib = repo.open();
        let mut packs = BTreeMap::new();
        for file in files_under(&repo.path.join("data")) {
            let name = file.rsplit('/').next().unwrap().to_string();
            let bytes = std::fs::read(repo.path.join("data").join(&file)).unwrap();
            let (_, blobs) = pack::read_trailer(rewind::repo::keys_of(&*lib), &bytes).unwrap();
            let kind = blobs[0].kind;
            assert!(blobs.iter().all(|b| b.kind == kind), "a pack of one kind");
            let file = format!("data/{file}");
            packs.insert(
                file.clone(),
                PackInfo {
                    file,
                    id: Id::from_hex(&name).unwrap(),
                    kind,
                    blobs,
                    size: bytes.len(),
                },
            );
        }
        fn tree(lib: &rewind::repo::Repository, id: Id) -> TreeModel {
            let entries = lib
                .read_tree(&id)
                .unwrap()
                .nodes
                .into_iter()
                .map(|n| {
                    let entry = match n.kind {
                        NodeKind::Dir => Entry::Dir(tree(lib, n.subtree.unwrap())),
                        NodeKind::File => {
                            let mut at = 0;
                            let mut extents = Vec::new();
                            for e in &n.content {
                                match e {
                                    Extent::Data { id, len } => {
                                        extents.push((at, *len, *id));
                                        at += *len as u64;
                                    }
                                    Extent::Hole { len } => at += len,
                                }
                            }
                            Entry::File(extents)
                        }
                        _ => Entry::Other,
                    };
                    (n.name_lossy().to_string(), entry)
                })
                .collect();
            TreeModel { id, entries }
        }
        let snapshots = lib
            .snapshots()
            .unwrap()
            .into_iter()
            .map(|s| SnapshotModel {
                time: s.time_label(),
                short: s.id.short(),
                root: tree(&lib, s.tree),
            })
            .collect();
        Model { packs, snapshots }
    }

    /// The blobs of a pack that its new bytes (None: the file is gone) no
    /// longer hold intact at their place: they cannot be read.
    pub fn damaged_blobs(&self, pack: &str, old: &[u8], new: Option<&[u8]>) -> HashSet<Id> {
        self.packs[pack]
            .blobs
            .iter()
            .filter(|b| {
                let range = b.offset as usize..(b.offset + b.stored_len) as usize;
                new.and_then(|n| n.get(range.clone())) != Some(&old[range])
            })
            .map(|b| b.id)
            .collect()
    }

    /// Snapshot time → the paths that lose data when `damaged` blobs cannot
    /// be read: files with a damaged chunk, and directories whose listing is
    /// damaged (what is below them is not listed). Snapshots that lose
    /// nothing are left out.
    pub fn affected(&self, damaged: &HashSet<Id>) -> BTreeMap<String, BTreeSet<String>> {
        fn walk(tree: &TreeModel, prefix: &str, damaged: &HashSet<Id>, out: &mut BTreeSet<String>) {
            if damaged.contains(&tree.id) {
                out.insert(if prefix.is_empty() {
                    "/".into()
                } else {
                    prefix.into()
                });
                return;
            }
            for (name, entry) in &tree.entries {
                let path = format!("{prefix}/{name}");
                match entry {
                    Entry::File(extents) => {
                        if extents.iter().any(|(_, _, id)| damaged.contains(id)) {
                            out.insert(path);
                        }
                    }
                    Entry::Dir(sub) => walk(sub, &path, damaged, out),
                    Entry::Other => {}
                }
            }
        }
        let mut out = BTreeMap::new();
        for s in &self.snapshots {
            let mut paths = BTreeSet::new();
            walk(&s.root, "", damaged, &mut paths);
            if !paths.is_empty() {
                out.insert(s.time.clone(), paths);
            }
        }
        out
    }

    /// The snapshot taken at `time`.
    pub fn snapshot(&self, time: &str) -> &SnapshotModel {
        self.snapshots.iter().find(|s| s.time == time).unwrap()
    }

    /// Every regular file of a snapshot: absolute path → its extents.
    pub fn files(&self, time: &str) -> BTreeMap<String, Vec<(u64, u32, Id)>> {
        fn walk(tree: &TreeModel, prefix: &str, out: &mut BTreeMap<String, Vec<(u64, u32, Id)>>) {
            for (name, entry) in &tree.entries {
                let path = format!("{prefix}/{name}");
                match entry {
                    Entry::File(extents) => {
                        out.insert(path, extents.clone());
                    }
                    Entry::Dir(sub) => walk(sub, &path, out),
                    Entry::Other => {}
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.snapshot(time).root, "", &mut out);
        out
    }

    /// The directory of a snapshot at an absolute path.
    pub fn dir(&self, time: &str, path: &str) -> &TreeModel {
        let mut tree = &self.snapshot(time).root;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            tree = match tree.entries.iter().find(|(n, _)| n == part) {
                Some((_, Entry::Dir(sub))) => sub,
                _ => panic!("no directory {path}"),
            };
        }
        tree
    }
}

// -------------------------------------------------------------------- faults

/// What a fault did to a file, for the log and for working out its damage.
#[derive(Debug, Clone)]
pub enum Fault {
    /// One bit at `offset`.
    Flip {
        offset: usize,
        bit: u8,
    },
    /// Every byte of `offset..offset + len` changed.
    Burst {
        offset: usize,
        len: usize,
    },
    Truncate {
        to: usize,
    },
    Delete,
    /// Replaced by the bytes of another file.
    Replace {
        with: String,
    },
}

impl Fault {
    /// A single bit flip at a random offset.
    pub fn flip(rng: &mut Rng, size: usize) -> Fault {
        Fault::Flip {
            offset: rng.below(size as u64) as usize,
            bit: rng.below(8) as u8,
        }
    }

    /// A burst of 2..=max_len changed bytes at a random offset.
    pub fn burst(rng: &mut Rng, size: usize, max_len: usize) -> Fault {
        let len = (rng.range(2, max_len as u64 + 1) as usize).min(size);
        Fault::Burst {
            offset: rng.below((size - len + 1) as u64) as usize,
            len,
        }
    }

    /// Cuts off the end of a file, at most a twentieth of it (well within
    /// what 10% of parity rebuilds) and at most 64 KiB.
    pub fn truncate(rng: &mut Rng, size: usize) -> Fault {
        let cut = rng.range(1, (size as u64 / 20).clamp(2, 64 << 10)) as usize;
        Fault::Truncate { to: size - cut }
    }

    /// Applies the fault to `repo/file`; returns the file's bytes before.
    pub fn apply(&self, repo: &Path, file: &str, rng: &mut Rng) -> Vec<u8> {
        let path = repo.join(file);
        let old = std::fs::read(&path).unwrap_or_else(|e| panic!("read {file}: {e}"));
        let mut new = old.clone();
        match self {
            Fault::Flip { offset, bit } => new[*offset] ^= 1 << bit,
            Fault::Burst { offset, len } => {
                // XOR with non-zero bytes, so every byte of the burst changes.
                let noise = rng.bytes(*len);
                for (b, n) in new[*offset..offset + len].iter_mut().zip(noise) {
                    *b ^= n.max(1);
                }
            }
            Fault::Truncate { to } => new.truncate(*to),
            Fault::Delete => {
                std::fs::remove_file(&path).unwrap();
                eprintln!("fault: {file}: deleted");
                return old;
            }
            Fault::Replace { with } => new = std::fs::read(repo.join(with)).unwrap(),
        }
        eprintln!("fault: {file} ({} bytes): {self:?}", old.len());
        assert_ne!(new, old, "the fault changed nothing");
        write(&path, &new);
        old
    }
}

/// The bytes of a repository file now (None if it is gone).
pub fn bytes_of(repo: &Path, file: &str) -> Option<Vec<u8>> {
    std::fs::read(repo.join(file)).ok()
}

// ------------------------------------------------------------------ restores

/// Restores the snapshot of `backup` (selected by time) into `target`;
/// every file not in `lost` equals the source in content and metadata, and
/// no file in `lost` is there. Returns the restore's exit code.
#[track_caller]
pub fn restore_all_but(
    repo: &Repo,
    backup: &Backup,
    target: &Path,
    lost: &BTreeSet<String>,
) -> i32 {
    let run = rewind(
        repo,
        [
            "restore",
            &format!("@{}", backup.time),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    let restored_root = under(target, &backup.src);
    if lost.is_empty() {
        let run = run.assert_ok();
        backup.expected.assert_same(
            &Manifest::of(&restored_root),
            &format!("restore of {} ({})", backup.time, run.what),
        );
        return 0;
    }
    let run = run.assert_code(1);
    let actual = Manifest::of(&restored_root);
    let prefix = format!("{}/", backup.src.display());
    for (path, data) in &backup.files {
        let rel = path.strip_prefix(&prefix).unwrap();
        let got = restored_root.join(rel);
        if lost.contains(path) {
            assert!(
                !got.exists(),
                "{path} lost data but was restored anyway\n{}",
                run.stderr
            );
            assert!(
                run.stderr.contains(path.as_str()),
                "the restore names {path}:\n{}",
                run.stderr
            );
            continue;
        }
        let expected = &backup.expected.entries[rel.as_bytes()];
        let meta = actual.entries.get(rel.as_bytes()).unwrap_or_else(|| {
            panic!(
                "{path} is intact in the repository but was not restored\n{}",
                run.stderr
            )
        });
        assert_eq!(
            std::fs::read(&got).unwrap(),
            *data,
            "{path}: restored content differs"
        );
        assert_eq!(
            (meta.mode, meta.uid, meta.gid, meta.size, meta.mtime),
            (
                expected.mode,
                expected.uid,
                expected.gid,
                expected.size,
                expected.mtime
            ),
            "{path}: restored metadata differs"
        );
    }
    1
}

// -------------------------------------------------------------------- mounts

/// `rewind mount MOUNTPOINT --foreground EXTRA...` in a child process, its
/// standard error in a file (the detached daemon sends it to /dev/null,
/// where a panic message would be lost). Dropping it always unmounts
/// (`umount -l`) and ends the process.
pub struct ForegroundMount {
    pub mountpoint: PathBuf,
    pub stderr_file: PathBuf,
    child: std::process::Child,
}

impl ForegroundMount {
    /// Mounts and waits until the mount is in /proc/self/mounts. The scrub
    /// state goes under `cache_home` (`XDG_CACHE_HOME`).
    #[track_caller]
    pub fn start(
        repo: &Repo,
        mountpoint: &Path,
        cache_home: &Path,
        extra: &[&str],
    ) -> ForegroundMount {
        mkdirs(mountpoint);
        let stderr_file = mountpoint.with_extension("stderr");
        let child = repo
            .command()
            .arg("mount")
            .arg(mountpoint)
            .arg("--foreground")
            .args(extra)
            .env("XDG_CACHE_HOME", cache_home)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr_file).unwrap())
            .spawn()
            .expect("rewind mount starts");
        let mut mount = ForegroundMount {
            mountpoint: mountpoint.to_path_buf(),
            stderr_file,
            child,
        };
        let started = Instant::now();
        while !is_mounted(mountpoint) {
            if let Some(status) = mount.child.try_wait().unwrap() {
                panic!(
                    "rewind mount ended with {status} before mounting:\n{}",
                    mount.stderr()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no mount at {} after 30 s:\n{}",
                mountpoint.display(),
                mount.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        mount
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// `.rewind/status`, parsed.
    #[track_caller]
    pub fn status(&self) -> Value {
        let bytes = std::fs::read(self.mountpoint.join(".rewind/status")).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Waits for the background scrub's first complete pass (polling the
    /// status slowly: every read makes the scrub yield for a while).
    #[track_caller]
    pub fn wait_for_scrub_pass(&self, timeout: Duration) -> Value {
        let started = Instant::now();
        loop {
            let status = self.status();
            if !status["scrub"]["last_full_pass"].is_null() {
                eprintln!("background scrub pass done after {:.1?}", started.elapsed());
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "no complete scrub pass after {timeout:?}: {status:#}\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for ForegroundMount {
    fn drop(&mut self) {
        unmount_all(&self.mountpoint);
        if wait_for(Duration::from_secs(5), || {
            self.child.try_wait().ok().flatten().is_some()
        })
        .is_none()
        {
            eprintln!("rewind mount outlived its unmount: killing it");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
