#!/usr/bin/env bash
# Measures the dashboard's results queries, the API's own (dashboard/api/src/results/*.sql), at
# 10,000,000 activity rows (or $1): 10 tenants, one account and two campaigns each, 90 days of
# comments (decision, private reply, public reply with its variant). Each query runs as
# PostgREST runs it, role `authenticated` with a member's claims, for one campaign over 7 and
# over 30 days. Prints the median Execution Time of 5 EXPLAIN ANALYZE runs; `--plans` also
# prints one plan of each. IGFLOW_BENCH_REUSE=1 measures the database a previous run seeded
# (after applying any new migration; seeding 10 M rows takes about 16 minutes here).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-10000000}
plans=${2:-}
scripts/services.sh
# shellcheck source=/dev/null
source .local/env
cargo build --locked -q -p igflow-worker
db=igflow_bench_results
url="${DATABASE_URL%/*}/$db"
user=c0000000-0000-4000-8000-00000000000c   # viewer of tenant t0
if [ "${IGFLOW_BENCH_REUSE:-}" != 1 ]; then
psql -X -q -d "$DATABASE_URL" -c "drop database if exists $db" -c "create database $db"
fi
DATABASE_URL=$url IGFLOW_ADMIN_DATABASE_URL=$url "$CARGO_TARGET_DIR/debug/igflow-worker" migrate
if [ "${IGFLOW_BENCH_REUSE:-}" != 1 ]; then
echo "seeding $rows activity rows over 10 tenants and 90 days" >&2
start=$(date +%s)
psql -X -q -v ON_ERROR_STOP=1 -d "$url" <<SQL
insert into tenants (slug, name) select 't' || i, 'T' || i from generate_series(0, 9) i;
insert into ig_accounts (tenant_id, ig_user_id, username, login_flavor, token_secret_ref)
  select id, '1784140000000000' || substr(slug, 2), slug, 'instagram', 'igflow/' || slug from tenants;
insert into campaigns (tenant_id, account_id, slug, name, managed_by)
  select tenant_id, id, s, s, 'file' from ig_accounts, unnest(array['a', 'b']) s;
insert into actions (campaign_id, kind, variants)
  select id, 'public_reply', array['Check your DMs', 'Sent!'] from campaigns;
-- Row i: tenant i % 10; a fourth each of no_match decisions, matched decisions, sent private
-- replies and sent public replies (two variants), alternating between the two campaigns.
insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, campaign_id, outcome,
                      detail, variant, created_at, updated_at)
  select a.tenant_id, a.ig_user_id, 'comment:' || i, 'comment',
         case (i / 10) % 4 when 0 then 'decision' when 1 then 'decision' when 2 then 'private_reply' else 'public_reply' end,
         case when (i / 10) % 4 = 0 then null else c.id end,
         case (i / 10) % 4 when 0 then 'no_match' when 1 then 'matched' else 'sent' end,
         case (i / 10) % 4 when 1 then 'rule 0 matched keyword "price"' end,
         case when (i / 10) % 4 = 3 then ((i / 40) % 2)::smallint end,
         now() - make_interval(secs => i * 7776000.0 / $rows),
         now() - make_interval(secs => i * 7776000.0 / $rows)
  from generate_series(1, $rows) i
  join ig_accounts a on a.ig_user_id = '1784140000000000' || (i % 10)
  join campaigns c on c.account_id = a.id and c.slug = case when (i / 80) % 2 = 0 then 'a' else 'b' end;
vacuum analyze;
SQL
echo "seeded in $(( $(date +%s) - start )) s" >&2
tenant=$(psql -X -At -d "$url" -c "select id from tenants where slug = 't0'")
psql -X -q -d "$url" -c "insert into memberships (tenant_id, user_id, role) values ('$tenant', '$user', 'viewer')"
fi
campaign=$(psql -X -At -d "$url" -c "select c.id from campaigns c join tenants t on t.id = c.tenant_id where t.slug = 't0' and c.slug = 'a'")

queries=dashboard/api/src/results
# Median Execution Time (ms) of the API's query $1 over the last $2 days, as the member, with
# the parameters the API binds: campaign, from, to, bucket.
measure() {
  local query=$1 days=$2 show=${3:-}
  for _ in 1 2 3 4 5; do
    psql -X -q -At -d "$url" <<SQL | if [ -n "$show" ]; then cat >&2; echo; else sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p'; fi
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "$user", "role": "authenticated"}', true) \\g /dev/null
prepare q (uuid, text, text, text) as $(cat "$queries/$query.sql");
explain (analyze, buffers) execute q('$campaign', '$(date -u -d "-$days days" +%FT%TZ)', '$(date -u +%FT%TZ)', 'day');
rollback;
SQL
    [ -n "$show" ] && return
  done | sort -n | sed -n 3p
}

printf '%-10s %14s %14s\n' query "7 days (ms)" "30 days (ms)"
for q in funnel failures variants series; do
  printf '%-10s %14s %14s\n' "$q" "$(measure "$q" 7)" "$(measure "$q" 30)"
  if [ "$plans" = --plans ]; then measure "$q" 30 show; fi
done
