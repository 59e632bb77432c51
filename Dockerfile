# syntax=docker/dockerfile:1
# The igflow-worker image: the same `igflow-worker` binary the tests run, built in release
# mode, on debian:bookworm-slim as a non-root user. Migrations are compiled into the binary
# (sqlx::migrate!), so `migrate` needs nothing else. scripts/build-images.sh builds and
# pushes it; Fargate runs it as linux/arm64.

ARG RUST_VERSION=1.95

# The build runs on the build machine's own platform and cross-compiles to the target's:
# no emulation, so an amd64 laptop builds the arm64 image at native speed.
FROM --platform=$BUILDPLATFORM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
ARG TARGETARCH
RUN case "${TARGETARCH:-amd64}" in \
      arm64) echo aarch64-unknown-linux-gnu > /rust-target \
             && apt-get update \
             && apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
             && rm -rf /var/lib/apt/lists/* ;; \
      amd64) echo x86_64-unknown-linux-gnu > /rust-target ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
    && rustup target add "$(cat /rust-target)"
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p igflow-worker --target "$(cat /rust-target)" \
    && cp "target/$(cat /rust-target)/release/igflow-worker" /igflow-worker

# glibc 2.36 like the build image; rustls carries its own root certificates, ca-certificates
# is for anything else that looks (e.g. a custom endpoint).
FROM docker.io/library/debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin igflow
COPY --from=build /igflow-worker /usr/local/bin/igflow-worker
USER 10001:10001
# ECS sends SIGTERM and waits StopTimeout; the worker finishes or hands back its messages
# within IGFLOW_SHUTDOWN_SECONDS and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/igflow-worker"]
CMD ["run"]
