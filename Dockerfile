# syntax=docker/dockerfile:1
# skewguard's image: a release binary on distroless, running as the non-root user 65532.
#   docker build -t skewguard:latest .      (or: make docker-build IMG=...)

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build artifacts between builds; the binary is copied out
# because the target directory does not survive the step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin skewguard \
    && install -D -m 0755 target/release/skewguard /out/skewguard

# glibc binary (ring needs libc and libgcc); distroless/cc carries exactly those, no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/skewguard /skewguard
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/skewguard"]
CMD ["run"]
