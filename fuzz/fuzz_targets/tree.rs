//! A tree blob's plaintext.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rewind::Tree;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = Tree::decode(data) {
        assert_eq!(Tree::decode(&tree.encode()).unwrap(), tree);
        for node in &tree.nodes {
            let _ = (node.name_is_safe(), tree.find(&node.name));
        }
    }
});
