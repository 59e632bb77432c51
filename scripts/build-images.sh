#!/usr/bin/env bash
# Builds the igflow-worker image from ./Dockerfile with podman (or docker) and, with --push,
# pushes it to the stack's ECR repository and prints the WorkerImage to deploy.
#
#   scripts/build-images.sh                         # linux/arm64 (Fargate), tag = git commit
#   scripts/build-images.sh --platform linux/amd64  # a local image to try out
#   scripts/build-images.sh --push "$(aws cloudformation describe-stacks --stack-name igflow-prod \
#       --query "Stacks[0].Outputs[?OutputKey=='WorkerRepositoryUri'].OutputValue" --output text)"
#
# Tags are the commit (with -dirty for uncommitted changes); the repository refuses to
# overwrite a tag, so a deployed image never changes under the same name.
set -euo pipefail
cd "$(dirname "$0")/.."

platform=linux/arm64
push=''
tag="$(git rev-parse --short=12 HEAD)"
[ -z "$(git status --porcelain)" ] || tag="$tag-dirty"
while [ $# -gt 0 ]; do
  case "$1" in
    --platform) platform="$2"; shift 2 ;;
    --push) push="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    *) echo "usage: $0 [--platform linux/arm64|linux/amd64] [--push REPOSITORY_URI] [--tag TAG]" >&2; exit 2 ;;
  esac
done

engine=''
for candidate in podman docker; do
  if command -v "$candidate" > /dev/null && "$candidate" info > /dev/null 2>&1; then
    engine="$candidate"
    break
  fi
done
if [ -z "$engine" ]; then
  echo "build-images: neither podman nor docker can build here (apt-get install podman)" >&2
  exit 1
fi

local_name="igflow-worker:$tag"
echo "build-images: $engine build --platform $platform -t $local_name"
"$engine" build --platform "$platform" -t "$local_name" -f Dockerfile .

if [ -n "$push" ]; then
  registry="${push%%/*}"
  region="$(echo "$registry" | cut -d. -f4)"
  aws ecr get-login-password --region "$region" | "$engine" login --username AWS --password-stdin "$registry"
  "$engine" tag "$local_name" "$push:$tag"
  "$engine" push "$push:$tag"
  echo "build-images: pushed; deploy with WorkerImage=$push:$tag"
else
  echo "build-images: built $local_name (not pushed)"
fi
