use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use rewind::repo::Repository;
use rewind::restore::find_node;
use rewind::tree::{Node, NodeKind};
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
    let mut entries: Vec<(String, Node)> = Vec::new();
    let start = find_node(&repo, &snapshot.tree, &path)?;
    rewind::tree::with_deep_stack(|| -> Result<()> {
        match start {
            None => collect(&repo, &snapshot.tree, "", !args.no_recurse, 0, &mut entries),
            Some(node) => {
                let subtree = node.subtree.filter(|_| node.is_dir());
                let dir = base.trim_end_matches('/').to_string();
                entries.push((base.clone(), node));
                match subtree {
                    Some(tree) => collect(&repo, &tree, &dir, !args.no_recurse, 0, &mut entries),
                    None => Ok(()),
                }
            }
        }
    })?;
    if args.json {
        let list: Vec<Entry> = entries
            .iter()
            .map(|(path, n)| Entry {
                path: path.clone(),
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
            })
            .collect();
        super::print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (path, n) in &entries {
        if args.long {
            let owner = n.user.clone().unwrap_or_else(|| n.uid.to_string());
            let group = n.group.clone().unwrap_or_else(|| n.gid.to_string());
            let target = if n.kind == NodeKind::Symlink {
                format!(" -> {}", String::from_utf8_lossy(&n.link_target))
            } else {
                String::new()
            };
            writeln!(
                out,
                "{} {:<8} {:<8} {:>12} {} {path}{target}",
                mode_string(n),
                owner,
                group,
                n.size,
                time_string(n)
            )?;
        } else {
            writeln!(out, "{path}")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn collect(
    repo: &Repository,
    tree: &rewind::repo::Id,
    dir: &str,
    recurse: bool,
    depth: usize,
    out: &mut Vec<(String, Node)>,
) -> Result<()> {
    if depth > rewind::tree::MAX_DEPTH {
        anyhow::bail!(
            "directories nest deeper than {} levels: the snapshot is malformed",
            rewind::tree::MAX_DEPTH
        );
    }
    for node in repo.read_tree(tree)?.nodes {
        let path = format!("{dir}/{}", node.name_lossy());
        let subtree = node.subtree.filter(|_| node.is_dir() && recurse);
        out.push((path.clone(), node));
        if let Some(subtree) = subtree {
            collect(repo, &subtree, &path, recurse, depth + 1, out)?;
        }
    }
    Ok(())
}
