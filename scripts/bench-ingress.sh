#!/usr/bin/env bash
# Measures the ingress: verify+split alone (criterion) and over HTTP with wrk, with an
# in-memory sink (the ingress itself), with the queue in the loop (moto, locally), and with
# and without the raw archive (SQS and S3 stubs at fixed latencies).
# Usage: scripts/bench-ingress.sh [seconds per HTTP run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
scripts/services.sh
# shellcheck source=/dev/null
source .local/env
if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi

echo "== verify + split (criterion) =="
cargo bench --locked -p igflow-core --bench ingress -- --warm-up-time 2 --measurement-time 5 2>&1 \
  | grep -E "^verify_split|time:|thrpt:"

cargo build --locked --release -p igflow-tests --bin igflow-ingress-bench
bench_bin=$CARGO_TARGET_DIR/release/igflow-ingress-bench
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
secret=bench-app-secret
for n in 1 100; do
  python3 scripts/bench/delivery.py "$n" "$work/body-$n.json" "$secret" >"$work/sig-$n"
done

run() { # sink, items, connections
  local port=18080
  "$bench_bin" --sink "$1" --addr "127.0.0.1:$port" --secret "$secret" >"$work/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do grep -q listening "$work/server.log" 2>/dev/null && break; sleep 0.1; done
  echo "== HTTP, $1 sink, $2-item delivery ($(wc -c <"$work/body-$2.json") bytes), $3 connections, ${seconds}s =="
  BODY_FILE="$work/body-$2.json" SIGNATURE=$(cat "$work/sig-$2") \
    wrk -t2 -c"$3" -d"${seconds}s" --latency -s scripts/bench/post.lua "http://127.0.0.1:$port/webhook" \
    | grep -E "Requests/sec|Non-2xx|Socket errors|^ +50%|^ +99%|Latency "
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
run null 1 32
run null 100 32
run sqs 1 8

# The raw archive's cost on the ACK path, in one sitting: the same 1-item delivery through the
# real SQS client (stub at 20 ms per SendMessageBatch) without and with the archive's
# PutObject through the real S3 client (stub at 30 ms). Server CPU from /proc, per request.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
archive_run() { # label, extra server args...
  local label=$1; shift
  local port=18080
  "$bench_bin" --sink sqs-stub --stub-latency-ms 20 "$@" --addr "127.0.0.1:$port" --secret "$secret" >"$work/server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do grep -q listening "$work/server.log" 2>/dev/null && break; sleep 0.1; done
  local before; before=$(cpu_ticks "$pid")
  echo "== archive $label: 1-item delivery, SQS stub 20 ms, 16 connections, ${seconds}s =="
  BODY_FILE="$work/body-1.json" SIGNATURE=$(cat "$work/sig-1") \
    wrk -t2 -c16 -d"${seconds}s" --latency -s scripts/bench/post.lua "http://127.0.0.1:$port/webhook" \
    >"$work/wrk.out"
  grep -E "Requests/sec|Non-2xx|Socket errors|^ +50%|^ +99%" "$work/wrk.out"
  local requests; requests=$(awk '/requests in/ {print $1}' "$work/wrk.out")
  awk -v t="$(( $(cpu_ticks "$pid") - before ))" -v hz="$(getconf CLK_TCK)" -v n="$requests" \
    'BEGIN { printf "  server CPU: %.2f s for %d requests, %.1f us per request\n", t / hz, n, 1e6 * t / hz / n }'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
archive_run off
archive_run on --archive-latency-ms 30

# One 1,000-item delivery through the real SQS client, against a stub answering each
# SendMessageBatch after 20 ms (moto is too slow to say anything about this).
python3 scripts/bench/delivery.py 1000 "$work/body-1000.json" "$secret" >"$work/sig-1000"
"$bench_bin" --sink sqs-stub --stub-latency-ms 20 --addr 127.0.0.1:18080 --secret "$secret" >"$work/server.log" 2>&1 &
stub=$!
for _ in $(seq 1 100); do grep -q listening "$work/server.log" 2>/dev/null && break; sleep 0.1; done
echo "== 1,000-item delivery ($(wc -c <"$work/body-1000.json") bytes), SQS stub at 20 ms per batch call =="
for _ in 1 2 3; do
  curl -s -o /dev/null -w "HTTP %{http_code} in %{time_total}s\n" -X POST http://127.0.0.1:18080/webhook \
    -H "X-Hub-Signature-256: $(cat "$work/sig-1000")" -H "content-type: application/json" \
    --data-binary "@$work/body-1000.json"
done
kill "$stub"
