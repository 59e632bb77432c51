#!/usr/bin/env bash
# Measures Row Level Security on the dashboard's largest read, `select count(*) from activity`
# as role `authenticated` (as PostgREST runs it), at 1,000,000 activity rows (or $1) spread
# over 10 tenants: with the read policy as igflow first had it (a SECURITY DEFINER membership
# check per row) and as it is now (the user's tenants asked once per query, an init plan).
# Each figure is the median Execution Time of 5 EXPLAIN ANALYZE runs.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
scripts/services.sh
# shellcheck source=/dev/null
source .local/env
cargo build --locked -q -p igflow-worker
db=igflow_bench_rls
url="${DATABASE_URL%/*}/$db"
psql -X -q -d "$DATABASE_URL" -c "drop database if exists $db" -c "create database $db"
IGFLOW_ADMIN_DATABASE_URL=$url "$CARGO_TARGET_DIR/debug/igflow-worker" migrate

one=a0000000-0000-4000-8000-00000000000a   # viewer of tenant 0 only
all=b0000000-0000-4000-8000-00000000000b   # viewer of all 10 tenants
echo "seeding $rows activity rows over 10 tenants" >&2
psql -X -q -v ON_ERROR_STOP=1 -d "$url" <<SQL
insert into tenants (slug, name) select 't' || i, 'T' || i from generate_series(0, 9) i;
insert into ig_accounts (tenant_id, ig_user_id, username, login_flavor, token_secret_ref)
  select id, '1784140000000000' || substr(slug, 2), slug, 'instagram', 'igflow/' || slug from tenants;
insert into memberships (tenant_id, user_id, role)
  select id, '$all'::uuid, 'viewer' from tenants
  union all select id, '$one'::uuid, 'viewer' from tenants where slug = 't0';
insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, outcome, created_at)
  select a.tenant_id, a.ig_user_id, 'comment:' || i, 'comment', 'decision', 'matched',
         now() - make_interval(secs => i)
  from generate_series(1, $rows) i
  join ig_accounts a on a.ig_user_id = '1784140000000000' || (i % 10);
vacuum analyze;
SQL

# Prints the median Execution Time (ms) of `select count(*) from activity` as $1, with the
# old per-row policy when $2 is "old".
measure() {
  local user=$1 form=$2 swap=""
  if [ "$form" = old ]; then
    swap="drop policy activity_read on activity;
          create policy activity_read on activity for select to authenticated
            using (igflow_is_member(tenant_id));"
  fi
  for _ in 1 2 3 4 5; do
    psql -X -q -At -d "$url" <<SQL | sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p'
begin;
$swap
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "$user", "role": "authenticated"}', true) \\g /dev/null
explain (analyze) select count(*) from activity;
rollback;
SQL
  done | sort -n | sed -n 3p
}

printf '%-34s %14s %14s %8s\n' "user (rows visible)" "per-row (ms)" "init plan (ms)" ratio
for who in "one:$one:member of 1 of 10 tenants" "all:$all:member of all 10 tenants"; do
  IFS=: read -r _ user label <<<"$who"
  old=$(measure "$user" old)
  new=$(measure "$user" new)
  awk -v l="$label" -v o="$old" -v n="$new" 'BEGIN { printf "%-34s %14s %14s %7.1fx\n", l, o, n, o / n }'
done
psql -X -q -d "$DATABASE_URL" -c "drop database $db"
