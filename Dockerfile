# Multi-stage build of every Vigil binary: vigil (scan, run), the four stage services and the gateway.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p vigil -p vigil-kafka -p vigil-gateway --bin vigil --bin vigil-ingest \
    --bin vigil-enrich --bin vigil-detect --bin vigil-publish --bin vigil-gateway

FROM debian:bookworm-slim
# librdkafka links OpenSSL (TLS, SASL/SCRAM to MSK, Confluent Cloud, Redpanda Cloud).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 vigil
COPY --from=build /src/target/release/vigil \
                  /src/target/release/vigil-ingest \
                  /src/target/release/vigil-enrich \
                  /src/target/release/vigil-detect \
                  /src/target/release/vigil-publish \
                  /src/target/release/vigil-gateway /usr/local/bin/
COPY examples /opt/vigil/examples
USER vigil
WORKDIR /opt/vigil
EXPOSE 9100 8080
CMD ["vigil", "scan"]
