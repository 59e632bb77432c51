#!/usr/bin/env bash
# Builds and runs the worker image's runtime stage here, where no container registry is
# reachable (so `podman build` of ./Dockerfile cannot pull rust:*-slim-bookworm or
# debian:bookworm-slim):
#   1. debian:bookworm-slim's filesystem is made with debootstrap --variant=minbase from the
#      Debian mirror apt already uses, and imported into podman as a local image;
#   2. the Dockerfile's runtime stage (its own lines, from "AS runtime" on) is built on it,
#      with the release igflow-worker built by cargo in place of the build stage's;
#   3. the image runs as its non-root user against the local services: `migrate` on a fresh
#      database, then `run` until `podman stop` sends SIGTERM, which must exit 0.
# Needs root (debootstrap), podman and scripts/services.sh's .local/env. Not part of
# scripts/test.sh: the release build and the image take minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source .local/env
target="${CARGO_TARGET_DIR:-$HOME/.cache/igflow-target}"
rootfs=.local/rootfs-bookworm-slim
# This machine (a VM with hybrid cgroups and a 20000 open-files ceiling) needs runc and
# lower rlimits than podman's defaults; elsewhere they change nothing that matters.
mkdir -p .local
printf '[containers]\ndefault_ulimits = ["nofile=1024:20000", "nproc=1024:1024"]\n[engine]\nruntime = "runc"\n' > .local/containers.conf
export CONTAINERS_CONF="$PWD/.local/containers.conf"
base=localhost/igflow-base:bookworm-slim
image=localhost/igflow-worker:check

if [ ! -x "$rootfs/bin/sh" ]; then
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian
fi
if ! podman image exists "$base"; then
  tar -C "$rootfs" -c . | podman import - "$base"
fi

# IGFLOW_WORKER_BIN: a release binary already built (the build takes long on two cores).
binary="${IGFLOW_WORKER_BIN:-}"
if [ -z "$binary" ]; then
  cargo build --release --locked -p igflow-worker
  binary="$target/release/igflow-worker"
fi
context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/igflow-worker"
sed -n '/ AS runtime$/,$p' Dockerfile \
  | sed -e "1s|^FROM .* AS runtime$|FROM $base AS runtime|" \
        -e 's|^COPY --from=build /igflow-worker |COPY igflow-worker |' > "$context/Containerfile"
grep -q '^COPY igflow-worker ' "$context/Containerfile" || { echo "check-image: Dockerfile's runtime stage changed shape" >&2; exit 1; }
podman build --network host -t "$image" "$context"

user="$(podman image inspect "$image" --format '{{.Config.User}}')"
echo "check-image: image user $user, size $(podman image inspect "$image" --format '{{.Size}}') bytes"
[ "${user%%:*}" != 0 ] && [ -n "$user" ] || { echo "check-image: the image runs as root" >&2; exit 1; }

db="igflow_image_check_$$"
psql -q -h 127.0.0.1 -U postgres -c "create database $db" postgres
queue="$(python3 -c '
import os, uuid, urllib.parse, urllib.request
name = "image-check-" + uuid.uuid4().hex[:8]
data = urllib.parse.urlencode({"Action": "CreateQueue", "QueueName": name}).encode()
urllib.request.urlopen(urllib.request.Request(os.environ["AWS_ENDPOINT_URL"], data=data), timeout=30).read()
print(os.environ["AWS_ENDPOINT_URL"] + "/123456789012/" + name)')"
env_args=(
  -e "DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db"
  -e "REDIS_URL=redis://127.0.0.1:6379" -e "IGFLOW_REDIS_PREFIX=image-check-$$:"
  -e "IGFLOW_QUEUE_URL=$queue" -e AWS_ENDPOINT_URL -e AWS_REGION
  -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e IGFLOW_WAIT_SECONDS=1
)
podman run --rm --network host "${env_args[@]}" "$image" migrate
tables="$(psql -tA -h 127.0.0.1 -U postgres -c "select count(*) from information_schema.tables where table_name = 'ig_accounts'" "$db")"
[ "$tables" = 1 ] || { echo "check-image: migrate left no ig_accounts table" >&2; exit 1; }

podman run -d --name "igflow-image-check-$$" --network host "${env_args[@]}" "$image" > /dev/null
sleep 5
podman stop -t 30 "igflow-image-check-$$" > /dev/null
status="$(podman inspect "igflow-image-check-$$" --format '{{.State.ExitCode}}')"
podman logs "igflow-image-check-$$" 2>&1 | grep -v '"_aws"' | tail -3
podman rm "igflow-image-check-$$" > /dev/null
psql -q -h 127.0.0.1 -U postgres -c "drop database $db" postgres
[ "$status" = 0 ] || { echo "check-image: run exited $status after SIGTERM" >&2; exit 1; }
echo "check-image: migrate and run (SIGTERM, exit 0) work in the runtime image as user $user"
