#!/usr/bin/env bash
# The whole test suite on real services: formatting, lints, unit and end-to-end tests, and
# a smoke run of the local demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
# shellcheck source=/dev/null
source .local/env
# A failing test's own message (what it waited for, who was not answered) ends the output,
# where a CI log excerpt shows it, instead of a stack trace: IGFLOW_TEST_BACKTRACE=1 for one.
export RUST_BACKTRACE="${IGFLOW_TEST_BACKTRACE:-0}"
# moto keeps every queue and secret of earlier runs in memory and slows down as they pile up:
# start the suite from an empty emulator (a running demo recreates its queues on restart).
python3 -c 'import os, urllib.request; urllib.request.urlopen(urllib.request.Request(os.environ["AWS_ENDPOINT_URL"] + "/moto-api/reset", method="POST"), timeout=30)' 
scripts/lint-template.sh
# Alarms vs runbook and emitted metrics, IAM vs the code's AWS calls; proves each check bites.
python3 scripts/check-ops.py --self-test
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fault tests run the real igflow-worker binary as separate processes.
cargo build --workspace --bins --locked
cargo test --workspace --locked
# The dashboard: npm ci, Vitest and one browser journey (screenshots in target/tmp/dashboard-screenshots/;
# IGFLOW_UPDATE_SCREENSHOTS=1 also copies them into docs/screenshots/).
scripts/test-dashboard.sh
scripts/demo.sh --exit --port 0
