#!/usr/bin/env bash
# igflow's webhook against a careful Node ingress (../shared/bench/node_baseline.js), side by
# side in one sitting: the same signed 1-item delivery (../shared/bench/delivery.json) with a
# valid and a forged signature, the queue taken out on both sides (igflow's in-memory sink,
# Node has none). igflow serves on one Tokio worker thread, as Node serves on one (the other
# core runs wrk), and once more on two ("igflow2", Tokio's default here) to show what that
# costs when the load generator shares the cores. Each pairing runs `rounds` times in turn;
# the script prints each run's requests/s, p50, p99 and server CPU per request (user and
# system), then the medians and the igflow/Node ratios.
# Usage: scripts/bench-vs-node.sh [seconds per run, default 8] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
rounds=${2:-3}
shared_bench=${IGFLOW_NODE_BENCH:-../shared/bench}
[ -f "$shared_bench/node_baseline.js" ] || { echo "no $shared_bench/node_baseline.js (set IGFLOW_NODE_BENCH)" >&2; exit 2; }
command -v node >/dev/null || { echo "node is needed for the baseline" >&2; exit 2; }
if ! command -v wrk >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk >/dev/null
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/igflow-target}
cargo build --locked --release -p igflow-tests --bin igflow-ingress-bench
bench_bin=$CARGO_TARGET_DIR/release/igflow-ingress-bench

secret=bench-secret
body=$shared_bench/delivery.json
valid="sha256=$(openssl dgst -sha256 -hmac "$secret" -r "$body" | cut -d' ' -f1)"
forged="sha256=$(printf '0%.0s' $(seq 1 64))"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

start() { # server, port -> pid on stdout
  local port=$2
  case $1 in
    igflow) "$bench_bin" --sink null --threads 1 --addr "127.0.0.1:$port" --secret "$secret" >"$work/server.log" 2>&1 & ;;
    igflow2) "$bench_bin" --sink null --threads 2 --addr "127.0.0.1:$port" --secret "$secret" >"$work/server.log" 2>&1 & ;;
    node) PORT=$port APP_SECRET=$secret node "$shared_bench/node_baseline.js" >"$work/server.log" 2>&1 & ;;
  esac
  local pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
  curl -s -o /dev/null "http://127.0.0.1:$port/" || { echo "$1 did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
  echo "$pid"
}

measure() { # server, signature label, signature, port (a fresh one each run: the last may linger)
  local pid port=$4 path=/webhook; [ "$1" = node ] && path=/
  pid=$(start "$1" "$port")
  # A short warm-up (JIT, connection pools), not counted.
  wrk -t1 -c32 -d1s -s "$shared_bench/post.lua" "http://127.0.0.1:$port" -- "$path" X-Hub-Signature-256 "$3" "$body" >/dev/null
  local before after
  before=$(cpu_ticks "$pid")
  wrk -t1 -c32 -d"${seconds}s" --latency -s "$shared_bench/post.lua" "http://127.0.0.1:$port" -- "$path" X-Hub-Signature-256 "$3" "$body" >"$work/wrk.out"
  after=$(cpu_ticks "$pid")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  awk -v server="$1" -v sig="$2" -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /requests in/ { n = $1 }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    END {
      split(before, b, " "); split(after, a, " ")
      user = 1e6 * (a[1] - b[1]) / hz / n; sys = 1e6 * (a[2] - b[2]) / hz / n
      printf "%s %s %.0f %.3f %.3f %.1f %.1f %.1f\n", server, sig, rps, p50, p99, user + sys, user, sys
    }' "$work/wrk.out"
}

echo "server signature requests/s p50_ms p99_ms cpu_us_per_request user_us system_us" | tee "$work/runs"
run=0
for _ in $(seq 1 "$rounds"); do
  for sig in valid forged; do
    value=$valid; [ "$sig" = forged ] && value=$forged
    for server in node igflow igflow2; do
      run=$((run + 1))
      measure "$server" "$sig" "$value" $((18100 + run)) | tee -a "$work/runs"
    done
  done
done

python3 - "$work/runs" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
med = {}
for server, sig, *vals in rows:
    med.setdefault((server, sig), []).append([float(v) for v in vals])
servers = ("node", "igflow", "igflow2")
print("\nmedians of the runs; ratio = igflow (one thread) against Node")
print(f"{'signature':<9} {'server':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} {'user':>6} {'system':>7}")
for sig in ("valid", "forged"):
    m = {s: [statistics.median(c) for c in zip(*med[(s, sig)])] for s in servers}
    for s in servers:
        rps, p50, p99, cpu, user, system = m[s]
        print(f"{sig:<9} {s:<8} {rps:>9.0f} {p50:>8.3f} {p99:>8.3f} {cpu:>11.1f} {user:>6.1f} {system:>7.1f}")
    print(f"{sig:<9} {'ratio':<8} {m['igflow'][0] / m['node'][0]:>8.2f}x "
          f"{m['node'][1] / m['igflow'][1]:>7.2f}x {m['node'][2] / m['igflow'][2]:>7.2f}x "
          f"{m['node'][3] / m['igflow'][3]:>10.2f}x  (throughput; latency and CPU: Node / igflow)")
EOF
