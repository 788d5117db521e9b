# syntax=docker/dockerfile:1
# scs-operator: one binary for the controllers, crdgen, render and the GPU device plugin.
# Build:  docker build -t scs-operator:0.1.0 .
# Multi-arch (amd64 and arm64, one manifest list):
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/scs-operator:0.1.0 --push .
# The build stage runs on the builder's own platform and cross-compiles for the target one (no
# emulation): the Rust target plus a C cross compiler for the crates with C parts (ring).

FROM --platform=$BUILDPLATFORM rust:1.89-bookworm AS build
ARG TARGETARCH
# A native build already has <triplet>-gcc; only a cross build installs the C cross toolchain.
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-gnu; debarch=amd64; gcc=gcc-x86-64-linux-gnu ;; \
      arm64) target=aarch64-unknown-linux-gnu; debarch=arm64; gcc=gcc-aarch64-linux-gnu ;; \
      *) echo "unsupported TARGETARCH '$TARGETARCH' (amd64 or arm64)" >&2; exit 1 ;; \
    esac; \
    echo "$target" > /rust-target; \
    if [ "$(dpkg --print-architecture)" != "$debarch" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "$gcc" "libc6-dev-$debarch-cross"; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "$target"
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY operator operator
COPY e2e e2e
RUN target=$(cat /rust-target) \
    && cargo build --release --locked -p scs-operator --target "$target" \
    && cp "target/$target/release/scs-operator" /scs-operator

# glibc, CA certificates and a non-root user, nothing else (distroless publishes amd64 and arm64).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /scs-operator /usr/local/bin/scs-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/scs-operator"]
CMD ["run"]
