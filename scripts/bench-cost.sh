#!/usr/bin/env bash
# Measures what one comment event costs the fleet, for docs/cost.md: CPU time and peak memory
# of the release igflow-webhook and igflow-worker, Redis commands and Postgres transactions,
# per event. Runs the demo fleet (release binaries, Graph API test server, moto) on a private
# Redis so that nothing else's commands are counted, posts N signed one-comment deliveries
# that match the price-list campaign (private reply + public reply each), and waits until
# every one is decided and acted on. Each event is for its own account (N accounts are
# added to the demo's file): Meta allows an account 750 private replies an hour, so one
# account would spend the run waiting for its budget, and many accounts is the real shape.
#   scripts/bench-cost.sh [N]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000}"
scripts/services.sh > /dev/null
# shellcheck source=/dev/null
source .local/env
redis_port=6391
cargo build --release --locked -p igflow-webhook -p igflow-worker
cargo build --locked -p igflow-tests --bin igflow-demo
campaigns=.local/bench-cost-campaigns.yaml
python3 - "$n" campaigns/demo.yaml "$campaigns" <<'PY'
import copy, sys, yaml
n, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
doc = yaml.safe_load(open(src))
first = doc["accounts"][0]
template = copy.deepcopy(first)
template["campaigns"] = [c for c in first["campaigns"] if c["slug"] == "price-list"]
for i in range(n):
    account = copy.deepcopy(template)
    account["ig_user_id"] = f"1784150{i:010d}"
    account["username"] = f"bench.shop{i}"
    doc["accounts"].append(account)
yaml.safe_dump(doc, open(dst, "w"), allow_unicode=True, sort_keys=False)
PY
redis-server --port "$redis_port" --save '' --appendonly no --daemonize yes \
  --pidfile "$PWD/.local/bench-cost-redis.pid" > /dev/null
log=.local/bench-cost-demo.log
REDIS_URL="redis://127.0.0.1:$redis_port" "$CARGO_TARGET_DIR/debug/igflow-demo" \
  --bin-dir "$CARGO_TARGET_DIR/release" --campaigns "$campaigns" --port 0 > "$log" 2>&1 &
demo=$!
cleanup() {
  kill -INT "$demo" 2> /dev/null || true
  wait "$demo" 2> /dev/null || true
  redis-cli -p "$redis_port" shutdown nosave > /dev/null 2>&1 || true
}
trap cleanup EXIT
until grep -q 'Ctrl-C stops everything' "$log"; do
  kill -0 "$demo" 2> /dev/null || { cat "$log"; exit 1; }
  sleep 1
done
webhook="$(grep -o 'http://127.0.0.1:[0-9]*/webhook' "$log" | tail -1)"
# The demo's children: found by their binaries' paths and the demo as parent.
worker="$(pgrep -P "$demo" -f "release/igflow-worker run")"
hook="$(pgrep -P "$demo" -f "release/igflow-webhook")"

python3 - "$n" "$webhook" "$worker" "$hook" "$redis_port" <<'PY'
import hashlib, hmac, json, os, subprocess, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor

n, url, worker, hook, redis_port = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
tick = os.sysconf("SC_CLK_TCK")
db = "postgres://postgres@127.0.0.1:5432/igflow_demo"

def cpu_ms(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / tick

def peak_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

def redis_commands():
    out = subprocess.check_output(["redis-cli", "-p", redis_port, "info", "stats"], text=True)
    return int(next(l for l in out.splitlines() if l.startswith("total_commands_processed:")).split(":")[1])

def psql(sql):
    return int(subprocess.check_output(["psql", "-tA", db, "-c", sql], text=True).strip())

def redis_memory():
    out = subprocess.check_output(["redis-cli", "-p", redis_port, "info", "memory"], text=True)
    return int(next(l for l in out.splitlines() if l.startswith("used_memory:")).split(":")[1])

def db_bytes():
    return psql("select pg_database_size('igflow_demo')")

def log_bytes():
    return os.path.getsize(".local/worker.log"), os.path.getsize(".local/webhook.log")

def transactions():
    return psql("select xact_commit + xact_rollback from pg_stat_database where datname = 'igflow_demo'")

def deliver(i):
    body = json.dumps({"object": "instagram", "entry": [{"id": f"1784150{i:010d}", "time": int(time.time()),
        "changes": [{"field": "comments", "value": {"id": f"1795{i:013d}", "from": {"id": f"88{i:08d}", "username": f"bench{i}"},
        "text": "price?", "media": {"id": "18000000000000001", "media_product_type": "REELS"}}}]}]},
        separators=(",", ":")).encode()
    sig = "sha256=" + hmac.new(b"demo-app-secret", body, hashlib.sha256).hexdigest()
    req = urllib.request.Request(url, data=body, headers={"X-Hub-Signature-256": sig, "Content-Type": "application/json"})
    assert urllib.request.urlopen(req, timeout=30).status == 200

decided0 = psql("select count(*) from activity where step = 'decision'")
before = (cpu_ms(worker), cpu_ms(hook), redis_commands(), transactions(), redis_memory(), db_bytes(), *log_bytes())
start = time.time()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(deliver, range(n)))
while True:
    decided = psql("select count(*) from activity where step = 'decision'") - decided0
    pending = psql("select count(*) from activity where outcome in ('claimed', 'pending', 'retry')")
    if decided >= n and pending == 0:
        break
    time.sleep(0.5)
took = time.time() - start
time.sleep(2)  # let the last log lines and the checkpointed sizes land
after = (cpu_ms(worker), cpu_ms(hook), redis_commands(), transactions(), redis_memory(), db_bytes(), *log_bytes())
sent = psql(f"select count(*) from activity where outcome = 'sent' and event_id like 'comment:1795%'")
d = [a - b for a, b in zip(after, before)]
print(f"events {n}, actions sent {sent}, wall {took:.1f} s")
print(f"worker  CPU {d[0] / n:.3f} ms/event, peak RSS {peak_mb(worker):.1f} MB")
print(f"webhook CPU {d[1] / n:.3f} ms/event (one delivery = one event), peak RSS {peak_mb(hook):.1f} MB")
print(f"redis   {d[2] / n:.1f} commands/event")
print(f"postgres {d[3] / n:.1f} transactions/event (autocommit statements and transactions), "
      f"database grew {d[5] / n:.0f} bytes/event")
print(f"redis memory grew {d[4] / n:.0f} bytes/event (claims, done-markers, windows, slots)")
print(f"logs    worker {d[6] / n:.0f} bytes/event, webhook {d[7] / n:.0f} bytes/event (JSON lines incl. EMF)")
PY
