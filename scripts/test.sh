#!/usr/bin/env bash
# Every test Vigil has, from a fresh clone: formatting, lints, unit, property, integration and CLI
# tests. rust-toolchain.toml makes rustup install the pinned toolchain with rustfmt and clippy.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
