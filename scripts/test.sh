#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests (real FUSE
# mounts, real PostgreSQL), then formatting and lints.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo test --all-targets
cargo test --doc
cargo fmt --check
cargo clippy --all-targets -- -D warnings
