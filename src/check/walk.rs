//! The walk of every snapshot's trees that finds what is missing or
//! damaged and names the paths it affects. Each distinct tree is visited
//! once (shared subtrees are remembered), so the walk is bounded by the
//! repository's distinct trees, not by the paths they expand to.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::progress::{Progress, Totals};
use crate::repo::{Id, IdMap, IdSet, Index, Repository, Snapshot};
use crate::tree::{Extent, NameProblem, Tree, MAX_DEPTH};

pub(super) struct Walk {
    /// Distinct trees read.
    pub trees: usize,
    pub errors: Vec<String>,
    /// Damaged or missing object -> the paths that need it.
    pub affected: BTreeMap<String, Vec<String>>,
}

/// How many paths are named for one problem; the rest are counted. A
/// crafted snapshot can reach one tree by 2^40 paths.
const PATHS_PER_PROBLEM: usize = 10;

/// Walks every snapshot's trees, reporting blobs that are not indexed or live
/// in a damaged pack, names that break the format's rules, and the paths
/// that need them. Each distinct tree is read once, however many snapshots
/// and paths share it, and each problem is reported once per snapshot.
/// `progress` counts the snapshots walked.
pub(super) fn walk_snapshots(
    repo: &Repository,
    snapshots: &[Snapshot],
    damaged: &IdSet,
    progress: &Progress,
) -> Walk {
    progress.begin(
        "trees",
        "snapshots",
        Totals::known(Some(snapshots.len() as u64), None),
    );
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
        progress.add(1, 0);
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
        if let Some(problem) = blob_problem(self.index, tree_id, self.damaged) {
            let problem = format!("its directory listing {problem}");
            frame.facts.problems.push((Vec::new(), problem));
            return frame;
        }
        // A part at a time: a split directory's parts are checked against
        // its top as they are read, and what is held is one part.
        let read = self.repo.for_each_tree_part(tree_id, |tree| {
            frame.facts.problems.extend(name_problems(&tree));
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
            Ok::<(), std::convert::Infallible>(())
        });
        if let Err(e) = read {
            let problem = format!("its directory listing cannot be read: {e}");
            frame.facts.problems.push((Vec::new(), problem));
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
    Ok(walk_snapshots(repo, &snapshots, damaged, &Progress::default()).affected)
}
