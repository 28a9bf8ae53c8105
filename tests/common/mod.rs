//! Helpers shared by the integration tests, one module per concern. Test
//! files declare `mod common;` and `use common::*;`; the helper suites
//! (`tests/mount_util`, `tests/scrub_util`) build on `crate::common`.

// Each test file is its own crate and uses only some of these helpers; the
// rest would be reported as dead code in every one of them.
#![allow(dead_code)]

mod binary;
mod command;
mod counting;
mod craft;
mod debian;
mod files;
mod fstab;
mod garage;
mod history;
mod manifest;
mod moto;
mod mounts;
mod peak;
mod prune;
mod rng;
mod s3_server;
mod trees;

// Re-exported so that test files `use` one path; a test file that uses
// nothing of one module would otherwise be told its import is unused.
#[allow(unused_imports)]
pub use self::{
    binary::*, command::*, counting::*, craft::*, debian::*, files::*, fstab::*, garage::*,
    history::*, manifest::*, moto::*, mounts::*, peak::*, prune::*, rng::*, s3_server::*, trees::*,
};
