#!/usr/bin/env bash
# Runs the igflow fleet locally: services, migrations, demo campaigns, webhook and worker,
# the dashboard (its URL and sign-in printed), a few signed sample deliveries, and a summary
# of what happened. Extra arguments go to igflow-demo (--exit stops after the summary;
# --port changes the webhook's port).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
# shellcheck source=/dev/null
source .local/env
cargo build --workspace --bins --locked
# The dashboard's app, served by igflow-dashboard (built once; scripts/test-dashboard.sh rebuilds).
if [ ! -f dashboard/web/dist/index.html ] && command -v npm >/dev/null; then
    (cd dashboard/web && npm ci --no-audit --no-fund --silent && npm run build --silent)
fi
exec "$CARGO_TARGET_DIR/debug/igflow-demo" --bin-dir "$CARGO_TARGET_DIR/debug" --campaigns campaigns/demo.yaml "$@"
