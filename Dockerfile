# syntax=docker/dockerfile:1
# skewguard's image: a release binary on distroless, running as the non-root user 65532.
#   docker build -t skewguard:latest .                      (or: make docker-build IMG=...)
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/skewguard:TAG --push .
#                                                           (or: make docker-buildx IMG=...)
# The builder runs on the build machine's own platform and cross-compiles for each target platform
# (no emulation): a cross C compiler for ring's and mimalloc's C parts, and rustup's target.

ARG RUST_VERSION=1
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS builder
ARG TARGETARCH
WORKDIR /src
RUN set -eux; \
    case "$TARGETARCH" in \
      amd64) triple=x86_64-unknown-linux-gnu; gnu=x86_64-linux-gnu; deb=x86-64 ;; \
      arm64) triple=aarch64-unknown-linux-gnu; gnu=aarch64-linux-gnu; deb=aarch64 ;; \
      *) echo "unsupported TARGETARCH: $TARGETARCH (amd64 or arm64)" >&2; exit 1 ;; \
    esac; \
    if [ "$(dpkg --print-architecture)" != "$TARGETARCH" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "gcc-$deb-linux-gnu" "libc6-dev-$TARGETARCH-cross"; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$triple"; \
    echo "$triple" > /rust-target; \
    echo "$gnu" > /gnu-prefix
COPY . .
# Cache mounts keep the registry and build artifacts between builds; the binary is copied out
# because the target directory does not survive the step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=skewguard-target-${TARGETARCH} \
    set -eux; \
    triple="$(cat /rust-target)"; gnu="$(cat /gnu-prefix)"; \
    env_triple="$(echo "$triple" | tr 'a-z-' 'A-Z_')"; \
    if [ "$(dpkg --print-architecture)" != "$TARGETARCH" ]; then \
      export "CARGO_TARGET_${env_triple}_LINKER=$gnu-gcc" "CC_$(echo "$triple" | tr '-' '_')=$gnu-gcc"; \
    fi; \
    cargo build --release --locked --target "$triple" --bin skewguard; \
    install -D -m 0755 "target/$triple/release/skewguard" /out/skewguard

# glibc binary (ring needs libc and libgcc); distroless/cc carries exactly those, no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/skewguard /skewguard
USER 65532:65532
# 8443: /metrics over HTTPS (--metrics-addr); 8081: /healthz and /readyz (--health-addr).
EXPOSE 8443 8081
ENTRYPOINT ["/skewguard"]
CMD ["run"]
