# syntax=docker/dockerfile:1
# The safedeploy operator image: one static (musl) binary on distroless/static, running as the
# non-root user 65532. It writes nothing to disk, so it runs with readOnlyRootFilesystem: true
# (the Helm chart sets it), no capabilities and the RuntimeDefault seccomp profile.
#
#   docker build -t safedeploy:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t <registry>/safedeploy:<tag> .
#
# Each platform is compiled natively (under emulation for a foreign one) for
# <arch>-unknown-linux-musl; TLS is rustls with ring (no OpenSSL), so only musl-gcc is needed for
# ring's C and assembly parts.

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools lld \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
# The binary is linked at a fixed address (not position-independent, as Go links Argo Rollouts'
# and Kubernetes' own binaries): no relocations to apply at start, so its read-only data stays
# clean file-backed pages. Its code is laid out by a recorded profile (pgo/, made by
# e2e/pgo-record.sh): the functions a rollout runs together, those it never runs apart, so a
# running operator touches fewer pages. LLVM still leaves the rarely run functions among those
# never run, so lld then places every function the profile saw run in one block, in the order
# pgo/safedeploy.order lists them (made from the profile by the same script). Measured in
# docs/benchmarks.md.
ARG RELEASE_RUSTFLAGS="-C relocation-model=static -C profile-use=/pgo/safedeploy.profdata -C llvm-args=-no-pgo-warn-mismatch -C link-arg=-fuse-ld=lld -C link-arg=-Wl,--symbol-ordering-file=/pgo/safedeploy.order,--no-warn-symbol-ordering"
ENV RUSTFLAGS="${RELEASE_RUSTFLAGS}"
COPY pgo/safedeploy.profdata.xz pgo/safedeploy.order.xz /pgo/
RUN xz -d /pgo/safedeploy.profdata.xz /pgo/safedeploy.order.xz
# Dependencies first, so that a source change does not rebuild them: a stub crate with the same
# manifest and lock file.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=safedeploy-target \
    cargo build --release --locked --target "$(uname -m)-unknown-linux-musl" \
    && rm -rf src
COPY src ./src
# The binary must be static (distroless/static has no libc): ldd finds no shared library.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=safedeploy-target \
    touch src/main.rs src/lib.rs \
    && cargo build --release --locked --target "$(uname -m)-unknown-linux-musl" --bin safedeploy \
    && install -D -m 0755 "target/$(uname -m)-unknown-linux-musl/release/safedeploy" /out/safedeploy \
    && ! (ldd /out/safedeploy 2>&1 | grep -q '=>') \
    && /out/safedeploy --version

# distroless/static: CA certificates, /etc/passwd with nonroot (65532), tzdata; no shell, no libc,
# no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/safedeploy /usr/local/bin/safedeploy
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/safedeploy"]
CMD ["controller", "--http-addr", "0.0.0.0:8080"]
