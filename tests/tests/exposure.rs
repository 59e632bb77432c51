//! What the database exposes to Supabase's API roles, checked the way Supabase's database
//! linter does (`rls_disabled_in_public`), on a database carrying Supabase's default
//! privileges (see the harness): every table in a schema `anon` or `authenticated` may use
//! has Row Level Security, and those roles hold exactly the privileges igflow means to give.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use igflow_tests::harness::Services;
use sqlx::PgPool;

/// Schemas the API roles may use: what PostgREST could serve, whatever Supabase's settings
/// say it serves.
const EXPOSED: &str = "
    with exposed as (
        select n.oid, n.nspname from pg_namespace n
        where n.nspname not in ('pg_catalog', 'information_schema')
          and n.nspname not like 'pg\\_%'
          and (has_schema_privilege('anon', n.oid, 'usage')
               or has_schema_privilege('authenticated', n.oid, 'usage'))
    )";

async fn strings(pool: &PgPool, query: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("{EXPOSED} {query}")))
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Privileges of `anon` and `authenticated` on relations (and their columns) in exposed
/// schemas, and the security definer functions they may call.
async fn api_privileges(pool: &PgPool) -> Vec<String> {
    strings(
        pool,
        "select format('%s.%s %s %s', e.nspname, c.relname, a.grantee::regrole, a.privilege_type)
         from pg_class c join exposed e on e.oid = c.relnamespace
         cross join lateral aclexplode(c.relacl) a
         where a.grantee in ('anon'::regrole, 'authenticated'::regrole)
         union all
         select format('%s.%s(%s) %s %s', e.nspname, c.relname, att.attname, a.grantee::regrole,
                       a.privilege_type)
         from pg_class c join exposed e on e.oid = c.relnamespace
         join pg_attribute att on att.attrelid = c.oid and not att.attisdropped
         cross join lateral aclexplode(att.attacl) a
         where a.grantee in ('anon'::regrole, 'authenticated'::regrole)
         union all
         select format('%s %s EXECUTE (security definer)', p.oid::regprocedure, r.rolname)
         from pg_proc p join exposed e on e.oid = p.pronamespace
         cross join (values ('anon'), ('authenticated')) r (rolname)
         where p.prosecdef and has_function_privilege(r.rolname, p.oid, 'execute')
         order by 1",
    )
    .await
}

#[tokio::test]
async fn every_exposed_table_has_row_level_security() {
    let (store, _) = Services::from_env()
        .fresh_database("igflow_t_")
        .await
        .expect("fresh database (run scripts/services.sh)");
    let unprotected = strings(
        store.pool(),
        "select e.nspname || '.' || c.relname
         from pg_class c join exposed e on e.oid = c.relnamespace
         where c.relkind in ('r', 'p') and not c.relrowsecurity
         order by 1",
    )
    .await;
    assert!(
        unprotected.is_empty(),
        "tables the API roles can reach without Row Level Security: {unprotected:?}; \
         enable it (with policies for the dashboard) or keep them in a schema anon and \
         authenticated cannot use"
    );
}

#[tokio::test]
async fn api_roles_hold_only_the_intended_privileges() {
    let (store, _) = Services::from_env()
        .fresh_database("igflow_t_")
        .await
        .expect("fresh database (run scripts/services.sh)");
    let held = api_privileges(store.pool()).await;
    let unintended: Vec<&String> = held
        .iter()
        .filter(|p| !INTENDED.contains(&p.as_str()))
        .collect();
    let missing: Vec<&&str> = INTENDED
        .iter()
        .filter(|p| !held.contains(&(**p).to_owned()))
        .collect();
    assert!(
        unintended.is_empty() && missing.is_empty(),
        "API role privileges differ from the intended ones: not intended {unintended:?}, \
         missing {missing:?}; revoke what a migration granted by mistake (Supabase grants \
         anon and authenticated everything on new tables in public), or, if the dashboard \
         needs it, grant it and add it to INTENDED with its policy"
    );
}

/// A database migrated by an older igflow keeps its history: the bookkeeping table moves out
/// of `public` and no migration runs twice (it would fail on the existing tables).
#[tokio::test]
async fn migrating_moves_the_old_bookkeeping_out_of_public() {
    let (store, _) = Services::from_env()
        .fresh_database("igflow_t_")
        .await
        .expect("fresh database (run scripts/services.sh)");
    sqlx::raw_sql("alter table igflow_private._sqlx_migrations set schema public")
        .execute(store.pool())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let (in_public, in_private): (bool, bool) = sqlx::query_as(
        "select to_regclass('public._sqlx_migrations') is not null,
                to_regclass('igflow_private._sqlx_migrations') is not null",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(!in_public && in_private);
}

/// What `authenticated` (the dashboard's PostgREST role) may do; `anon` holds nothing.
const INTENDED: &[&str] = &[
    "igflow_can_edit(uuid) authenticated EXECUTE (security definer)",
    "igflow_can_edit_campaign(uuid) authenticated EXECUTE (security definer)",
    "igflow_editor_tenants() authenticated EXECUTE (security definer)",
    "igflow_is_member(uuid) authenticated EXECUTE (security definer)",
    "igflow_is_owner(uuid) authenticated EXECUTE (security definer)",
    "igflow_member_tenants() authenticated EXECUTE (security definer)",
    "public.actions authenticated DELETE",
    "public.actions authenticated INSERT",
    "public.actions authenticated SELECT",
    "public.actions authenticated UPDATE",
    "public.activity authenticated SELECT",
    "public.activity_daily authenticated SELECT",
    "public.campaigns authenticated DELETE",
    "public.campaigns authenticated INSERT",
    "public.campaigns authenticated SELECT",
    "public.campaigns authenticated UPDATE",
    "public.contacts authenticated SELECT",
    "public.contacts(opted_out) authenticated UPDATE",
    "public.ig_accounts authenticated DELETE",
    "public.ig_accounts authenticated SELECT",
    "public.ig_accounts(limits) authenticated UPDATE",
    "public.ig_accounts(status) authenticated UPDATE",
    "public.ig_accounts(status_reason) authenticated UPDATE",
    "public.ig_accounts(updated_at) authenticated UPDATE",
    "public.ig_accounts(username) authenticated UPDATE",
    "public.intents authenticated DELETE",
    "public.intents authenticated INSERT",
    "public.intents authenticated SELECT",
    "public.intents authenticated UPDATE",
    "public.memberships authenticated DELETE",
    "public.memberships authenticated INSERT",
    "public.memberships authenticated SELECT",
    "public.memberships authenticated UPDATE",
    "public.message_errors authenticated SELECT",
    "public.parked_events authenticated SELECT",
    "public.rules authenticated DELETE",
    "public.rules authenticated INSERT",
    "public.rules authenticated SELECT",
    "public.rules authenticated UPDATE",
    "public.tenants authenticated SELECT",
];
