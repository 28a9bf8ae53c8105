//! Inode numbers drawn from what an inode stands for: a keyed hash of its
//! directory's number and its name, or, for a hard-linked file, of its
//! snapshot view and its original device and inode. A file the kernel
//! forgot and looks up again gets its old number back without the mount
//! remembering anything of it, so numbers stay stable for the life of the
//! mount while only the inodes the kernel holds are kept. The key of the
//! hash is drawn anew for each mount: a crafted snapshot cannot aim at a
//! collision, and one by chance (about one in 2^64 per pair) only moves
//! the later inode to another number (see `inodes.rs`).

use std::hash::{BuildHasher, RandomState};

/// An inode's number.
pub type Ino = u64;
/// The mount's root.
pub const ROOT_INO: Ino = 1;

/// What an inode stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    /// `name` in directory `parent`.
    Name { parent: Ino, name: &'a [u8] },
    /// A file with several links, in the snapshot view (the `@<time>`
    /// directory's inode) `view`: every link is this one inode.
    Hardlink { view: Ino, device: u64, inode: u64 },
}

/// A [`Key`] kept for the rare inode that a collision moved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnedKey {
    Name(Ino, Box<[u8]>),
    Hardlink(Ino, u64, u64),
}

impl Key<'_> {
    pub fn to_owned(self) -> OwnedKey {
        match self {
            Key::Name { parent, name } => OwnedKey::Name(parent, name.into()),
            Key::Hardlink {
                view,
                device,
                inode,
            } => OwnedKey::Hardlink(view, device, inode),
        }
    }
}

pub struct Numbers {
    hasher: RandomState,
}

impl Numbers {
    pub fn new() -> Numbers {
        Numbers {
            hasher: RandomState::new(),
        }
    }

    /// The number `key` gets at its `attempt`th try (0 first; the next when
    /// the number is taken).
    pub fn number(&self, key: Key, attempt: u32) -> Ino {
        match key {
            Key::Name { parent, name } => self.hasher.hash_one((0u8, parent, name, attempt)),
            Key::Hardlink {
                view,
                device,
                inode,
            } => self.hasher.hash_one((1u8, view, device, inode, attempt)),
        }
    }

    /// Whether the kernel may be given `ino` at all: not 0 (no inode), the
    /// root's, nor the 32-bit "unknown inode" some kernels read in listings.
    pub fn usable(ino: Ino) -> bool {
        ino > ROOT_INO && ino != 0xffff_ffff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_has_one_number_per_attempt_and_kinds_differ() {
        let numbers = Numbers::new();
        let name = Key::Name {
            parent: 7,
            name: b"a",
        };
        assert_eq!(numbers.number(name, 0), numbers.number(name, 0));
        assert_ne!(numbers.number(name, 0), numbers.number(name, 1));
        let other = Key::Name {
            parent: 8,
            name: b"a",
        };
        assert_ne!(numbers.number(name, 0), numbers.number(other, 0));
        let link = Key::Hardlink {
            view: 7,
            device: 1,
            inode: 2,
        };
        assert_ne!(numbers.number(name, 0), numbers.number(link, 0));
        assert_ne!(
            Numbers::new().number(name, 0),
            numbers.number(name, 0),
            "each mount draws its own key"
        );
    }
}
