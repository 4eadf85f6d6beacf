#!/usr/bin/env bash
# Every test Vigil has, from a fresh clone: formatting, lints, unit, property, integration, CLI and
# real-broker tests. rust-toolchain.toml makes rustup install the pinned toolchain with rustfmt and
# clippy; the real-broker tests run against tansu, a Kafka-compatible broker written in Rust, which is
# installed here when missing (about 7 minutes on two cores, once; cargo keeps it in ~/.cargo/bin).
set -euo pipefail
cd "$(dirname "$0")/.."

tansu_version=0.6.0
if ! cargo install --list | grep -q "^tansu v${tansu_version}:"; then
  echo "installing the tansu broker ${tansu_version} for the real-broker tests" >&2
  cargo install --locked tansu --version "${tansu_version}" --features dynostore,libsql
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --exclude vigil-runtime
# The real-broker tests each start a broker and four to eight stage processes: one at a time, and
# with the release binaries (as they ship), so that two cores do not turn group heartbeats and
# rebalances into timeouts.
cargo build --release --locked -p vigil-runtime --bin vigil-ingest --bin vigil-enrich --bin vigil-detect --bin vigil-publish
VIGIL_STAGE_BIN_DIR="$PWD/target/release" cargo test -p vigil-runtime --locked -- --test-threads=1
