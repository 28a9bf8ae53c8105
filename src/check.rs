//! `check`: is every snapshot restorable? Structure first (every tree and
//! chunk a snapshot needs is indexed, every indexed pack exists), then, on
//! request, the data itself (every pack hashes to its name, every blob opens
//! and hashes to its id). Damage is reported with the snapshots and paths it
//! affects.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Mutex;

use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::repo::{pack, parallel_map, Id, IdMap, IdSet, Index, Repository, Snapshot};
use crate::tree::Extent;

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    All,
    /// Part `n` of `t` (1-based): over `t` runs every pack is read once.
    Part {
        n: u32,
        t: u32,
    },
    /// About this fraction (0..=1) of the packs.
    Fraction(f64),
}

impl Subset {
    pub fn parse(text: &str) -> Result<Subset> {
        let bad = || {
            Error::usage(format!(
                "'{text}' is not a subset: use N/T (e.g. 3/7) or P% (e.g. 10%)"
            ))
        };
        if let Some(percent) = text.strip_suffix('%') {
            let p: f64 = percent.parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&p) {
                return Err(bad());
            }
            return Ok(Subset::Fraction(p / 100.0));
        }
        let (n, t) = text.split_once('/').ok_or_else(bad)?;
        let (n, t): (u32, u32) = (n.parse().map_err(|_| bad())?, t.parse().map_err(|_| bad())?);
        if t == 0 || n == 0 || n > t {
            return Err(bad());
        }
        Ok(Subset::Part { n, t })
    }

    /// Deterministic: the same pack is always in the same part.
    pub fn contains(&self, pack: &Id) -> bool {
        match *self {
            Subset::All => true,
            Subset::Part { n, t } => (pack.fraction() * t as f64) as u32 == n - 1,
            Subset::Fraction(f) => pack.fraction() < f,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    pub blobs_verified: u64,
    /// Problems that make data unrestorable.
    pub errors: Vec<String>,
    /// Harmless findings (packs left by an interrupted backup).
    pub warnings: Vec<String>,
    /// Damaged or missing packs, with what is wrong.
    pub damaged_packs: BTreeMap<String, String>,
    /// Snapshot (short id) → paths that lost data.
    pub affected: BTreeMap<String, Vec<String>>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.damaged_packs.is_empty()
    }
}

pub fn check(repo: &Repository, read_data: Option<Subset>) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    for e in repo.load_index()? {
        report.errors.push(format!("damaged index file: {e}"));
    }
    let stored: BTreeSet<String> = repo.backend().list(FileType::Pack)?.into_iter().collect();
    let index = repo.index();
    report.packs = index.packs().len();
    let mut bad_packs: BTreeMap<Id, String> = BTreeMap::new();
    // What is damaged: whole packs, or single blobs where that is known.
    let mut damaged = IdSet::default();
    for pack in index.packs() {
        if !stored.contains(&pack.id.to_hex()) {
            bad_packs.insert(pack.id, "missing".into());
            damaged.insert(pack.id);
        }
    }
    for name in &stored {
        if Id::from_hex(name).map_or(true, |id| !index.has_pack(&id)) {
            report.warnings.push(format!(
                "pack {name} is not in the index (left by an interrupted backup; harmless)"
            ));
        }
    }
    drop(index);

    if let Some(subset) = read_data {
        let index = repo.index();
        let chosen: Vec<_> = index
            .packs()
            .iter()
            .filter(|p| subset.contains(&p.id) && !bad_packs.contains_key(&p.id))
            .copied()
            .collect();
        drop(index);
        let verified = Mutex::new((0u64, 0u64));
        let results = parallel_map(&chosen, |pack| {
            let result = verify_pack(repo, &pack.id);
            if let Ok((bytes, blobs)) = &result {
                let mut v = verified.lock().unwrap();
                v.0 += bytes;
                v.1 += blobs;
            }
            (pack.id, result)
        });
        report.packs_read = chosen.len();
        (report.bytes_read, report.blobs_verified) = verified.into_inner().unwrap();
        for (id, result) in results {
            if let Err((problem, failing)) = result {
                bad_packs.insert(id, problem);
                match failing {
                    Some(blobs) => damaged.extend(blobs),
                    None => {
                        damaged.insert(id);
                    }
                }
            }
        }
    }

    let (snapshots, snapshot_errors) = repo.snapshots_with_errors()?;
    for e in snapshot_errors {
        report
            .errors
            .push(format!("damaged snapshot manifest: {e}"));
    }
    report.snapshots = snapshots.len();
    let walk = crate::tree::with_deep_stack(|| walk_snapshots(repo, &snapshots, &damaged));
    report.trees = walk.trees;
    report.errors.extend(walk.errors);
    report.affected = walk.affected;
    report.damaged_packs = bad_packs
        .into_iter()
        .map(|(id, why)| (id.to_hex(), why))
        .collect();
    Ok(report)
}

/// What is wrong with a pack, and which of its blobs fail (None: all of them).
type PackDamage = (String, Option<Vec<Id>>);

/// Reads a whole pack and verifies it; returns the bytes read and blobs verified.
fn verify_pack(repo: &Repository, id: &Id) -> std::result::Result<(u64, u64), PackDamage> {
    let bytes = repo
        .backend()
        .read(FileType::Pack, &id.to_hex())
        .map_err(|e| (e.to_string(), None))?;
    let blobs = verify_pack_bytes(repo, id, &bytes, true)
        .map_err(|e| (e.to_string(), failing_blobs(repo, id, &bytes)))?;
    let index = repo.index();
    let number = index.pack_number(id);
    for blob in &blobs {
        match index.get(&blob.id) {
            Some(loc)
                if Some(loc.pack()) == number
                    && (loc.offset != blob.offset || loc.stored_len != blob.stored_len) =>
            {
                let problem = format!(
                    "the index places blob {} elsewhere than the pack does",
                    blob.id.short()
                );
                return Err((problem, None));
            }
            _ => {}
        }
    }
    Ok((bytes.len() as u64, blobs.len() as u64))
}

/// The checks of a pack's bytes: they hash to the pack's name and, `deep`,
/// the trailer reads and every blob opens and hashes to its id. Returns the
/// blobs the trailer lists (empty when not deep).
pub(crate) fn verify_pack_bytes(
    repo: &Repository,
    id: &Id,
    bytes: &[u8],
    deep: bool,
) -> Result<Vec<pack::PackedBlob>> {
    if Id::of_bytes(bytes) != *id {
        return Err(Error::corrupt("its content does not hash to its name"));
    }
    if !deep {
        return Ok(Vec::new());
    }
    let (salt, blobs) = pack::read_trailer(repo.keys(), bytes)?;
    for blob in &blobs {
        let stored = &bytes[blob.offset as usize..(blob.offset + blob.stored_len) as usize];
        let chunker = &repo.config().chunker;
        pack::open_blob(repo.keys(), &salt, stored.to_vec(), blob.claim(), chunker)?;
    }
    Ok(blobs)
}

/// The blobs the index places in a damaged pack that do not open and verify
/// from `data`; None when the whole pack is unusable. Blobs outside the
/// damage stay readable, so only the files that need the failing ones lose data.
pub(crate) fn failing_blobs(repo: &Repository, pack: &Id, data: &[u8]) -> Option<Vec<Id>> {
    let index = repo.index();
    let number = index.pack_number(pack)?;
    let salt = index.pack(number).salt;
    let mut failing = Vec::new();
    let mut total = 0;
    for (id, location) in index.blobs().filter(|(_, l)| l.pack() == number) {
        total += 1;
        let start = location.offset as usize;
        let stored = data.get(start..start + location.stored_len as usize);
        if stored.is_none_or(|s| {
            let claim = pack::BlobClaim {
                id: &id,
                kind: location.kind(),
                raw_len: location.raw_len,
            };
            pack::open_blob(
                repo.keys(),
                &salt,
                s.to_vec(),
                claim,
                &repo.config().chunker,
            )
            .is_err()
        }) {
            failing.push(id);
        }
    }
    (failing.len() < total).then_some(failing)
}

struct Walk {
    trees: usize,
    errors: Vec<String>,
    affected: BTreeMap<String, Vec<String>>,
}

/// Walks every snapshot's trees, reporting blobs that are not indexed or live
/// in a damaged pack, and the paths that need them. Each distinct tree is read
/// once, however many snapshots share it.
fn walk_snapshots(repo: &Repository, snapshots: &[Snapshot], damaged: &IdSet) -> Walk {
    let index = repo.index();
    let mut walker = TreeWalker {
        repo,
        index: &index,
        damaged,
        seen: IdMap::default(),
    };
    let mut walk = Walk {
        trees: 0,
        errors: Vec::new(),
        affected: BTreeMap::new(),
    };
    for snapshot in snapshots {
        let problems = walker.problems(&snapshot.tree, 0);
        if !problems.is_empty() {
            for (path, problem) in problems.iter() {
                let shown = if path.is_empty() { "/" } else { path };
                walk.errors.push(format!(
                    "snapshot {}: {shown}: {problem}",
                    snapshot.id.short()
                ));
            }
            walk.affected.insert(
                snapshot.id.short(),
                problems
                    .iter()
                    .map(|(p, _)| if p.is_empty() { "/".into() } else { p.clone() })
                    .collect(),
            );
        }
    }
    walk.trees = walker.seen.len();
    walk
}

type Problems = Rc<Vec<(String, String)>>;

struct TreeWalker<'a> {
    repo: &'a Repository,
    index: &'a Index,
    damaged: &'a IdSet,
    /// Problems found under each tree, as (path relative to the tree, problem).
    seen: IdMap<Problems>,
}

impl TreeWalker<'_> {
    fn problems(&mut self, tree_id: &Id, depth: usize) -> Problems {
        if let Some(known) = self.seen.get(tree_id) {
            return Rc::clone(known);
        }
        if depth > crate::tree::MAX_DEPTH {
            // Not remembered: the same tree may be fine higher up.
            return Rc::new(vec![(
                String::new(),
                format!(
                    "directories nest deeper than {} levels",
                    crate::tree::MAX_DEPTH
                ),
            )]);
        }
        let tree = match blob_problem(self.index, tree_id, self.damaged) {
            Some(problem) => Err(format!("its directory listing {problem}")),
            None => self
                .repo
                .read_tree(tree_id)
                .map_err(|e| format!("its directory listing cannot be read: {e}")),
        };
        let mut found = Vec::new();
        match tree {
            Err(problem) => found.push((String::new(), problem)),
            Ok(tree) => {
                for node in &tree.nodes {
                    let path = format!("/{}", node.name_lossy());
                    let chunk_problem = node.content.iter().find_map(|e| match e {
                        Extent::Data { id, .. } => blob_problem(self.index, id, self.damaged),
                        Extent::Hole { .. } => None,
                    });
                    if let Some(problem) = chunk_problem {
                        found.push((path.clone(), format!("a chunk {problem}")));
                    }
                    if let Some(subtree) = node.subtree {
                        for (sub, problem) in self.problems(&subtree, depth + 1).iter() {
                            found.push((format!("{path}{sub}"), problem.clone()));
                        }
                    }
                }
            }
        }
        let found = Rc::new(found);
        self.seen.insert(*tree_id, Rc::clone(&found));
        found
    }
}

/// `damaged` holds the ids of damaged packs, and of damaged blobs when a
/// deep scrub knows exactly which blobs of a pack are bad.
fn blob_problem(index: &Index, id: &Id, damaged: &IdSet) -> Option<String> {
    match index.get(id) {
        None => Some(format!("({}) is not in the index", id.short())),
        Some(loc) => {
            let pack = index.pack(loc.pack()).id;
            if damaged.contains(id) {
                Some(format!(
                    "({}) is damaged in pack {}",
                    id.short(),
                    pack.short()
                ))
            } else {
                damaged
                    .contains(&pack)
                    .then(|| format!("({}) is in the damaged pack {}", id.short(), pack.short()))
            }
        }
    }
}

/// The snapshots and paths that need the blobs, or blobs stored in the
/// packs, whose ids are in `damaged`.
pub fn affected_paths(repo: &Repository, damaged: &IdSet) -> Result<BTreeMap<String, Vec<String>>> {
    let snapshots = repo.snapshots()?;
    Ok(crate::tree::with_deep_stack(|| walk_snapshots(repo, &snapshots, damaged)).affected)
}
