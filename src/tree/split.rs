//! Wide directories, stored split (tree version 2): the entries go into
//! several version 1 trees, the parts, cut by name, and the directory's
//! own tree (its top) names the parts in order, each with its first name
//! and its number of entries. The writer holds one part at a time; a
//! reader finds a name by the parts' first names, then inside one part.
//! rewind-format(5), TREES, has the bytes; docs/design.md §6 the why.

use serde::{Deserialize, Serialize};

use super::{Node, Tree, SPLIT_TREE_VERSION, TREE_VERSION};
use crate::error::{Error, Result};
use crate::id::Id;

/// A directory whose entries encode to more than this is stored split.
pub const SPLIT_BYTES: usize = 1 << 20;
/// A part is cut before an entry that would take it past this.
pub const PART_MAX_BYTES: usize = 1 << 20;
/// A part ends after an entry whose name is a cut point (see
/// [`is_cut_point`]) once it holds this many entries.
pub const PART_MIN_ENTRIES: u32 = 64;

/// One part of a split directory, as its top names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// The name of the part's first entry: every entry of the part sorts at
    /// or after it, and before the next part's.
    pub first: Vec<u8>,
    /// How many entries the part holds.
    pub entries: u32,
    /// The part's tree (version 1).
    pub tree: Id,
}

/// Whether a part may end after the entry `name`: about one name in 1,024.
/// Cuts that depend on names alone keep a directory's other parts, and so
/// their blobs, unchanged when a file is added or changed.
pub fn is_cut_point(name: &[u8]) -> bool {
    // FNV-1a, 64 bits, then MurmurHash3's finalizer, without which the
    // last bytes of a name would barely reach the top bits: cheap beside
    // the walk, and the format fixes these exact bits.
    let mut hash = name.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    hash >> 54 == 0
}

/// Checks the parts a top names: at least one, each with entries, first
/// names strictly increasing; what the format forbids is damage.
pub(super) fn check_parts(parts: &[Part]) -> Result<()> {
    if parts.is_empty() {
        return Err(Error::corrupt("a split tree names no part"));
    }
    if let Some(i) = parts.iter().position(|p| p.entries == 0) {
        return Err(Error::corrupt(format!("part {i} of a split tree is empty")));
    }
    if let Some(i) = parts.windows(2).position(|w| w[0].first >= w[1].first) {
        return Err(Error::corrupt(format!(
            "part {} of a split tree does not start after part {i}",
            i + 1
        )));
    }
    Ok(())
}

/// Whether `name` belongs in part `index` of `parts`: at or after its
/// first name, before the next part's.
pub fn in_part(parts: &[Part], index: usize, name: &[u8]) -> bool {
    name >= parts[index].first.as_slice()
        && parts
            .get(index + 1)
            .is_none_or(|next| name < next.first.as_slice())
}

/// The part of `parts` in which `name` would be, if any.
pub fn part_of(parts: &[Part], name: &[u8]) -> Option<usize> {
    parts
        .partition_point(|p| p.first.as_slice() <= name)
        .checked_sub(1)
}

/// Checks that `part`, the decoded tree of part `index` of `parts`, is
/// what the top says: a whole tree of the announced number of entries,
/// each in its range.
pub fn check_part(parts: &[Part], index: usize, part: &Tree) -> Result<()> {
    let meta = &parts[index];
    if !part.parts.is_empty() {
        return Err(Error::corrupt(format!(
            "part {index} ({}) of a split tree is split itself",
            meta.tree.short()
        )));
    }
    if part.nodes.len() != meta.entries as usize {
        return Err(Error::corrupt(format!(
            "part {index} ({}) of a split tree holds {} entries, not the {} its top says",
            meta.tree.short(),
            part.nodes.len(),
            meta.entries
        )));
    }
    if let Some(node) = part.nodes.iter().find(|n| !in_part(parts, index, &n.name)) {
        return Err(Error::corrupt(format!(
            "part {index} ({}) of a split tree holds \"{}\", which sorts outside its range",
            meta.tree.short(),
            node.name_lossy().escape_debug()
        )));
    }
    Ok(())
}

/// Encodes a directory's entries as they come, in name order, holding one
/// part at a time once the directory is known to need splitting. Until
/// then (at most [`SPLIT_BYTES`]) the encoded entries are kept, and a
/// directory that ends within that is one version 1 tree, byte for byte
/// what [`Tree::encode`] gives, so it keeps the id it always had.
#[derive(Default)]
pub struct TreeWriter {
    /// Parts cut while the directory may still fit in one tree.
    held: Vec<PartBuffer>,
    held_bytes: usize,
    current: PartBuffer,
    split: bool,
    /// The parts stored, once split.
    parts: Vec<Part>,
}

#[derive(Default)]
struct PartBuffer {
    /// The entries, each as postcard encodes a node.
    encoded: Vec<u8>,
    entries: u32,
    first: Vec<u8>,
}

impl PartBuffer {
    /// The version 1 tree of these entries.
    fn tree_bytes(&self) -> Vec<u8> {
        tree_bytes([self], self.entries as usize)
    }
}

/// A version 1 tree of `count` entries, encoded in `buffers`.
fn tree_bytes<'a>(
    buffers: impl IntoIterator<Item = &'a PartBuffer> + Clone,
    count: usize,
) -> Vec<u8> {
    let len = buffers
        .clone()
        .into_iter()
        .map(|b| b.encoded.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(len + 11);
    out.push(TREE_VERSION);
    // A sequence's length, as postcard writes it.
    out = postcard::to_extend(&count, out).expect("a length serializes");
    for buffer in buffers {
        out.extend_from_slice(&buffer.encoded);
    }
    out
}

impl TreeWriter {
    pub fn new() -> TreeWriter {
        TreeWriter::default()
    }

    /// Entries pushed so far.
    pub fn entries(&self) -> u64 {
        self.parts.iter().map(|p| p.entries as u64).sum::<u64>()
            + self.held.iter().map(|p| p.entries as u64).sum::<u64>()
            + self.current.entries as u64
    }

    /// Adds the next entry (names must come in increasing order); `store`
    /// stores a finished part's tree and gives its id.
    pub fn push(
        &mut self,
        node: &Node,
        store: &mut impl FnMut(Vec<u8>) -> Result<Id>,
    ) -> Result<()> {
        let before = self.current.encoded.len();
        self.current.encoded = postcard::to_extend(node, std::mem::take(&mut self.current.encoded))
            .expect("nodes serialize");
        let added = self.current.encoded.len() - before;
        if self.current.entries > 0 && before + added > PART_MAX_BYTES {
            // The entry starts the next part.
            let encoded = self.current.encoded.split_off(before);
            self.cut(store)?;
            self.current.encoded = encoded;
        }
        if self.current.entries == 0 {
            self.current.first = node.name.clone();
        }
        self.current.entries += 1;
        if !self.split && self.held_bytes + self.current.encoded.len() > SPLIT_BYTES {
            self.split = true;
            for held in std::mem::take(&mut self.held) {
                self.store_part(held, store)?;
            }
            self.held_bytes = 0;
        }
        if self.current.entries >= PART_MIN_ENTRIES && is_cut_point(&node.name) {
            self.cut(store)?;
        }
        Ok(())
    }

    /// Ends the current part.
    fn cut(&mut self, store: &mut impl FnMut(Vec<u8>) -> Result<Id>) -> Result<()> {
        let part = std::mem::take(&mut self.current);
        if self.split {
            self.store_part(part, store)
        } else {
            self.held_bytes += part.encoded.len();
            self.held.push(part);
            Ok(())
        }
    }

    fn store_part(
        &mut self,
        part: PartBuffer,
        store: &mut impl FnMut(Vec<u8>) -> Result<Id>,
    ) -> Result<()> {
        let tree = store(part.tree_bytes())?;
        self.parts.push(Part {
            first: part.first,
            entries: part.entries,
            tree,
        });
        Ok(())
    }

    /// The directory's own tree, encoded: all its entries (version 1), or
    /// the parts they were stored in (version 2). The caller stores it.
    pub fn finish(mut self, store: &mut impl FnMut(Vec<u8>) -> Result<Id>) -> Result<Vec<u8>> {
        if !self.split {
            let count = self.entries() as usize;
            return Ok(tree_bytes(
                self.held.iter().chain(std::iter::once(&self.current)),
                count,
            ));
        }
        if self.parts.is_empty() {
            // One entry larger than a part, alone in its directory: it is
            // the whole directory.
            return Ok(self.current.tree_bytes());
        }
        if self.current.entries > 0 {
            let last = std::mem::take(&mut self.current);
            self.store_part(last, store)?;
        }
        Ok(encode_top(&self.parts))
    }
}

/// The top of a directory split into `parts`.
pub(super) fn encode_top(parts: &[Part]) -> Vec<u8> {
    let out = vec![SPLIT_TREE_VERSION];
    postcard::to_extend(parts, out).expect("parts serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tests::sample_node;
    use crate::tree::Extent;

    fn nodes(count: usize) -> Vec<Node> {
        (0..count)
            .map(|i| sample_node(format!("file-{i:08}").as_bytes()))
            .collect()
    }

    /// Writes `nodes`, keeping what `store` got: (top, parts by id).
    fn write(nodes: &[Node]) -> (Vec<u8>, Vec<(Id, Vec<u8>)>) {
        let mut stored = Vec::new();
        let mut store = |bytes: Vec<u8>| {
            let id = Id(*blake3::hash(&bytes).as_bytes());
            stored.push((id, bytes));
            Ok(id)
        };
        let mut writer = TreeWriter::new();
        for node in nodes {
            writer.push(node, &mut store).unwrap();
        }
        let top = writer.finish(&mut store).unwrap();
        (top, stored)
    }

    #[test]
    fn a_directory_that_fits_is_one_tree_as_before() {
        for count in [0, 1, 63, 2_000] {
            let nodes = nodes(count);
            let (top, stored) = write(&nodes);
            assert!(stored.is_empty(), "{count}");
            let tree = Tree::whole(nodes);
            assert_eq!(top, tree.encode(), "{count}");
        }
    }

    #[test]
    fn a_wide_directory_is_split_and_reads_back_whole() {
        let nodes = nodes(40_000);
        let (top, stored) = write(&nodes);
        let top = Tree::decode(&top).unwrap();
        assert!(top.nodes.is_empty());
        assert_eq!(top.parts.len(), stored.len());
        assert!(stored.len() > 10, "{} parts", stored.len());
        let mut read = Vec::new();
        for (index, (id, bytes)) in stored.iter().enumerate() {
            assert!(bytes.len() <= PART_MAX_BYTES + 16);
            assert_eq!(top.parts[index].tree, *id);
            let part = Tree::decode(bytes).unwrap();
            check_part(&top.parts, index, &part).unwrap();
            read.extend(part.nodes);
        }
        assert_eq!(read, nodes);
        assert_eq!(part_of(&top.parts, b"a"), None);
        assert_eq!(part_of(&top.parts, b"file-00000000"), Some(0));
        assert_eq!(part_of(&top.parts, b"z"), Some(top.parts.len() - 1));
        let second = &top.parts[1].first;
        assert_eq!(part_of(&top.parts, second), Some(1));
        assert!(in_part(&top.parts, 1, second) && !in_part(&top.parts, 0, second));
    }

    #[test]
    fn an_entry_larger_than_a_part_alone_or_among_others_reads_back() {
        let mut huge = sample_node(b"huge");
        huge.content = (0..40_000u32)
            .map(|i| Extent::Data {
                id: Id([(i % 251) as u8; 32]),
                len: 1 << 20,
            })
            .collect();
        for nodes in [
            vec![huge.clone()],
            vec![sample_node(b"a"), huge.clone()],
            vec![huge.clone(), sample_node(b"z")],
        ] {
            let (top, stored) = write(&nodes);
            let top = Tree::decode(&top).unwrap();
            let mut read = Vec::new();
            if top.is_split() {
                for (index, (_, bytes)) in stored.iter().enumerate() {
                    let part = Tree::decode(bytes).unwrap();
                    check_part(&top.parts, index, &part).unwrap();
                    read.extend(part.nodes);
                }
            } else {
                read = top.nodes;
            }
            assert_eq!(read, nodes);
        }
    }

    #[test]
    fn a_changed_entry_changes_one_part() {
        let mut nodes = nodes(40_000);
        let (_, before) = write(&nodes);
        nodes[20_000].size += 1;
        nodes.insert(30_000, sample_node(b"file-00029999x"));
        let (_, after) = write(&nodes);
        let before: std::collections::HashSet<Id> = before.iter().map(|(id, _)| *id).collect();
        let new = after.iter().filter(|(id, _)| !before.contains(id)).count();
        assert_eq!(new, 2, "one part for each change");
    }

    #[test]
    fn a_top_that_breaks_the_rules_is_damage() {
        let part = |first: &[u8], entries| Part {
            first: first.to_vec(),
            entries,
            tree: Id([7; 32]),
        };
        for parts in [
            vec![],
            vec![part(b"a", 1), part(b"a", 1)],
            vec![part(b"b", 1), part(b"a", 1)],
            vec![part(b"a", 0), part(b"b", 1)],
        ] {
            let err = Tree::decode(&encode_top(&parts)).unwrap_err();
            assert_eq!(err.kind(), crate::error::ErrorKind::Corrupt, "{err}");
        }
        let parts = vec![part(b"b", 1), part(b"d", 1)];
        let outside = Tree::whole(vec![sample_node(b"d")]);
        let err = check_part(&parts, 0, &outside).unwrap_err();
        assert!(err.to_string().contains("outside its range"), "{err}");
        let short = Tree::whole(vec![]);
        let err = check_part(&parts, 1, &short).unwrap_err();
        assert!(err.to_string().contains("holds 0 entries"), "{err}");
    }
}
