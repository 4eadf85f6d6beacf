#!/usr/bin/env bash
# Every test Vigil has, from a fresh clone: formatting, lints, unit, property, integration, CLI and
# real-broker tests. rust-toolchain.toml makes rustup install the pinned toolchain with rustfmt and
# clippy; the real-broker tests run against Apache Kafka (KRaft mode), which scripts/kafka/fetch.sh
# fetches from Maven Central with mvn (about 50 MB, a few seconds, once; cached in target/kafka and
# ~/.m2) and the tests start on free loopback ports. The Helm chart's tests (scripts/test-chart.sh)
# build helm from the Go module proxy and a schema validator from PyPI, once; the MSK IAM check
# (scripts/test-msk-iam.sh) installs AWS's reference signer from PyPI, once. Needs java (17 or
# later), mvn, go, python3 and Node.js with npm; the report's browser test installs Debian's
# chromium when it is missing (scripts/test-report.sh); the fuzz smoke run installs nightly Rust
# and cargo-fuzz when they are missing (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

VIGIL_KAFKA_LIBS=$(scripts/kafka/fetch.sh)
export VIGIL_KAFKA_LIBS

cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# `vigil` without its Kafka service mode (`vigil run`) builds and links no Kafka client.
cargo clippy -p vigil --no-default-features --locked -- -D warnings
if cargo tree -p vigil --no-default-features --locked -e normal | grep rdkafka >/dev/null; then
  echo "vigil --no-default-features links rdkafka: scan, rules and eval-baselines must not" >&2
  exit 1
fi
cargo test --workspace --locked --exclude vigil-kafka
# The HTML report in headless Chromium (Debian's chromium, installed when missing; Playwright from
# npm), with the vigil the tests above built.
scripts/test-report.sh target/debug/vigil
scripts/test-chart.sh
# MSK IAM tokens against AWS's reference signer (from PyPI, once).
scripts/test-msk-iam.sh
# Every fuzz target for a few seconds from its seeds and past crashes (nightly and cargo-fuzz are
# installed when missing); `scripts/fuzz.sh` without --smoke is the long run before a release.
scripts/fuzz.sh --smoke
# The real-broker tests each start a broker and four to eight stage processes: one at a time, and
# with the release binaries (as they ship), so that two cores do not turn group heartbeats and
# rebalances into timeouts.
cargo build --release --locked -p vigil-kafka --bin vigil-ingest --bin vigil-enrich --bin vigil-detect --bin vigil-publish -p vigil-gateway --bin vigil-gateway
VIGIL_STAGE_BIN_DIR="$PWD/target/release" cargo test -p vigil-kafka --locked -- --test-threads=1
