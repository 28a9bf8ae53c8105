//! Restoring a snapshot (or part of it) into a directory. The tree is
//! walked depth first and streamed: directories are created as they are
//! reached, and their files are handed in windows of bounded size to
//! workers that write them on several threads; after a window's files come
//! its hardlinks, and the metadata of the directories whose subtrees it
//! ended, so their times survive the writes into them. Memory follows the
//! windows in flight and the depth of the tree, not the number of files
//! (`docs/design.md`, section 6).
//!
//! Nothing is ever written outside the target: every name is checked, and
//! every operation goes through [`target::Target`], which resolves each path
//! beneath the target's directory descriptor through no symlink, and sets
//! metadata on descriptors, never by name (see `SECURITY.md`).
//!
//! What is already in the target is handled by [`Overwrite`]: by default an
//! existing file whose content already matches the snapshot's chunk ids is
//! kept, so a restore over a partly intact tree, or one started again after
//! an interruption, writes only what is missing or wrong.
//!
//! Beside restore itself this module holds what compares snapshots with
//! files: [`diff`] and the restore drill (`rewind restore-test`), [`drill`].

mod batches;
mod content;
pub mod diff;
pub mod drill;
mod expansion;
mod files;
mod filter;
mod parts;
mod plan;
mod stream;
mod target;
mod windows;
mod work;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::progress::{Progress, Totals};
use crate::repo::{Id, Repository};
use crate::tree::{ExpansionBudget, ExpansionLimits, Node};
use expansion::Expansion;
use plan::Planner;
use target::Target;
use work::Tally;

pub use filter::{PathFilter, Sample};

/// What to do with an entry that already exists in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Leave it alone, content and metadata.
    Never,
    /// Keep it if it is already what the snapshot has (a file: same size
    /// and every chunk id; a link or device: same target), else replace it.
    /// Metadata is restored either way.
    #[default]
    IfChanged,
    /// Replace it.
    Always,
}

/// A flag that a signal handler sets to stop long work early; the default
/// never stops anything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cancel(Option<&'static AtomicBool>);

impl Cancel {
    pub fn on(flag: &'static AtomicBool) -> Cancel {
        Cancel(Some(flag))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// An `Interrupted` error once the flag is set.
    pub fn check(&self) -> Result<()> {
        if self.is_set() {
            Err(Error::interrupted("interrupted"))
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Only paths (as in the snapshot) matching one of these, and what they contain.
    pub includes: Vec<String>,
    /// Not paths matching one of these, nor what they contain.
    pub excludes: Vec<String>,
    /// Only files in this sample (directories are all created).
    pub sample: Option<Sample>,
    pub overwrite: Overwrite,
    /// Delete what the target has and the snapshot does not (within the
    /// includes and excludes), and replace entries of another type.
    pub delete: bool,
    /// Change nothing; list in the report what would be done.
    pub dry_run: bool,
    /// Re-read every restored file and compare it with the snapshot.
    pub verify: bool,
    pub threads: usize,
    /// Files done and their bytes, of those the restore writes or checks.
    pub progress: Progress,
    pub cancel: Cancel,
    /// How far the snapshot may expand (shared subtrees make a few objects
    /// stand for any number of paths).
    pub limits: ExpansionLimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Create an entry that does not exist.
    Create,
    /// Remove what is there and create the snapshot's entry.
    Replace,
    /// What is there already matches; only its metadata is set.
    Keep,
    /// Something is there and `--overwrite never` leaves it.
    Skip,
    /// Not in the snapshot: removed by `--delete`.
    Delete,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Skip => "skip",
            Action::Delete => "delete",
        }
    }
}

/// One step of a dry run.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub action: Action,
    pub path: PathBuf,
}

/// An entry that could not be restored.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// The entry's path in the snapshot.
    pub path: String,
    pub error: String,
}

#[derive(Debug, Default, Serialize)]
pub struct RestoreReport {
    /// Regular files that are now as in the snapshot (written or kept).
    pub files: u64,
    pub dirs: u64,
    /// Symlinks, fifos, devices and sockets.
    pub other: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries that already matched and were not written again.
    pub kept: u64,
    pub kept_bytes: u64,
    /// Existing entries left alone by `Overwrite::Never`.
    pub skipped: u64,
    /// Entries removed by `delete`.
    pub deleted: u64,
    /// Files checked against their chunk ids after writing (or kept after a check).
    pub verified: u64,
    /// The first [`MAX_LISTED_FAILURES`] entries that could not be restored.
    pub errors: Vec<Failure>,
    /// Entries that could not be restored beyond those listed in `errors`.
    pub errors_not_listed: u64,
    /// With `dry_run`: what a restore would do, in order.
    pub planned: Vec<Planned>,
}

/// The most failures a report lists; past it they are only counted, so that
/// a restore in which every one of millions of files fails (a full disk, a
/// lost pack) does not hold a message for each.
pub const MAX_LISTED_FAILURES: usize = 10_000;

/// Lists `item` in `listed` while it holds fewer than
/// [`MAX_LISTED_FAILURES`]; past that only counts it in `not_listed`. The
/// one cap of restore's, diff's and restore-test's failures.
fn list_or_count<T>(listed: &mut Vec<T>, not_listed: &mut u64, item: T) {
    if listed.len() < MAX_LISTED_FAILURES {
        listed.push(item);
    } else {
        *not_listed += 1;
    }
}

impl RestoreReport {
    /// How many entries could not be restored, listed or not.
    pub fn failed(&self) -> u64 {
        self.errors.len() as u64 + self.errors_not_listed
    }

    fn add_failure(&mut self, failure: Failure) {
        list_or_count(&mut self.errors, &mut self.errors_not_listed, failure);
    }
}

/// Finds the node at `path` in a snapshot tree. The root has no node: `None`.
/// A tree's entries are taken as [`crate::tree::Tree::into_shown`] shows
/// them: of two entries with one name, the first.
pub fn find_node(repo: &Repository, root: &Id, path: &str) -> Result<Option<Node>> {
    let shown = |id: &Id| repo.read_tree(id).map(|tree| tree.into_shown().0);
    let mut tree = shown(root)?;
    let mut found: Option<Node> = None;
    let components: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    for (i, name) in components.iter().enumerate() {
        let node = tree
            .find(name.as_bytes())
            .cloned()
            .ok_or_else(|| Error::usage(format!("{path} is not in the snapshot")))?;
        if i + 1 < components.len() {
            let subtree = node
                .subtree
                .filter(|_| node.is_dir())
                .ok_or_else(|| Error::usage(format!("{path}: {name} is not a directory")))?;
            tree = shown(&subtree)?;
        }
        found = Some(node);
    }
    Ok(found)
}

/// Paths of jobs (`rel`) are relative to the target.
struct FileJob {
    rel: PathBuf,
    snapshot_path: String,
    node: Node,
    /// Its directory was made by this restore, so nothing else can be at
    /// `rel`: it is created without looking first.
    fresh: bool,
}

struct DirJob {
    rel: PathBuf,
    snapshot_path: String,
    node: Node,
    inode: plan::DirInode,
}

/// A hardlinked entry after the first of its group.
struct LinkJob {
    rel: PathBuf,
    snapshot_path: String,
    node: Node,
    first: PathBuf,
}

/// What the walk and the workers share, unchanged while they run.
struct Restorer<'a> {
    repo: &'a Repository,
    target: Target,
    budget: ExpansionBudget,
    options: &'a RestoreOptions,
    filter: PathFilter,
    /// Every path of each hardlinked file, by (device, inode) in the
    /// snapshot; filled only when existing files may be kept (see
    /// `links_inside` in `files.rs`).
    link_groups: HashMap<(u64, u64), Vec<PathBuf>>,
    threads: usize,
}

/// Restores `path` of the snapshot whose root tree is `root` into `target`:
/// a directory's contents go into `target`, a file goes to `target/<name>`.
/// Returns `ErrorKind::Interrupted` when `options.cancel` stops it; what
/// was written so far is complete and correct, and a second run keeps it.
pub fn restore(
    repo: &Repository,
    root: &Id,
    path: &str,
    target: &Path,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let start = find_node(repo, root, path)?;
    let target_created = prepare_target(target, options)?;
    let mut restorer = Restorer {
        repo,
        target: Target::open(target, options.dry_run)?,
        budget: ExpansionBudget::new(format!("with root tree {}", root.short()), options.limits),
        options,
        filter: PathFilter::new(&options.includes, &options.excludes, options.sample)?,
        link_groups: HashMap::new(),
        threads: worker_threads(repo, options),
    };
    let snapshot_path = format!("/{}", path.trim_matches('/'));
    let tree_to_plan = match &start {
        None => Some(*root),
        Some(node) if node.is_dir() => Some(node.subtree.unwrap_or_default()),
        Some(_) => None,
    };
    let measure = match tree_to_plan {
        Some(tree) => Some(crate::tree::with_deep_stack(|| {
            let start_depth =
                snapshot_path.matches('/').count() - usize::from(snapshot_path == "/");
            let mut expansion = Expansion::new(repo, &restorer.budget);
            let measure = expansion.check(&tree, start_depth)?;
            if measure.links && options.overwrite == Overwrite::IfChanged {
                let dir = snapshot_path.trim_end_matches('/');
                restorer.link_groups =
                    expansion.link_groups(&tree, Path::new(""), dir, &restorer.filter)?;
            }
            Ok::<_, Error>(measure)
        })?),
        None => None,
    };
    options
        .progress
        .begin("restore", "files", totals(&start, measure, options));
    let tally = Tally::default();
    let restorer = &restorer;
    // A target this restore made holds nothing yet (a dry run makes none).
    let fresh = target_created && !options.dry_run;
    let report = stream::run(restorer, &tally, |planner: &mut Planner| match start {
        None => {
            if target_created {
                planner.note(Action::Create, Path::new(""));
            }
            planner.plan_subtree(root, Path::new(""), "", fresh)
        }
        Some(node) if node.is_dir() => {
            if target_created {
                planner.note(Action::Create, Path::new(""));
            }
            let dir = snapshot_path.trim_end_matches('/');
            let inode = plan::DirInode {
                id: restorer
                    .target
                    .lstat(Path::new(""))
                    .ok()
                    .map(|s| (s.st_dev, s.st_ino)),
                created: target_created,
                empty: false,
            };
            planner.plan_subtree(&node.subtree.unwrap_or_default(), Path::new(""), dir, fresh)?;
            planner.finish_dir(DirJob {
                rel: PathBuf::new(),
                snapshot_path: snapshot_path.clone(),
                node,
                inode,
            });
            Ok(())
        }
        Some(node) => {
            if target_created {
                planner.note(Action::Create, Path::new(""));
            }
            let parent = snapshot_path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            planner.plan_node(node, Path::new(""), parent, fresh)
        }
    })?;
    Ok(report)
}

/// Local: twice the CPUs (reads and writes overlap). Object storage: as
/// many as its requests in flight, since each small file waits for a
/// round trip.
fn worker_threads(repo: &Repository, options: &RestoreOptions) -> usize {
    if options.threads > 0 {
        return options.threads;
    }
    let local = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2)
        * 2;
    repo.requests_in_flight().unwrap_or(0).max(local)
}

/// The progress's totals, from the pass over the trees that checked the
/// snapshot's expansion: exact for a whole tree (a hardlinked file counts
/// once per link); unknown when globs or a sample take only part of it.
fn totals(
    start: &Option<Node>,
    measure: Option<expansion::Measure>,
    options: &RestoreOptions,
) -> Totals {
    let filtered =
        !options.includes.is_empty() || !options.excludes.is_empty() || options.sample.is_some();
    match (start, measure) {
        _ if filtered => Totals::UNKNOWN,
        (_, Some(m)) => Totals::known(Some(m.files), Some(m.bytes)),
        (Some(node), None) if node.kind == crate::tree::NodeKind::File => {
            Totals::known(Some(1), Some(node.size))
        }
        _ => Totals::known(Some(0), Some(0)),
    }
}

/// Creates the target if it is missing; returns whether it was created.
/// The target itself may be a symlink to a directory: the admin named it.
fn prepare_target(target: &Path, options: &RestoreOptions) -> Result<bool> {
    match std::fs::metadata(target) {
        Ok(m) if m.is_dir() => Ok(false),
        Ok(_) => Err(Error::usage(format!(
            "the target {} exists and is not a directory",
            target.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !options.dry_run {
                std::fs::create_dir_all(target).map_err(|e| {
                    Error::io(format!("cannot create the target {}", target.display()), e)
                })?;
            }
            Ok(true)
        }
        Err(e) => Err(Error::io(
            format!("cannot use the target {}", target.display()),
            e,
        )),
    }
}
