//! An earlier copy walked beside the snapshot being copied, directory by
//! directory, the way a backup walks its parent snapshot: a directory
//! whose source tree did not change since that copy keeps the tree the
//! copy made, and a chunk that was there already keeps the ids it got,
//! without being read again. What a reference holds is bounded by one
//! directory's width, and only what the destination still indexes is
//! taken from it.

use crate::id::{Id, IdMap};
use crate::repo::Repository;
use crate::tree::{Extent, Tree};

/// One directory of an earlier copy: its tree in the source, and the tree
/// the copy made of it in the destination.
pub(super) struct Reference {
    source: Tree,
    dest: Tree,
}

/// What a reference says of a directory entry's subtree.
pub(super) enum Lean {
    /// The subtree is the one the earlier copy copied: its copy, whose
    /// every blob the destination holds (a committed snapshot names it).
    Copied(Id),
    /// The subtree changed: walk it, beside this reference if there is one.
    Walk(Option<Reference>),
}

impl Reference {
    /// The reference of the directories with these trees, or None if either
    /// does not read: a reference saves reading, it is never needed.
    pub fn load(
        source: &Repository,
        dest: &Repository,
        source_tree: &Id,
        dest_tree: &Id,
    ) -> Option<Reference> {
        Some(Reference {
            source: source.read_tree(source_tree).ok()?,
            dest: dest.read_tree(dest_tree).ok()?,
        })
    }

    /// What this reference says of the entry `name`, whose subtree in the
    /// source is `subtree`.
    pub fn lean(&self, source: &Repository, dest: &Repository, name: &[u8], subtree: &Id) -> Lean {
        let (Some(before), Some(copied)) = (
            self.source.find(name).and_then(|n| n.subtree),
            self.dest.find(name).and_then(|n| n.subtree),
        ) else {
            return Lean::Walk(None);
        };
        if before == *subtree && dest.index().contains(&copied) {
            return Lean::Copied(copied);
        }
        Lean::Walk(Reference::load(source, dest, &before, &copied))
    }

    /// The destination extents the earlier copy gave each source chunk of
    /// this directory's files.
    pub fn chunks(&self) -> IdMap<Vec<Extent>> {
        let mut chunks = IdMap::default();
        for node in self.source.nodes.iter().filter(|n| !n.content.is_empty()) {
            let Some(copied) = self.dest.find(&node.name) else {
                continue;
            };
            if let Some(pairs) = align(&node.content, &copied.content) {
                chunks.extend(pairs);
            }
        }
        chunks
    }
}

/// Pairs each chunk of `source` with the extents that stand for it in
/// `dest`, a copy of the same content (a chunk longer than the
/// destination's chunker allows was cut in pieces). None if they do not
/// line up, as when `dest` is not a copy of `source`.
fn align(source: &[Extent], dest: &[Extent]) -> Option<Vec<(Id, Vec<Extent>)>> {
    let mut pairs = Vec::new();
    let mut dest = dest.iter().peekable();
    for extent in source {
        match *extent {
            Extent::Hole { len } => match dest.next() {
                Some(Extent::Hole { len: copied }) if *copied == len => {}
                _ => return None,
            },
            Extent::Data { id, len } => {
                let mut pieces = Vec::new();
                let mut covered = 0u64;
                while covered < len as u64 {
                    match dest.next() {
                        Some(piece @ Extent::Data { len: piece_len, .. }) if *piece_len > 0 => {
                            covered += *piece_len as u64;
                            pieces.push(*piece);
                        }
                        _ => return None,
                    }
                }
                if covered != len as u64 {
                    return None;
                }
                pairs.push((id, pieces));
            }
        }
    }
    dest.next().is_none().then_some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(byte: u8, len: u32) -> Extent {
        Extent::Data {
            id: Id([byte; 32]),
            len,
        }
    }

    #[test]
    fn chunks_pair_with_their_copies_and_pieces() {
        let source = [data(1, 10), Extent::Hole { len: 5 }, data(2, 8)];
        let dest = [
            data(11, 10),
            Extent::Hole { len: 5 },
            data(21, 4),
            data(22, 4),
        ];
        let pairs = align(&source, &dest).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0], (Id([1; 32]), vec![data(11, 10)]));
        assert_eq!(pairs[1], (Id([2; 32]), vec![data(21, 4), data(22, 4)]));
    }

    #[test]
    fn content_that_does_not_line_up_pairs_nothing() {
        // A destination piece that crosses a source chunk's end.
        assert!(align(&[data(1, 4), data(2, 4)], &[data(9, 8)]).is_none());
        // Extra or missing extents, holes of another length.
        assert!(align(&[data(1, 4)], &[data(9, 4), data(8, 1)]).is_none());
        assert!(align(&[data(1, 4), data(2, 4)], &[data(9, 4)]).is_none());
        assert!(align(&[Extent::Hole { len: 3 }], &[Extent::Hole { len: 4 }]).is_none());
        assert!(align(&[data(1, 4)], &[Extent::Hole { len: 4 }]).is_none());
    }
}
