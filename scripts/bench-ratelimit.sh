#!/usr/bin/env bash
# Measures the fleet-wide rate budgets against local Redis from one process (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
# shellcheck source=/dev/null
source .local/env
cargo build --locked --release -p igflow-tests --bin igflow-ratelimit-bench
"$CARGO_TARGET_DIR/release/igflow-ratelimit-bench" "$@"
