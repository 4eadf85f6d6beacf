#!/usr/bin/env bash
# Throughput and latency of the Kafka pipeline through an Apache Kafka broker on free loopback ports
# (scripts/kafka/start.sh): a bare consume-and-produce copy, four such copies chained and running at
# once (the transport cost of four hops on the same cores), each stage alone beside a bare copy of
# its own input, the four stages over the same events,
# end-to-end latency at a steady rate, and the HTTP gateway's accepted events per second and request
# latency (EventLists of 400 events, answered once Kafka acknowledged them). Usage: scripts/bench-kafka.sh [EVENTS] [RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-100000}
rate=${2:-5000}

cargo build --release --locked -p vigil-kafka --bin vigil-bench -p vigil-gateway --bin vigil-gateway-bench
scratch=$(mktemp -d)
trap 'kill "$(cat "$scratch/kafka.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$scratch"' EXIT
brokers=$(scripts/kafka/start.sh "$scratch")
# The port opens before the broker has registered with its controller; the bench's clients retry.
sleep 3

export RUST_LOG=${RUST_LOG:-warn}
bench=target/release/vigil-bench
echo "Apache Kafka $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml), one node on loopback;" \
  "$(nproc) cores, $(date -u +%Y-%m-%d); latency: raw record produced to finding consumed"
echo
# A copy run first, not shown: the broker's JIT is cold at start, which made the first row of a
# run up to half of what the same row reads a minute later.
"$bench" --brokers "$brokers" --mode copy --events "$events" > /dev/null
echo "| run | guarantee | events | events/s | p50 ms | p99 ms | p999 ms |"
echo "|---|---|---|---|---|---|---|"
"$bench" --brokers "$brokers" --mode copy --events "$events"
"$bench" --brokers "$brokers" --mode copy-chain --events "$events"
for guarantee in at-least-once exactly-once; do
  "$bench" --brokers "$brokers" --mode each-stage --events "$events" --guarantee "$guarantee"
  "$bench" --brokers "$brokers" --mode pipeline --events "$events" --guarantee "$guarantee"
  "$bench" --brokers "$brokers" --mode latency --events $((rate * 20)) --rate "$rate" --guarantee "$guarantee"
done
target/release/vigil-gateway-bench --brokers "$brokers" --events $((events * 4))
