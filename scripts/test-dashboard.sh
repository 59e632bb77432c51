#!/usr/bin/env bash
# The dashboard's front end: a clean `npm ci`, type check and build, Vitest, then the
# marketer's journey in Debian's Chromium (Playwright's own browser download is not used).
# Expects the services of scripts/services.sh and .local/env sourced (scripts/test.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null; then
    echo "[test-dashboard] installing Debian's chromium"
    apt-get update -qq && apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
fi
if ! command -v npm >/dev/null; then
    echo "[test-dashboard] installing node and npm"
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
(
    cd dashboard/web
    npm ci --no-audit --no-fund
    npm run build
    npm test
)
cargo test -p igflow-tests --locked --test dashboard_browser -- --ignored
