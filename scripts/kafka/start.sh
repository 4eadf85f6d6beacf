#!/usr/bin/env bash
# Starts a one-node Apache Kafka (KRaft: broker and controller in one process) in DIR on free
# loopback ports, for benchmarks and trying the stages by hand; prints the bootstrap address once
# the port is open and leaves the broker's pid in DIR/kafka.pid. Usage: scripts/kafka/start.sh DIR
# (the tests start theirs from kafka/tests/kafka/harness).
set -euo pipefail
dir=$(mkdir -p "$1" && cd "$1" && pwd)
cd "$(dirname "$0")/../.."
libs=${VIGIL_KAFKA_LIBS:-$(scripts/kafka/fetch.sh)}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
controller=$(free_port)
sed -e "s|@NODE_ID@|1|g" -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$controller|g" \
  -e "s|@VOTERS@|1@127.0.0.1:$controller|g" -e "s|@REPLICATION@|1|g" -e "s|@MIN_ISR@|1|g" \
  -e "s|@LOG_DIRS@|$dir/kafka-logs|g" \
  scripts/kafka/server.properties > "$dir/server.properties"
java_opts=(-Xms256m -Xmx1g "-Dlog4j2.configurationFile=$PWD/scripts/kafka/log4j2.yaml" -cp "$libs/*")
java "${java_opts[@]}" kafka.tools.StorageTool format --cluster-id dmlnaWwtYmVuY2gtYnJva2U \
  --config "$dir/server.properties" > "$dir/format.log" 2>&1
nohup java "${java_opts[@]}" kafka.Kafka "$dir/server.properties" > "$dir/kafka.log" 2>&1 &
echo $! > "$dir/kafka.pid"
for _ in $(seq 600); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port"
    exit 0
  fi
  sleep 0.1
done
echo "scripts/kafka/start.sh: the broker did not listen within 60 s; see $dir/kafka.log" >&2
exit 1
