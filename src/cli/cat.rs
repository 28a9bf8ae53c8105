use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Result};
use rewind::find_node;
use rewind::{Extent, NodeKind};

use super::{FilterArgs, Global};

#[derive(clap::Args)]
pub struct Args {
    /// SNAP:PATH of a file, e.g. latest:/etc/hosts
    snapshot: String,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &Global, args: &Args) -> Result<ExitCode> {
    let repo = global.open_with_index()?;
    let (snapshot, path) = super::select(&repo, &args.snapshot, &args.filter)?;
    let Some(node) = find_node(&repo, &snapshot.tree, &path)? else {
        bail!("{}: give a file as SNAP:PATH", args.snapshot);
    };
    if node.kind != NodeKind::File {
        bail!(
            "{path} is not a regular file in snapshot {}",
            snapshot.id.short()
        );
    }
    global.trail().snapshot(snapshot.id);
    let mut out = std::io::stdout().lock();
    let zeros = vec![0u8; 1 << 20];
    let mut written = 0u64;
    for extent in &node.content {
        match extent {
            Extent::Data { id, .. } => {
                let data = repo.read_blob(id)?;
                out.write_all(&data)?;
                written += data.len() as u64;
            }
            Extent::Hole { len } => {
                let mut left = *len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    out.write_all(&zeros[..n])?;
                    left -= n as u64;
                }
                written += len;
            }
        }
    }
    out.flush()?;
    global.trail().bytes(|b| b.restored = Some(written));
    Ok(ExitCode::SUCCESS)
}
