# syntax=docker/dockerfile:1
# nomad-operator: one static (musl) binary on an empty base image, running as non-root.
#
#   docker build -t nomad-operator:0.1.0 .
#
# Build stage: Rust with musl; the operator uses rustls (ring), no OpenSSL, so the binary
# is fully static.
FROM rust:1.89-alpine AS build
RUN apk add --no-cache musl-dev ca-certificates
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crds ./crds
# A workspace member: needed to resolve the workspace, not built into the image.
COPY tests/nomad-sim ./tests/nomad-sim
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin nomad-operator \
 && install -D -m 0755 target/release/nomad-operator /out/nomad-operator

# Runtime stage: nothing but the binary and CA roots; no shell, no package manager.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/nomad-operator /nomad-operator
# The chart runs it with runAsNonRoot, UID/GID 65532 and a read-only root filesystem.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/nomad-operator"]
CMD ["run"]
