//! `check`: is every snapshot restorable? Structure first (every tree and
//! chunk a snapshot needs is indexed, every indexed pack exists), then, on
//! request, the data itself (every pack hashes to its name, every blob opens
//! and hashes to its id). Damage is reported with the snapshots and paths it
//! affects.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use serde::Serialize;

use crate::backend::FileType;
use crate::error::{Error, Result};
use crate::parallel::parallel_map;
use crate::repo::{Id, IdMap, IdSet, Index, Opened, Repository, Snapshot};
use crate::tree::{Extent, NameProblem, Tree, MAX_DEPTH};

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
    /// What to run to repair what was found, when a command can.
    pub hints: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.damaged_packs.is_empty()
    }
}

/// Loads the index (a damaged index file is an error of the report) and
/// checks the repository.
pub fn check(repo: &Repository<Opened>, read_data: Option<Subset>) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let (repo, index_errors) = repo.load_index()?;
    let repo = &repo;
    for e in index_errors {
        report.errors.push(format!("damaged index file: {e}"));
    }
    let stored: BTreeSet<String> = repo
        .stored_files()
        .list(FileType::Pack)?
        .into_iter()
        .collect();
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
    let mut unindexed = 0;
    for name in &stored {
        if Id::from_hex(name).map_or(true, |id| !index.has_pack(&id)) {
            unindexed += 1;
            report.warnings.push(format!(
                "pack {name} is not in the index (left by an interrupted backup, harmless, unless an index file was lost)"
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
    let walk = walk_snapshots(repo, &snapshots, &damaged);
    report.trees = walk.trees;
    report.errors.extend(walk.errors);
    report.affected = walk.affected;
    report.damaged_packs = bad_packs
        .into_iter()
        .map(|(id, why)| (id.to_hex(), why))
        .collect();
    report_lost_metadata(repo, &snapshots, &mut report, unindexed)?;
    Ok(report)
}

/// Metadata that is gone rather than damaged: manifests whose snapshot
/// copy remains (deleted, not forgotten), and packs no index file lists
/// while blobs are missing from the index (an index file was deleted).
/// Both come back from the packs with `scrub --repair`.
fn report_lost_metadata(
    repo: &Repository,
    manifests: &[Snapshot],
    report: &mut CheckReport,
    unindexed_packs: usize,
) -> Result<()> {
    let (missing, tombstone_errors) = repo.snapshots_without_manifest(manifests)?;
    for e in tombstone_errors {
        report.errors.push(format!("damaged tombstone: {e}"));
    }
    for copy in &missing {
        report.errors.push(format!(
            "the snapshot of {} from {} (root tree {}) has no readable manifest: only its copy in the packs remains",
            copy.time_label(),
            copy.host,
            copy.tree.short()
        ));
    }
    if !missing.is_empty() {
        report.hints.push(
            "run `rewind scrub --repair` to write the missing manifests again from their copies"
                .into(),
        );
    }
    if unindexed_packs > 0 && !report.affected.is_empty() {
        report.hints.push(format!(
            "{unindexed_packs} packs are listed by no index file: run `rewind scrub --repair` to index them from their trailers, which brings back the blobs they hold, then `rewind check` again"
        ));
    }
    Ok(())
}

/// What is wrong with a pack, and which of its blobs fail (None: all of them).
type PackDamage = (String, Option<Vec<Id>>);

/// Reads a whole pack and verifies it; returns the bytes read and blobs verified.
fn verify_pack(repo: &Repository, id: &Id) -> std::result::Result<(u64, u64), PackDamage> {
    let bytes = repo
        .stored_files()
        .read(FileType::Pack, &id.to_hex())
        .map_err(|e| (e.to_string(), None))?;
    let blobs = repo
        .verify_pack(id, &bytes, true)
        .map_err(|e| (e.to_string(), repo.failing_blobs(id, &bytes)))?;
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

struct Walk {
    trees: usize,
    errors: Vec<String>,
    affected: BTreeMap<String, Vec<String>>,
}

/// How many paths are named for one problem; the rest are counted. A
/// crafted snapshot can reach one tree by 2^40 paths.
const PATHS_PER_PROBLEM: usize = 10;

/// Walks every snapshot's trees, reporting blobs that are not indexed or live
/// in a damaged pack, names that break the format's rules, and the paths
/// that need them. Each distinct tree is read once, however many snapshots
/// and paths share it, and each problem is reported once per snapshot.
fn walk_snapshots(repo: &Repository, snapshots: &[Snapshot], damaged: &IdSet) -> Walk {
    let index = repo.index();
    let mut walker = TreeWalker {
        repo,
        index: &index,
        damaged,
        facts: IdMap::default(),
    };
    let mut walk = Walk {
        trees: 0,
        errors: Vec::new(),
        affected: BTreeMap::new(),
    };
    for snapshot in snapshots {
        walker.explore(&snapshot.tree);
        let found = walker.snapshot_problems(&snapshot.tree);
        if found.is_empty() {
            continue;
        }
        let short = snapshot.id.short();
        let mut affected = Vec::new();
        for problem in found {
            let first = problem.paths.first().map_or("/", String::as_str);
            let others = problem.reached_by.saturating_sub(1);
            let also = match others {
                0 => String::new(),
                n => format!(" (the same entry is at {n} more paths)"),
            };
            walk.errors
                .push(format!("snapshot {short}: {first}: {}{also}", problem.what));
            affected.extend(problem.paths.iter().cloned());
            let unnamed = problem.reached_by - problem.paths.len() as u64;
            if unnamed > 0 {
                affected.push(format!("... and {unnamed} more paths"));
            }
        }
        walk.affected.insert(short, affected);
    }
    walk.trees = walker.facts.len();
    walk
}

/// What the walk learned about one tree, whatever path reaches it.
#[derive(Default)]
struct TreeFacts {
    /// Directory levels below it: 0 when it has no subdirectory.
    height: usize,
    /// What is wrong in it: (the entry's name, or empty for the tree
    /// itself; the problem).
    problems: Vec<(Vec<u8>, String)>,
    /// Its subdirectories that have problems below them.
    damaged_children: Vec<(Vec<u8>, Id)>,
}

impl TreeFacts {
    fn damaged_below(&self) -> bool {
        !self.problems.is_empty() || !self.damaged_children.is_empty()
    }
}

/// A tree being explored: its subdirectories, and how many were visited.
struct Frame {
    id: Id,
    subdirs: Vec<(Vec<u8>, Id)>,
    next: usize,
    facts: TreeFacts,
}

/// One problem of a snapshot: where it is (a bounded number of paths) and
/// by how many paths it is reached in all.
struct Found {
    what: String,
    paths: Vec<String>,
    reached_by: u64,
}

/// How a tree is reached from a snapshot's root: the number of paths, and
/// the first few as (parent tree, the parent's sample, index of the entry
/// in the parent's `damaged_children`); None is the root itself.
#[derive(Default)]
struct Reach {
    count: u64,
    samples: Vec<Option<(Id, usize, usize)>>,
}

struct TreeWalker<'a> {
    repo: &'a Repository,
    index: &'a Index,
    damaged: &'a IdSet,
    facts: IdMap<TreeFacts>,
}

impl TreeWalker<'_> {
    /// Learns the facts of every tree under `root` not known yet, depth
    /// first with its own stack: a crafted chain of trees may be far deeper
    /// than any thread's stack.
    fn explore(&mut self, root: &Id) {
        if self.facts.contains_key(root) {
            return;
        }
        let mut on_stack = IdSet::from_iter([*root]);
        let mut stack = vec![self.open(root)];
        while let Some(frame) = stack.last_mut() {
            if let Some((name, child)) = frame.subdirs.get(frame.next).cloned() {
                frame.next += 1;
                if self.facts.contains_key(&child) {
                    continue;
                }
                if on_stack.contains(&child) {
                    // A tree cannot name itself without breaking its hash;
                    // met anyway, it must not loop.
                    let problem = "the directory contains itself".to_string();
                    frame.facts.problems.push((name, problem));
                    continue;
                }
                on_stack.insert(child);
                stack.push(self.open(&child));
                continue;
            }
            let done = stack.pop().expect("the loop saw a frame");
            on_stack.remove(&done.id);
            let facts = self.finish(done.facts, &done.subdirs);
            self.facts.insert(done.id, facts);
        }
    }

    /// Reads a tree and finds what is wrong in it, apart from its subtrees.
    fn open(&self, tree_id: &Id) -> Frame {
        let mut frame = Frame {
            id: *tree_id,
            subdirs: Vec::new(),
            next: 0,
            facts: TreeFacts::default(),
        };
        let tree = match blob_problem(self.index, tree_id, self.damaged) {
            Some(problem) => Err(format!("its directory listing {problem}")),
            None => self
                .repo
                .read_tree(tree_id)
                .map_err(|e| format!("its directory listing cannot be read: {e}")),
        };
        let tree = match tree {
            Ok(tree) => tree,
            Err(problem) => {
                frame.facts.problems.push((Vec::new(), problem));
                return frame;
            }
        };
        frame.facts.problems = name_problems(&tree);
        for node in &tree.nodes {
            let chunk_problem = node.content.iter().find_map(|e| match e {
                Extent::Data { id, .. } => blob_problem(self.index, id, self.damaged),
                Extent::Hole { .. } => None,
            });
            if let Some(problem) = chunk_problem {
                let problem = format!("a chunk {problem}");
                frame.facts.problems.push((node.name.clone(), problem));
            }
            if let Some(subtree) = node.subtree {
                frame.subdirs.push((node.name.clone(), subtree));
            }
        }
        frame
    }

    /// The facts of a tree whose subtrees are all known.
    fn finish(&self, mut facts: TreeFacts, subdirs: &[(Vec<u8>, Id)]) -> TreeFacts {
        for (name, child) in subdirs {
            // Unknown only when the tree contains itself (reported).
            let Some(below) = self.facts.get(child) else {
                continue;
            };
            facts.height = facts.height.max(below.height + 1);
            if below.damaged_below() {
                facts.damaged_children.push((name.clone(), *child));
            }
        }
        facts
    }

    /// The problems of the snapshot whose root tree is `root` (explored).
    fn snapshot_problems(&self, root: &Id) -> Vec<Found> {
        let mut found = Vec::new();
        if self.facts[root].height > MAX_DEPTH {
            found.push(Found {
                what: format!("directories nest deeper than {MAX_DEPTH} levels"),
                paths: vec![self.deep_path(root)],
                reached_by: 1,
            });
        }
        if !self.facts[root].damaged_below() {
            return found;
        }
        let (order, reach) = self.reach(root);
        for tree_id in &order {
            let how = &reach[tree_id];
            for (entry, what) in &self.facts[tree_id].problems {
                let paths = (0..how.samples.len())
                    .map(|sample| {
                        let mut path = self.sample_path(&reach, tree_id, sample);
                        if !entry.is_empty() {
                            path.push('/');
                            path.push_str(&String::from_utf8_lossy(entry));
                        }
                        if path.is_empty() {
                            path.push('/');
                        }
                        path
                    })
                    .collect();
                found.push(Found {
                    what: what.clone(),
                    paths,
                    reached_by: how.count,
                });
            }
        }
        found
    }

    /// How each damaged tree under `root` is reached (counted, not
    /// enumerated), and those trees, each before its subtrees.
    fn reach(&self, root: &Id) -> (Vec<Id>, IdMap<Reach>) {
        let order = self.damaged_in_topological_order(root);
        let mut reach: IdMap<Reach> = order.iter().map(|id| (*id, Reach::default())).collect();
        reach.insert(
            *root,
            Reach {
                count: 1,
                samples: vec![None],
            },
        );
        for parent_id in &order {
            let parent = &reach[parent_id];
            let (count, samples) = (parent.count, parent.samples.len());
            let children = &self.facts[parent_id].damaged_children;
            for (child_index, (_, child)) in children.iter().enumerate() {
                let child = reach
                    .get_mut(child)
                    .expect("every damaged tree is in order");
                child.count = child.count.saturating_add(count);
                let room = PATHS_PER_PROBLEM.saturating_sub(child.samples.len());
                child.samples.extend(
                    (0..samples.min(room)).map(|sample| Some((*parent_id, sample, child_index))),
                );
            }
        }
        (order, reach)
    }

    /// The damaged trees under `root` (included), each before its subtrees.
    fn damaged_in_topological_order(&self, root: &Id) -> Vec<Id> {
        let mut finished = Vec::new();
        let mut visited = IdSet::from_iter([*root]);
        let mut stack = vec![(*root, 0usize)];
        while let Some((id, next)) = stack.last_mut() {
            let children = &self.facts[id].damaged_children;
            match children.get(*next) {
                Some((_, child)) => {
                    *next += 1;
                    if visited.insert(*child) {
                        stack.push((*child, 0));
                    }
                }
                None => {
                    finished.push(*id);
                    stack.pop();
                }
            }
        }
        finished.reverse();
        finished
    }

    /// The path of sample `sample` of how `tree` is reached: empty for the root.
    fn sample_path(&self, reach: &IdMap<Reach>, tree: &Id, sample: usize) -> String {
        let mut names = Vec::new();
        let (mut tree, mut sample) = (*tree, sample);
        while let Some((parent, parent_sample, child_index)) = reach[&tree].samples[sample] {
            names.push(&self.facts[&parent].damaged_children[child_index].0);
            (tree, sample) = (parent, parent_sample);
        }
        names
            .iter()
            .rev()
            .map(|name| format!("/{}", String::from_utf8_lossy(name)))
            .collect()
    }

    /// A path of directories that nests deeper than [`MAX_DEPTH`] levels,
    /// down to the first directory too deep: found by reading the deepest
    /// branch again (only a malformed snapshot gets here).
    fn deep_path(&self, root: &Id) -> String {
        let mut path = String::new();
        let mut tree_id = *root;
        for _ in 0..=MAX_DEPTH {
            let height = self.facts[&tree_id].height;
            let deepest = self.repo.read_tree(&tree_id).ok().and_then(|tree| {
                tree.nodes.into_iter().find_map(|node| {
                    let subtree = node.subtree?;
                    let below = self.facts.get(&subtree)?;
                    (below.height + 1 == height).then_some((node.name, subtree))
                })
            });
            let Some((name, subtree)) = deepest else {
                break;
            };
            path.push('/');
            path.push_str(&String::from_utf8_lossy(&name));
            tree_id = subtree;
        }
        path
    }
}

/// The tree's entries whose names break the format's rules, each once.
fn name_problems(tree: &Tree) -> Vec<(Vec<u8>, String)> {
    let mut problems = Vec::new();
    let mut unsorted = false;
    for bad in tree.bad_names() {
        if bad.problem == NameProblem::OutOfOrder {
            unsorted = true;
        } else {
            problems.push((tree.nodes[bad.index].name.clone(), bad.problem.to_string()));
        }
    }
    if unsorted {
        problems.push((Vec::new(), NameProblem::OutOfOrder.to_string()));
    }
    problems
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
    Ok(walk_snapshots(repo, &snapshots, damaged).affected)
}
