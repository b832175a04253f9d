# fhir-server in a container: built from source in a Rust image, run from a slim Debian
# image as a non-root user, with a health check. SQLite (the default, on the volume) and
# the PostgreSQL client library are built into the binary, which links OpenSSL's libssl3
# (for libpq's TLS); besides it only CA certificates and curl (the health check) are
# installed. See README.md, "Run it in Docker".
# The release profile keeps debug info (for profiling); the image's binary is stripped of
# it (symbols stay, so backtraces still name functions): about a fifth of the size.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p fhir-server \
 && strip --strip-debug -o /usr/local/bin/fhir-server target/release/fhir-server

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/fhir --create-home fhir \
 && mkdir -p /usr/local/share/fhir-server
COPY --from=build /usr/local/bin/fhir-server /usr/local/bin/fhir-server
USER fhir
# The working directory is not writable by the server (a fhir-server.toml there would be
# read at start): data lives in the volume, settings come from the environment or from
# FHIR_CONFIG naming a file mounted read-only.
WORKDIR /usr/local/share/fhir-server
# Listening beyond loopback needs authentication (FHIR_AUTH_CLIENTS or FHIR_OIDC_*), or
# FHIR_INSECURE_NO_AUTH=true for a trial: the server refuses to start otherwise.
ENV FHIR_LISTEN=0.0.0.0:8080 \
    FHIR_DATABASE_URL=sqlite:///var/lib/fhir/data/fhir.db \
    FHIR_EXPORT_DIR=/var/lib/fhir/exports \
    FHIR_LOG_FORMAT=json
VOLUME ["/var/lib/fhir"]
EXPOSE 8080
# /ready answers once the database does. With TLS on, set FHIR_HEALTH_URL to the
# https:// address (curl -k: the check runs inside the container).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsSk "${FHIR_HEALTH_URL:-http://127.0.0.1:8080/ready}" > /dev/null || exit 1
ENTRYPOINT ["fhir-server"]
CMD ["serve"]
