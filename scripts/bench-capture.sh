#!/usr/bin/env bash
# What the capture check costs each DM of an account with a capture step: the worker's
# `Store::awaiting` query (is a capture step waiting for this person's answer?), run with
# pgbench against the real schema (igflow-worker migrate on a scratch database) holding
# 500,000 flow runs (1,000 accounts x 500 people, one in five waiting), beside `select 1`
# (a bare round trip), on 1 and 8 connections.
# Usage: scripts/bench-capture.sh [seconds per run, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
scripts/services.sh >/dev/null
# shellcheck source=/dev/null
source .local/env
cargo build --locked -p igflow-worker --bin igflow-worker
db=igflow_capture_bench
admin=${DATABASE_URL%/*}
psql "$admin/postgres" -q -c "drop database if exists $db" -c "create database $db"
trap 'psql "$admin/postgres" -q -c "drop database if exists $db"' EXIT
DATABASE_URL=$admin/$db IGFLOW_ADMIN_DATABASE_URL=$admin/$db "$CARGO_TARGET_DIR/debug/igflow-worker" migrate >/dev/null
# The runs' accounts and campaigns need not exist for the read: foreign keys are not checked
# while loading (replica mode, the local superuser's).
psql "$admin/$db" -q <<'EOF'
set session_replication_role = replica;
insert into flow_runs (account_id, contact_igsid, campaign_id, step, expires_at, awaiting)
select ('00000000-0000-0000-0000-' || lpad(a::text, 12, '0'))::uuid, 'igsid' || c,
       '00000000-0000-0000-0000-000000000001'::uuid, 'ask_email', now() + interval '1 day',
       case when c % 5 = 0 then 'email' end
from generate_series(1, 1000) a, generate_series(1, 500) c;
analyze flow_runs;
EOF
work=$(mktemp -d)
trap 'rm -rf "$work"; psql "$admin/postgres" -q -c "drop database if exists $db"' EXIT
# The query of Store::awaiting (workers/campaign/src/clients/store/flows.rs), with pgbench's
# variables for the account and the person (no `::` casts or colons in literals: pgbench
# reads those as variables).
cat >"$work/awaiting.sql" <<'EOF'
\set a random(1, 1000)
\set c random(1, 500)
select campaign_id, step from flow_runs
 where account_id = cast('00000000-0000-0000-0000-' || lpad(cast(:a as text), 12, '0') as uuid)
   and contact_igsid = 'igsid' || :c
   and awaiting is not null and expires_at > now()
   and (answered_by is null or answered_by = 'message-x')
 order by updated_at desc limit 1;
EOF
echo "select 1;" >"$work/select1.sql"
psql "$admin/$db" -c "explain select campaign_id, step from flow_runs where account_id = '00000000-0000-0000-0000-000000000042' and contact_igsid = 'igsid40' and awaiting is not null and expires_at > now() and (answered_by is null or answered_by = 'message-x') order by updated_at desc limit 1" | sed -n 3,4p
for query in awaiting select1; do
  for clients in 1 8; do
    printf '%-9s %d connection(s): ' "$query" "$clients"
    pgbench "$admin/$db" -n -M prepared -c "$clients" -j 2 -T "$seconds" -f "$work/$query.sql" 2>&1 \
      | awk '/latency average/ {lat = $4} /^tps =/ {tps = $3} END {printf "%.3f ms per read, %.0f reads/s\n", lat, tps}'
  done
done
