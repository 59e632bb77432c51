#!/usr/bin/env bash
# The webhook's cold start on this machine: from spawning the release binary to the first
# signed delivery answered 200 (configuration read, keys, the SQS client, the first
# SendMessageBatch to the local moto queue), beside the Node baseline (../shared/bench/,
# no queue) measured the same way; and the Lambda package's size (`--package`: builds the
# arm64 bootstrap with scripts/build-lambda.sh and zips it as SAM would).
# Usage: scripts/bench-cold-start.sh [starts, default 20] [--package]
set -euo pipefail
cd "$(dirname "$0")/.."
starts=${1:-20}
shared_bench=${IGFLOW_NODE_BENCH:-../shared/bench}
scripts/services.sh >/dev/null
# shellcheck source=/dev/null
source .local/env
cargo build --locked --release -p igflow-webhook
bin=$CARGO_TARGET_DIR/release/igflow-webhook
ls -l "$bin" | awk '{printf "release binary (x86_64, symbols kept): %.1f MiB\n", $5 / 1048576}'

secret=bench-secret
queues=$(.venv/bin/python - <<'EOF'
import os, uuid, boto3
sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
name = f"igflow-cold-{uuid.uuid4().hex[:8]}"
print(sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"], sqs.create_queue(QueueName=name)["QueueUrl"])
EOF
)
read -r dlq queue <<<"$queues"
IGFLOW_WEBHOOK_ADDR=127.0.0.1:18091 IGFLOW_APP_SECRET=$secret IGFLOW_VERIFY_TOKEN=bench \
  IGFLOW_QUEUE_URL=$queue IGFLOW_DLQ_URL=$dlq RUST_LOG=warn \
  python3 scripts/bench/cold_start.py igflow-webhook 18091 /webhook "$shared_bench/delivery.json" "$secret" "$starts" -- "$bin"
if command -v node >/dev/null; then
  PORT=18092 APP_SECRET=$secret \
    python3 scripts/bench/cold_start.py "node $(node --version)" 18092 / "$shared_bench/delivery.json" "$secret" "$starts" -- node "$shared_bench/node_baseline.js"
fi

if [ "${2:-}" = --package ]; then
  scripts/build-lambda.sh >/dev/null
  bootstrap=$CARGO_TARGET_DIR/lambda/igflow-webhook/bootstrap
  zip_dir=$(mktemp -d)
  (cd "$(dirname "$bootstrap")" && zip -q -9 "$zip_dir/webhook.zip" bootstrap)
  ls -l "$bootstrap" "$zip_dir/webhook.zip" | awk '{printf "%s: %.2f MiB\n", $NF, $5 / 1048576}'
  rm -rf "$zip_dir"
fi
