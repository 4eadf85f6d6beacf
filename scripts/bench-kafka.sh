#!/usr/bin/env bash
# Throughput and latency of the Kafka pipeline through a tansu broker on a free loopback port:
# a bare consume-and-produce copy, the four stages over the same events, and end-to-end latency at a
# steady rate. Usage: scripts/bench-kafka.sh [EVENTS] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-100000}
rate=${2:-5000}

cargo build --release --locked -p vigil-runtime --bin vigil-bench
tansu=${VIGIL_TANSU:-$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")}
[ -x "$tansu" ] || { echo "tansu not found: run scripts/test.sh once, which installs it" >&2; exit 1; }

scratch=$(mktemp -d)
# In-memory storage is fine for a run without restarts: consumers read batch after batch. (It is not
# for the broker tests: tansu 0.6.0's memory engine skips the rest of a batch when a consumer resumes
# from a committed offset inside it; see runtime/tests/harness/mod.rs.)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$scratch" && exec "$tansu" broker --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ > tansu.log 2>&1) &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$scratch"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

export RUST_LOG=${RUST_LOG:-warn}
target/release/vigil-bench --brokers "127.0.0.1:$port" --mode copy --events "$events"
target/release/vigil-bench --brokers "127.0.0.1:$port" --mode pipeline --events "$events"
target/release/vigil-bench --brokers "127.0.0.1:$port" --mode latency --events $((rate * 10)) --rate "$rate"
