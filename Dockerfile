# Multi-stage build of every Vigil binary: vigil (scan, run) and the four stage services.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p vigil -p vigil-kafka --bins

FROM debian:bookworm-slim
# librdkafka links OpenSSL (TLS, SASL/SCRAM to MSK, Confluent Cloud, Redpanda Cloud).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 vigil
COPY --from=build /src/target/release/vigil \
                  /src/target/release/vigil-ingest \
                  /src/target/release/vigil-enrich \
                  /src/target/release/vigil-detect \
                  /src/target/release/vigil-publish /usr/local/bin/
COPY examples /opt/vigil/examples
USER vigil
WORKDIR /opt/vigil
EXPOSE 9100
CMD ["vigil", "scan"]
