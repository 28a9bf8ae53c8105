//! rewind: deduplicated, compressed, encrypted backups whose snapshots mount
//! read-only through FUSE. The binary is a thin layer over this library.

pub mod backend;
pub mod backup;
pub mod check;
pub mod chunker;
pub mod error;
pub mod fuse;
pub mod host;
pub mod id;
pub mod log;
pub mod mount;
pub mod parallel;
pub mod repo;
pub mod restore;
pub mod scrub;
pub mod selector;
pub mod tree;
pub mod vfs;

pub use error::{Error, ErrorKind, Result};
