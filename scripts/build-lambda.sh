#!/usr/bin/env bash
# Builds the webhook's Lambda bootstrap for arm64 (what template.yaml deploys) with
# cargo-lambda and zig, installed into the project's .venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/igflow-target}
if [ ! -x .venv/bin/cargo-lambda ]; then
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install -q 'cargo-lambda==1.9.2' ziglang
fi
rustup target add aarch64-unknown-linux-gnu >/dev/null
PATH=$PWD/.venv/bin:$PATH cargo lambda build --release --arm64 --locked -p igflow-webhook
ls -l "$CARGO_TARGET_DIR/lambda/igflow-webhook/bootstrap"
