//! The worker's own role, `igflow_worker` (`shared/roles/worker.sql`): it does its work on
//! every tenant's rows, and can neither change the schema nor read or write what it does not
//! need. The rest of the suite runs every worker as this role.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use igflow_tests::harness::Services;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// What the worker may not do, each refused with SQLSTATE 42501 (insufficient privilege).
const REFUSED: &[&str] = &[
    "create table public.evil (id int)",
    "create schema evil",
    "create function public.evil() returns int language sql as 'select 1'",
    "alter table activity add column evil int",
    "drop table activity",
    "create index evil on activity (detail)",
    "truncate activity",
    "select count(*) from memberships",
    "select name from tenants",
    "update tenants set webhook_url = 'https://evil.example'",
    "insert into memberships (tenant_id, user_id, role) select id, gen_random_uuid(), 'owner' from ig_accounts",
    "update ig_accounts set token_secret_ref = 'igflow/other'",
    "update ig_accounts set ig_user_id = '1'",
    "insert into ig_accounts (tenant_id, ig_user_id, username, login_flavor, token_secret_ref) select tenant_id, '2', 'x', 'instagram', 'x' from ig_accounts",
    "update campaigns set status = 'archived'",
    "delete from rules",
    "select count(*) from igflow_private._sqlx_migrations",
];

/// What the worker does, on any tenant's rows.
const ALLOWED: &[&str] = &[
    "select count(*) from ig_accounts",
    "select count(*) from campaigns join rules on rules.campaign_id = campaigns.id",
    "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, outcome)
     select tenant_id, ig_user_id, 'comment:1', 'comment', 'decision', 'matched' from ig_accounts",
    "update activity set outcome = 'no_match'",
    "insert into contacts (account_id, igsid, opted_out, opted_out_by) select id, 'p', true, 'contact' from ig_accounts",
    "update ig_accounts set status = 'paused', status_reason = 'token revoked', updated_at = now()",
    "select id from ig_accounts for update",
    "select id, webhook_url, webhook_secret_ref from tenants",
    "insert into flow_runs (account_id, contact_igsid, campaign_id, step, expires_at)
     select ig_accounts.id, 'p', campaigns.id, 'ask', now() from ig_accounts join campaigns on true",
    "insert into outbound_deliveries (tenant_id, ig_user_id, event_id, kind, url, secret_ref, body)
     select tenant_id, ig_user_id, 'message:1', 'contact.captured', 'https://x.example', 'r', '{}' from ig_accounts",
    "update outbound_deliveries set attempts = attempts + 1",
    "delete from activity",
];

async fn databases() -> (PgPool, PgPool) {
    let services = Services::from_env();
    let (admin, admin_url) = services
        .fresh_database("igflow_t_")
        .await
        .expect("fresh database (run scripts/services.sh)");
    let worker_url = services.worker_url(&admin_url).await.unwrap();
    let worker = PgPoolOptions::new()
        .max_connections(2)
        .connect(&worker_url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "insert into tenants (slug, name) values ('acme', 'Acme');
         insert into ig_accounts (tenant_id, ig_user_id, username, login_flavor, token_secret_ref)
           select id, '17841400000000001', 'acme', 'instagram', 'igflow/acme' from tenants;
         insert into campaigns (tenant_id, account_id, slug, name)
           select tenant_id, id, 'prices', 'Prices' from ig_accounts;
         insert into rules (campaign_id, position, match_mode, keywords)
           select id, 0, 'whole_word', '{price}' from campaigns;
         insert into memberships (tenant_id, user_id, role)
           select id, gen_random_uuid(), 'owner' from tenants;",
    )
    .execute(admin.pool())
    .await
    .unwrap();
    (admin.pool().clone(), worker)
}

#[tokio::test]
async fn the_worker_role_does_its_work_and_nothing_more() {
    let (_admin, worker) = databases().await;
    let mut wrong = Vec::new();
    for sql in ALLOWED {
        if let Err(e) = sqlx::raw_sql(*sql).execute(&worker).await {
            wrong.push(format!("refused {sql:?}: {e}"));
        }
    }
    for sql in REFUSED {
        match sqlx::raw_sql(*sql).execute(&worker).await {
            Ok(_) => wrong.push(format!("allowed {sql:?}")),
            Err(e) => {
                let code = e.as_database_error().and_then(|d| d.code());
                if code.as_deref() != Some("42501") {
                    wrong.push(format!("{sql:?} failed otherwise: {e}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
