# syntax=docker/dockerfile:1
# scs-operator: one binary for the controllers, crdgen, render (and, later, the device plugin).
# Build:  docker build -t scs-operator:0.1.0 .

FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY operator operator
COPY e2e e2e
RUN cargo build --release --locked -p scs-operator

# glibc, CA certificates and a non-root user, nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/scs-operator /usr/local/bin/scs-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/scs-operator"]
CMD ["run"]
