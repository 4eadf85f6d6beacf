#!/usr/bin/env bash
# Vigil's MSK IAM tokens against AWS's own signer: aws-msk-iam-sasl-signer-python (from PyPI, in a
# virtualenv cached in target/msk-iam) signs every case of scripts/msk-iam/cases.json at the same
# instant with the same credentials, and both tokens must decode to the same presigned URL,
# signature and expiry. The broker test kafka/tests/kafka/msk_iam.rs shows the tokens through
# librdkafka to Apache Kafka. Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."

out="$PWD/target/msk-iam"
mkdir -p "$out"
python="$out/venv/bin/python"
requirements=scripts/msk-iam/requirements.txt
if [ ! -x "$python" ] || ! cmp -s "$requirements" "$out/venv/requirements.txt"; then
  echo "msk-iam: installing AWS's reference signer from PyPI (once)" >&2
  rm -rf "$out/venv"
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install --quiet -r "$requirements"
  cp "$requirements" "$out/venv/requirements.txt"
fi
cargo run --quiet --locked -p vigil-kafka --example msk-iam-token -- scripts/msk-iam/cases.json > "$out/vigil-tokens.jsonl"
"$python" scripts/msk-iam/compare.py "$out/vigil-tokens.jsonl"
