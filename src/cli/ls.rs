use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use rewind::find_node;
use rewind::{ExpansionBudget, Node, NodeKind, Tree};
use rewind::{Id, Repository};
use serde::Serialize;

use super::{FilterArgs, Global};

#[derive(clap::Args)]
pub struct Args {
    /// SNAP[:PATH], e.g. latest:/etc or @2024-06-01:/var/lib
    snapshot: String,
    /// Long listing: mode, owner, size and time
    #[arg(long, short = 'l')]
    long: bool,
    /// Only the entries directly in PATH, not everything below it
    #[arg(long)]
    no_recurse: bool,
    #[command(flatten)]
    filter: FilterArgs,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Entry<'a> {
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    mode: String,
    uid: u32,
    gid: u32,
    user: Option<&'a str>,
    group: Option<&'a str>,
    size: u64,
    mtime: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    link_target: Option<String>,
    links: u64,
    inode: u64,
}

fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::CharDevice => "chardev",
        NodeKind::BlockDevice => "blockdev",
        NodeKind::Socket => "socket",
    }
}

fn mode_string(node: &Node) -> String {
    let kind = match node.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::Socket => 's',
        NodeKind::File => '-',
    };
    let mut s = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (node.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn time_string(node: &Node) -> String {
    chrono::DateTime::from_timestamp(node.mtime.sec, node.mtime.nsec)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let repo = global.open_with_index()?;
    let (snapshot, path) = super::select(&repo, &args.snapshot, &args.filter)?;
    let base = format!("/{}", path.trim_matches('/'));
    let start = find_node(&repo, &snapshot.tree, &path)?;
    let lister = Lister {
        repo: &repo,
        snapshot: snapshot.id.short(),
        budget: global.expansion_budget(&snapshot),
        recurse: !args.no_recurse,
    };
    // Printed as found: a listing of millions of entries is never held whole.
    rewind::with_deep_stack(|| -> Result<()> {
        let mut out = Printer {
            writer: std::io::BufWriter::new(std::io::stdout().lock()),
            json: args.json,
            long: args.long,
            printed: 0,
        };
        out.begin()?;
        match start {
            None => lister.list(&snapshot.tree, "", 0, &mut out)?,
            Some(node) => {
                let depth = base.matches('/').count();
                lister.budget.admit(&node, depth)?;
                let subtree = node.subtree.filter(|_| node.is_dir());
                out.entry(&base, &node)?;
                if let Some(tree) = subtree {
                    lister.list(&tree, base.trim_end_matches('/'), depth, &mut out)?;
                }
            }
        }
        out.end()
    })?;
    Ok(ExitCode::SUCCESS)
}

struct Lister<'a> {
    repo: &'a Repository,
    /// Short id, for warnings.
    snapshot: String,
    budget: ExpansionBudget,
    recurse: bool,
}

impl Lister<'_> {
    /// Prints the entries of `tree`, the directory at `dir` (`depth`
    /// components below the root), and below them when recursing.
    /// A split directory is listed a part at a time, so what is held is
    /// one part of each directory on the path, however wide.
    fn list(&self, tree: &Id, dir: &str, depth: usize, out: &mut Printer) -> Result<()> {
        self.repo
            .for_each_tree_part(tree, |part| self.list_part(part, dir, depth, out))?
    }

    /// Prints the entries of `part`, a directory's tree or a part of it.
    fn list_part(&self, part: Tree, dir: &str, depth: usize, out: &mut Printer) -> Result<()> {
        let (part, not_shown) = part.into_shown();
        for (name, problem) in not_shown {
            let message = rewind::not_shown_message(dir, &name, problem);
            rewind::log::warn(&format!("snapshot {}: {message}", self.snapshot));
        }
        for node in part.nodes {
            self.budget.admit(&node, depth + 1)?;
            let path = format!("{dir}/{}", node.name_lossy());
            out.entry(&path, &node)?;
            if let Some(subtree) = node.subtree.filter(|_| node.is_dir() && self.recurse) {
                self.list(&subtree, &path, depth + 1, out)?;
            }
        }
        Ok(())
    }
}

/// Writes entries as text lines or as the elements of one JSON array.
struct Printer {
    writer: std::io::BufWriter<std::io::StdoutLock<'static>>,
    json: bool,
    long: bool,
    printed: u64,
}

impl Printer {
    fn begin(&mut self) -> Result<()> {
        if self.json {
            self.writer.write_all(b"[")?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &str, n: &Node) -> Result<()> {
        if self.json {
            let entry = Entry {
                path: path.to_string(),
                kind: kind_name(n.kind),
                mode: format!("{:04o}", n.mode),
                uid: n.uid,
                gid: n.gid,
                user: n.user.as_deref(),
                group: n.group.as_deref(),
                size: n.size,
                mtime: time_string(n),
                link_target: (n.kind == NodeKind::Symlink)
                    .then(|| String::from_utf8_lossy(&n.link_target).into_owned()),
                links: n.links,
                inode: n.inode,
            };
            let separator: &[u8] = if self.printed == 0 { b"\n  " } else { b",\n  " };
            self.writer.write_all(separator)?;
            serde_json::to_writer(&mut self.writer, &entry)?;
        } else if self.long {
            let owner = n.user.clone().unwrap_or_else(|| n.uid.to_string());
            let group = n.group.clone().unwrap_or_else(|| n.gid.to_string());
            let target = if n.kind == NodeKind::Symlink {
                format!(" -> {}", String::from_utf8_lossy(&n.link_target))
            } else {
                String::new()
            };
            writeln!(
                self.writer,
                "{} {:<8} {:<8} {:>12} {} {path}{target}",
                mode_string(n),
                owner,
                group,
                n.size,
                time_string(n)
            )?;
        } else {
            writeln!(self.writer, "{path}")?;
        }
        self.printed += 1;
        Ok(())
    }

    fn end(&mut self) -> Result<()> {
        if self.json {
            self.writer.write_all(b"\n]\n")?;
        }
        self.writer.flush()?;
        Ok(())
    }
}
