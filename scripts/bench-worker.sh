#!/usr/bin/env bash
# The worker's throughput end to end: the release `igflow-worker run` process against real
# Postgres and Redis, an in-memory SQS and the Graph test server (igflow-worker-bench).
# Runs the keyword path with instant Graph answers, then with Meta's typical 50 ms at several
# IGFLOW_MAX_IN_FLIGHT values.
# Usage: scripts/bench-worker.sh [events, default 20000] [extra igflow-worker-bench args...]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-20000}
shift || true
scripts/services.sh >/dev/null
# shellcheck source=/dev/null
source .local/env
cargo build --locked --release -p igflow-worker --bin igflow-worker -p igflow-tests --bin igflow-worker-bench
bench="$CARGO_TARGET_DIR/release/igflow-worker-bench"

echo "== instant Graph answers =="
"$bench" --events "$events" "$@"
# As many events as the instant run: a short pass is mostly its ramp and its tail.
for in_flight in 20 50 200 800; do
  echo "== Graph answers after 50 ms, IGFLOW_MAX_IN_FLIGHT=$in_flight =="
  "$bench" --events "$events" --graph-latency-ms 50 --max-in-flight "$in_flight" "$@"
done
