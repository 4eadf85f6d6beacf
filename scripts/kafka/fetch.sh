#!/usr/bin/env bash
# Fetches Apache Kafka (the broker, KRaft mode) from Maven Central for the real-broker tests and
# prints the directory of its jars. Cached: target/kafka/<version>/libs is reused, and Maven keeps
# what it downloaded in ~/.m2. Needs java (17 or later) and mvn.
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in java mvn; do
  if ! command -v "$tool" >/dev/null; then
    echo "scripts/kafka/fetch.sh: $tool is not installed; the real-broker tests run Apache Kafka," \
      "which needs a JDK (17 or later) and Maven" >&2
    exit 1
  fi
done

version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)
libs="$PWD/target/kafka/$version/libs"
if [ ! -f "$libs/kafka_2.13-$version.jar" ]; then
  echo "fetching Apache Kafka $version and its runtime dependencies from Maven Central" >&2
  rm -rf "$libs.partial"
  mvn --batch-mode --quiet -f scripts/kafka/pom.xml dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs.partial" >&2
  rm -rf "$libs"
  mv "$libs.partial" "$libs"
fi
echo "$libs"
