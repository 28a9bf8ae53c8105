//! A directory of an earlier snapshot, read by name one part at a time:
//! what a backup (its parent) and a copy (an earlier copy) walk beside the
//! directory they write. Names are asked in increasing order, so each part
//! of a split directory is read once, and only one is held.

use super::Repository;
use crate::error::Result;
use crate::id::Id;
use crate::tree::{check_part, part_of, Node, Tree};

pub struct DirCursor<'r> {
    repo: &'r Repository,
    /// The directory's tree: whole, or the top of a split one.
    top: Tree,
    /// The part of a split directory read last, by its number, or None
    /// when it does not read (the entries it holds are then not found).
    part: Option<(usize, Option<Tree>)>,
}

impl<'r> DirCursor<'r> {
    /// The directory whose tree is `id`.
    pub fn open(repo: &'r Repository, id: &Id) -> Result<DirCursor<'r>> {
        Ok(DirCursor {
            repo,
            top: repo.read_tree_blob(id)?,
            part: None,
        })
    }

    /// The entry named `name`. An earlier snapshot only saves work, so a
    /// part that does not read is as if its entries were not there.
    pub fn find(&mut self, name: &[u8]) -> Option<&Node> {
        if !self.top.is_split() {
            return self.top.find(name);
        }
        let wanted = part_of(&self.top.parts, name)?;
        if self.part.as_ref().is_none_or(|(held, _)| *held != wanted) {
            let read = self
                .repo
                .read_tree_blob(&self.top.parts[wanted].tree)
                .ok()
                .filter(|part| check_part(&self.top.parts, wanted, part).is_ok());
            self.part = Some((wanted, read));
        }
        let (_, part) = self.part.as_ref()?;
        part.as_ref()?.find(name)
    }
}
