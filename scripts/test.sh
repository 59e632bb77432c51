#!/usr/bin/env bash
# The whole test suite on real services: formatting, lints, unit and end-to-end tests, and
# a smoke run of the local demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
# shellcheck source=/dev/null
source .local/env
scripts/lint-template.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fault tests run the real igflow-worker binary as separate processes.
cargo build --workspace --bins --locked
cargo test --workspace --locked
scripts/demo.sh --exit --port 0
