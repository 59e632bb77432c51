//! Row Level Security for dashboard users: each transaction runs as Supabase's PostgREST runs
//! a request (role `authenticated`, the JWT's claims in `request.jwt.claims`). Members see
//! their tenants only, viewers cannot write, `anon` sees nothing, and the worker's own
//! connection is not restricted.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::fmt::Debug;

use igflow_tests::harness::Services;
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Postgres, Transaction};
use uuid::{Uuid, uuid};

/// Owner of tenant 1.
const A: Uuid = uuid!("a0000000-0000-4000-8000-00000000000a");
/// Viewer of tenant 1.
const B: Uuid = uuid!("b0000000-0000-4000-8000-00000000000b");
/// Editor of tenant 2.
const C: Uuid = uuid!("c0000000-0000-4000-8000-00000000000c");
/// Signed in, member of nothing.
const D: Uuid = uuid!("d0000000-0000-4000-8000-00000000000d");

/// Every table under Row Level Security, in the order `counts` reports them.
const TABLES: [&str; 11] = [
    "tenants",
    "memberships",
    "ig_accounts",
    "campaigns",
    "rules",
    "actions",
    "intents",
    "contacts",
    "activity",
    "parked_events",
    "message_errors",
];
/// Everything, as the worker sees it: two tenants with one of each per tenant, two activity
/// rows each plus one of an unknown account, and one queue failure without an event.
const ALL: [i64; 11] = [2, 3, 2, 2, 2, 2, 2, 2, 5, 2, 3];
/// Tenant 1 (A and B are its members).
const TENANT_1: [i64; 11] = [1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1];
/// Tenant 2 (C alone).
const TENANT_2: [i64; 11] = [1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1];
const NOTHING: [i64; 11] = [0; 11];

struct Tenant {
    id: Uuid,
    account: Uuid,
    campaign: Uuid,
}

struct Fixture {
    /// The worker's connection: the tables' owner, no role change.
    pool: PgPool,
    t1: Tenant,
    t2: Tenant,
}

/// A fresh database with two tenants, and A, B and C as members.
async fn fixture() -> Fixture {
    let (store, _) = Services::from_env()
        .fresh_database("igflow_t_")
        .await
        .expect("fresh database (run scripts/services.sh)");
    let pool = store.pool().clone();
    let t1 = seed_tenant(&pool, "acme", "17841400000000001").await;
    let t2 = seed_tenant(&pool, "globex", "17841400000000002").await;
    sqlx::query(
        "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, outcome)
         values (null, '17841400000000099', 'comment:unknown', 'comment', 'decision', 'unknown_account')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into message_errors (message_id, event_id, event_kind, error, receive_count)
         values ('msg-malformed', null, null, 'not json', 5)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into memberships (tenant_id, user_id, role)
         values ($1, $3, 'owner'), ($1, $4, 'viewer'), ($2, $5, 'editor')",
    )
    .bind(t1.id)
    .bind(t2.id)
    .bind(A)
    .bind(B)
    .bind(C)
    .execute(&pool)
    .await
    .unwrap();
    Fixture { pool, t1, t2 }
}

/// A tenant with one account, campaign (with a rule, action and intent), contact, parked
/// event and queue failure, and two activity rows.
async fn seed_tenant(pool: &PgPool, slug: &str, ig_user_id: &str) -> Tenant {
    let id: Uuid =
        sqlx::query_scalar("insert into tenants (slug, name) values ($1, $1) returning id")
            .bind(slug)
            .fetch_one(pool)
            .await
            .unwrap();
    let account: Uuid = sqlx::query_scalar(
        "insert into ig_accounts (tenant_id, ig_user_id, username, login_flavor, token_secret_ref)
         values ($1, $2, $3, 'instagram', 'igflow/accounts/' || $2 || '/access-token') returning id",
    )
    .bind(id)
    .bind(ig_user_id)
    .bind(slug)
    .fetch_one(pool)
    .await
    .unwrap();
    let campaign: Uuid = sqlx::query_scalar(
        "insert into campaigns (tenant_id, account_id, slug, name) values ($1, $2, 'prices', 'Prices')
         returning id",
    )
    .bind(id)
    .bind(account)
    .fetch_one(pool)
    .await
    .unwrap();
    for sql in [
        "insert into rules (campaign_id, position, match_mode, keywords)
         values ($1, 0, 'whole_word', '{price}')",
        "insert into actions (campaign_id, kind, variants) values ($1, 'private_reply', '{Our prices}')",
        "insert into intents (campaign_id, position, name, description)
         values ($1, 0, 'pricing', 'asks what something costs')",
    ] {
        sqlx::query(sql).bind(campaign).execute(pool).await.unwrap();
    }
    sqlx::query("insert into contacts (account_id, igsid) values ($1, $2)")
        .bind(account)
        .bind(format!("igsid-{slug}"))
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, campaign_id, outcome)
         values ($1, $2, 'comment:' || $3, 'comment', 'decision', $4, 'matched'),
                ($1, $2, 'comment:' || $3, 'comment', 'private_reply', $4, 'sent')",
    )
    .bind(id)
    .bind(ig_user_id)
    .bind(slug)
    .bind(campaign)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into parked_events (event_id, account_id, envelope, reason)
         values ('comment:parked-' || $1, $2, '{}', 'account paused')",
    )
    .bind(slug)
    .bind(account)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into message_errors
           (message_id, ig_user_id, event_id, event_kind, error, receive_count)
         values ('msg-' || $1, $2, 'comment:' || $1, 'comment', 'graph timeout', 2)",
    )
    .bind(slug)
    .bind(ig_user_id)
    .execute(pool)
    .await
    .unwrap();
    Tenant {
        id,
        account,
        campaign,
    }
}

fn claims(user: Uuid) -> String {
    serde_json::json!({ "sub": user, "role": "authenticated" }).to_string()
}

/// A transaction as PostgREST opens one for a signed-in user's request.
async fn signed_in(pool: &PgPool, user: Uuid) -> Transaction<'static, Postgres> {
    with_claims(pool, &claims(user)).await
}

/// Role `authenticated` with these claims (PostgREST's `request.jwt.claims`).
async fn with_claims(pool: &PgPool, claims: &str) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::raw_sql("set local role authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("select set_config('request.jwt.claims', $1, true)")
        .bind(claims)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Row counts of every table in `TABLES` order.
async fn counts(tx: &mut Transaction<'static, Postgres>) -> [i64; 11] {
    let mut out = [0; 11];
    for (n, table) in out.iter_mut().zip(TABLES) {
        *n = sqlx::query_scalar(AssertSqlSafe(format!("select count(*) from {table}")))
            .fetch_one(&mut **tx)
            .await
            .unwrap();
    }
    out
}

/// The distinct tenant ids of the accounts, campaigns and activity a transaction sees.
async fn visible_tenants(tx: &mut Transaction<'static, Postgres>) -> Vec<Uuid> {
    sqlx::query_scalar(
        "select distinct tenant_id from (
             select tenant_id from ig_accounts
             union all select tenant_id from campaigns
             union all select tenant_id from activity
         ) t where tenant_id is not null order by tenant_id",
    )
    .fetch_all(&mut **tx)
    .await
    .unwrap()
}

/// Runs one statement in its own transaction as `user`, committing it if it succeeds.
async fn run_as(
    pool: &PgPool,
    user: Uuid,
    sql: &'static str,
    ids: &[Uuid],
) -> Result<u64, sqlx::Error> {
    let mut tx = signed_in(pool, user).await;
    let mut query = sqlx::query(sql);
    for id in ids {
        query = query.bind(*id);
    }
    let done = query.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// The statement failed with SQLSTATE 42501 and a message containing `expected`.
fn assert_refused<T: Debug>(result: Result<T, sqlx::Error>, expected: &str) {
    let err = result.expect_err(&format!("expected a refusal: {expected}"));
    let db = err
        .as_database_error()
        .unwrap_or_else(|| panic!("not a database error: {err}"));
    assert_eq!(db.code().as_deref(), Some("42501"), "{}", db.message());
    assert!(
        db.message().contains(expected),
        "{:?} does not contain {expected:?}",
        db.message()
    );
}

fn rls(table: &str) -> String {
    format!("new row violates row-level security policy for table \"{table}\"")
}

fn denied(table: &str) -> String {
    format!("permission denied for table {table}")
}

/// (status, priority) of a campaign, read by the worker.
async fn campaign_state(pool: &PgPool, id: Uuid) -> (String, i32) {
    sqlx::query_as("select status, priority from campaigns where id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

const INSERT_CAMPAIGN: &str =
    "insert into campaigns (tenant_id, account_id, slug, name) values ($1, $2, 'new', 'New')";
const INSERT_MEMBER: &str =
    "insert into memberships (tenant_id, user_id, role) values ($1, $2, 'owner')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_sees_only_their_tenant_and_edits_it() {
    let f = fixture().await;
    let mut tx = signed_in(&f.pool, A).await;
    assert_eq!(counts(&mut tx).await, TENANT_1);
    assert_eq!(visible_tenants(&mut tx).await, [f.t1.id]);
    let slugs: Vec<String> = sqlx::query_scalar("select slug from tenants")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(slugs, ["acme"]);
    let errors: Vec<String> = sqlx::query_scalar("select message_id from message_errors")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(errors, ["msg-acme"]);
    let members: Vec<(Uuid, String)> =
        sqlx::query_as("select user_id, role from memberships order by role")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(members, [(A, "owner".into()), (B, "viewer".into())]);
    let me: Option<Uuid> = sqlx::query_scalar("select igflow_user_id()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(me, Some(A));

    let updated =
        sqlx::query("update campaigns set status = 'paused', priority = 5 where id = any($1)")
            .bind(vec![f.t1.campaign, f.t2.campaign])
            .execute(&mut *tx)
            .await
            .unwrap();
    assert_eq!(updated.rows_affected(), 1, "tenant 2's campaign is not A's");
    let opted_out = sqlx::query("update contacts set opted_out = true")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(opted_out.rows_affected(), 1);
    sqlx::query(
        "insert into rules (campaign_id, position, match_mode, keywords)
         values ($1, 1, 'contains', '{cost}')",
    )
    .bind(f.t1.campaign)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("insert into memberships (tenant_id, user_id, role) values ($1, $2, 'editor')")
        .bind(f.t1.id)
        .bind(D)
        .execute(&mut *tx)
        .await
        .unwrap();
    let paused = sqlx::query("update ig_accounts set status = 'paused', status_reason = 'holiday'")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(paused.rows_affected(), 1);
    tx.commit().await.unwrap();

    assert_eq!(
        campaign_state(&f.pool, f.t1.campaign).await,
        ("paused".into(), 5)
    );
    assert_eq!(
        campaign_state(&f.pool, f.t2.campaign).await,
        ("active".into(), 0)
    );
    let (rules, editors, opted_out, statuses): (i64, i64, Vec<bool>, Vec<String>) = sqlx::query_as(
        "select (select count(*) from rules where campaign_id = $1),
                    (select count(*) from memberships
                     where tenant_id = $2 and user_id = $3 and role = 'editor'),
                    (select array_agg(opted_out order by igsid) from contacts),
                    (select array_agg(status order by ig_user_id) from ig_accounts)",
    )
    .bind(f.t1.campaign)
    .bind(f.t1.id)
    .bind(D)
    .fetch_one(&f.pool)
    .await
    .unwrap();
    assert_eq!((rules, editors), (2, 1));
    assert_eq!(opted_out, [true, false], "only acme's contact");
    assert_eq!(statuses, ["paused", "active"], "only acme's account");

    // Owning tenant 1 gives nothing in tenant 2, and an account never moves to another token.
    assert_refused(
        run_as(&f.pool, A, INSERT_MEMBER, &[f.t2.id, A]).await,
        &rls("memberships"),
    );
    assert_refused(
        run_as(
            &f.pool,
            A,
            "update ig_accounts
             set token_secret_ref = 'igflow/accounts/17841400000000002/access-token'
             where id = $1",
            &[f.t1.account],
        )
        .await,
        &denied("ig_accounts"),
    );
    // Contacts come from Instagram: only their opt-out is the dashboard's.
    assert_refused(
        run_as(
            &f.pool,
            A,
            "update contacts set account_id = $1, igsid = 'forged'",
            &[f.t1.account],
        )
        .await,
        &denied("contacts"),
    );
    assert_refused(
        run_as(
            &f.pool,
            A,
            "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, outcome)
             values ($1, 'x', 'forged', 'comment', 'decision', 'matched')",
            &[f.t1.id],
        )
        .await,
        &denied("activity"),
    );
    let token_ref: String =
        sqlx::query_scalar("select token_secret_ref from ig_accounts where id = $1")
            .bind(f.t1.account)
            .fetch_one(&f.pool)
            .await
            .unwrap();
    assert_eq!(token_ref, "igflow/accounts/17841400000000001/access-token");
}

/// Older PostgREST versions set the sub on its own; igflow_user_id() reads it as auth.uid() does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_sub_setting_identifies_the_user_too() {
    let f = fixture().await;
    let mut tx = f.pool.begin().await.unwrap();
    sqlx::raw_sql("set local role authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("select set_config('request.jwt.claim.sub', $1, true)")
        .bind(C.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(counts(&mut tx).await, TENANT_2);
    assert_eq!(visible_tenants(&mut tx).await, [f.t2.id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_reads_but_cannot_write() {
    let f = fixture().await;
    let mut tx = signed_in(&f.pool, B).await;
    assert_eq!(counts(&mut tx).await, TENANT_1);
    assert_eq!(visible_tenants(&mut tx).await, [f.t1.id]);
    drop(tx);

    // Rows a viewer may read but not write are simply not matched.
    for sql in [
        "update campaigns set status = 'paused', priority = 5 where id = $1",
        "delete from campaigns where id = $1",
        "update rules set keywords = '{free}' where campaign_id = $1",
        "delete from actions where campaign_id = $1",
        "update contacts set opted_out = true
         where account_id = (select account_id from campaigns where id = $1)",
        "update memberships set role = 'owner'
         where tenant_id = (select tenant_id from campaigns where id = $1)",
    ] {
        let changed = run_as(&f.pool, B, sql, &[f.t1.campaign]).await.unwrap();
        assert_eq!(changed, 0, "{sql}");
    }
    assert_refused(
        run_as(&f.pool, B, INSERT_CAMPAIGN, &[f.t1.id, f.t1.account]).await,
        &rls("campaigns"),
    );
    assert_refused(
        run_as(
            &f.pool,
            B,
            "insert into intents (campaign_id, position, name, description)
             values ($1, 1, 'refund', 'wants money back')",
            &[f.t1.campaign],
        )
        .await,
        &rls("intents"),
    );
    assert_refused(
        run_as(&f.pool, B, INSERT_MEMBER, &[f.t1.id, D]).await,
        &rls("memberships"),
    );

    // Nothing changed.
    let mut tx = f.pool.begin().await.unwrap();
    assert_eq!(counts(&mut tx).await, ALL);
    drop(tx);
    assert_eq!(
        campaign_state(&f.pool, f.t1.campaign).await,
        ("active".into(), 0)
    );
    let (role, opted_out, rules): (String, bool, Vec<String>) = sqlx::query_as(
        "select (select role from memberships where user_id = $1),
                (select bool_or(opted_out) from contacts),
                (select keywords from rules where campaign_id = $2)",
    )
    .bind(B)
    .bind(f.t1.campaign)
    .fetch_one(&f.pool)
    .await
    .unwrap();
    assert_eq!((role.as_str(), opted_out), ("viewer", false));
    assert_eq!(rules, ["price"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_of_another_tenant_neither_sees_nor_touches_the_first() {
    let f = fixture().await;
    let mut tx = signed_in(&f.pool, C).await;
    assert_eq!(counts(&mut tx).await, TENANT_2);
    assert_eq!(visible_tenants(&mut tx).await, [f.t2.id]);
    let by_id: Option<Uuid> = sqlx::query_scalar("select id from campaigns where id = $1")
        .bind(f.t1.campaign)
        .fetch_optional(&mut *tx)
        .await
        .unwrap();
    assert_eq!(by_id, None);
    drop(tx);

    for sql in [
        "update campaigns set status = 'paused' where id = $1",
        "delete from campaigns where id = $1",
        "update rules set keywords = '{free}' where campaign_id = $1",
        "delete from intents where campaign_id = $1",
    ] {
        let changed = run_as(&f.pool, C, sql, &[f.t1.campaign]).await.unwrap();
        assert_eq!(changed, 0, "{sql}");
    }
    for sql in [
        "update ig_accounts set status = 'paused' where id = $1",
        "delete from ig_accounts where id = $1",
        "update contacts set opted_out = true where account_id = $1",
    ] {
        let changed = run_as(&f.pool, C, sql, &[f.t1.account]).await.unwrap();
        assert_eq!(changed, 0, "{sql}");
    }
    assert_refused(
        run_as(&f.pool, C, INSERT_CAMPAIGN, &[f.t1.id, f.t1.account]).await,
        &rls("campaigns"),
    );
    // Its own tenant with the other's account: the worker would act for that account.
    assert_refused(
        run_as(&f.pool, C, INSERT_CAMPAIGN, &[f.t2.id, f.t1.account]).await,
        &rls("campaigns"),
    );
    assert_refused(
        run_as(
            &f.pool,
            C,
            "insert into rules (campaign_id, position, match_mode, keywords)
             values ($1, 1, 'contains', '{free}')",
            &[f.t1.campaign],
        )
        .await,
        &rls("rules"),
    );
    assert_refused(
        run_as(&f.pool, C, INSERT_MEMBER, &[f.t1.id, C]).await,
        &rls("memberships"),
    );
    // An editor writes campaigns in their own tenant, but does not manage its members.
    let inserted = run_as(&f.pool, C, INSERT_CAMPAIGN, &[f.t2.id, f.t2.account])
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    assert_refused(
        run_as(&f.pool, C, INSERT_MEMBER, &[f.t2.id, D]).await,
        &rls("memberships"),
    );

    assert_eq!(
        campaign_state(&f.pool, f.t1.campaign).await,
        ("active".into(), 0)
    );
    let per_tenant: Vec<(Uuid, i64)> = sqlx::query_as(
        "select tenant_id, count(*) from campaigns group by tenant_id order by count(*)",
    )
    .fetch_all(&f.pool)
    .await
    .unwrap();
    assert_eq!(per_tenant, [(f.t1.id, 1), (f.t2.id, 2)]);
    let (rules, intents, status, opted_out): (i64, i64, String, bool) = sqlx::query_as(
        "select (select count(*) from rules where campaign_id = $1),
                (select count(*) from intents where campaign_id = $1),
                (select status from ig_accounts where id = $2),
                (select opted_out from contacts where account_id = $2)",
    )
    .bind(f.t1.campaign)
    .bind(f.t1.account)
    .fetch_one(&f.pool)
    .await
    .unwrap();
    assert_eq!(
        (rules, intents, status.as_str(), opted_out),
        (1, 1, "active", false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_anon_see_nothing() {
    let f = fixture().await;
    let mut tx = signed_in(&f.pool, D).await;
    assert_eq!(counts(&mut tx).await, NOTHING);
    drop(tx);
    assert_refused(
        run_as(&f.pool, D, INSERT_CAMPAIGN, &[f.t1.id, f.t1.account]).await,
        &rls("campaigns"),
    );
    assert_refused(
        run_as(&f.pool, D, INSERT_MEMBER, &[f.t1.id, D]).await,
        &rls("memberships"),
    );

    // No sub, and an empty setting (what a session reads once a local one has ended).
    for claims in [r#"{"role":"authenticated"}"#, ""] {
        let mut tx = with_claims(&f.pool, claims).await;
        let me: Option<Uuid> = sqlx::query_scalar("select igflow_user_id()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(me, None, "{claims:?}");
        assert_eq!(counts(&mut tx).await, NOTHING, "{claims:?}");
    }

    // anon holds no privilege at all, even carrying a member's sub.
    for table in TABLES {
        let mut tx = f.pool.begin().await.unwrap();
        sqlx::raw_sql("set local role anon")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("select set_config('request.jwt.claims', $1, true)")
            .bind(claims(A))
            .execute(&mut *tx)
            .await
            .unwrap();
        let result: Result<i64, _> =
            sqlx::query_scalar(AssertSqlSafe(format!("select count(*) from {table}")))
                .fetch_one(&mut *tx)
                .await;
        assert_refused(result, &denied(table));
    }
    let mut tx = f.pool.begin().await.unwrap();
    sqlx::raw_sql("set local role anon")
        .execute(&mut *tx)
        .await
        .unwrap();
    let result: Result<bool, _> = sqlx::query_scalar("select igflow_is_member($1)")
        .bind(f.t1.id)
        .fetch_one(&mut *tx)
        .await;
    assert_refused(result, "permission denied for function igflow_is_member");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_connection_sees_and_writes_everything() {
    let f = fixture().await;
    let mut tx = f.pool.begin().await.unwrap();
    assert_eq!(counts(&mut tx).await, ALL);
    let mut both = vec![f.t1.id, f.t2.id];
    both.sort();
    assert_eq!(visible_tenants(&mut tx).await, both);
    let unknown: i64 = sqlx::query_scalar("select count(*) from activity where tenant_id is null")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(unknown, 1);
    drop(tx);

    // RLS is on everywhere but not forced: the owner (worker, apply) passes.
    let flags: Vec<(String, bool, bool)> = sqlx::query_as(
        "select relname::text, relrowsecurity, relforcerowsecurity from pg_class
         where relname = any($1) and relnamespace = 'public'::regnamespace order by relname",
    )
    .bind(TABLES.to_vec())
    .fetch_all(&f.pool)
    .await
    .unwrap();
    let mut expected: Vec<(String, bool, bool)> = TABLES
        .iter()
        .map(|t| ((*t).to_owned(), true, false))
        .collect();
    expected.sort();
    assert_eq!(flags, expected);

    let written: i64 = sqlx::query_scalar(
        "with a as (
             insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, outcome)
             values ($1, '17841400000000002', 'comment:more', 'comment', 'decision', 'no_match')
             returning 1),
         c as (update campaigns set priority = 7 returning 1)
         select (select count(*) from a) + (select count(*) from c)",
    )
    .bind(f.t2.id)
    .fetch_one(&f.pool)
    .await
    .unwrap();
    assert_eq!(written, 3);
    let (activity, priorities): (i64, Vec<i32>) = sqlx::query_as(
        "select (select count(*) from activity), (select array_agg(priority) from campaigns)",
    )
    .fetch_one(&f.pool)
    .await
    .unwrap();
    assert_eq!((activity, priorities), (6, vec![7, 7]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_owner_cannot_leave_or_be_demoted() {
    let f = fixture().await;
    const DEMOTE: &str = "update memberships set role = 'viewer' where user_id = $1";
    const LEAVE: &str = "delete from memberships where user_id = $1";
    for sql in [DEMOTE, LEAVE] {
        let err = run_as(&f.pool, A, sql, &[A]).await.expect_err(sql);
        let db = err.as_database_error().expect("a database error");
        assert_eq!(db.code().as_deref(), Some("23514"), "{}", db.message());
        assert!(
            db.message().contains("without an owner"),
            "{}",
            db.message()
        );
    }
    // With a second owner, the first may go.
    assert_eq!(
        run_as(
            &f.pool,
            A,
            "update memberships set role = 'owner' where user_id = $1",
            &[B]
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(run_as(&f.pool, A, LEAVE, &[A]).await.unwrap(), 1);
    // Deleting a tenant still takes its memberships with it, and its activity with the
    // per-day summaries of that activity.
    sqlx::query("delete from tenants where id = $1")
        .bind(f.t1.id)
        .execute(&f.pool)
        .await
        .unwrap();
    for sql in [
        "select count(*) from memberships where tenant_id = $1",
        "select count(*) from activity where tenant_id = $1",
        "select count(*) from activity_daily where tenant_id = $1",
    ] {
        let left: i64 = sqlx::query_scalar(sql)
            .bind(f.t1.id)
            .fetch_one(&f.pool)
            .await
            .unwrap();
        assert_eq!(left, 0, "{sql}");
    }
}

/// An account Meta deauthorized comes back only through a reconnect (the operator's
/// connection, as `apply` makes it); its owner may pause and resume, nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_cannot_revive_a_deauthorized_account() {
    let f = fixture().await;
    const SET_STATUS: &str = "update ig_accounts set status = $2::text where id = $1";
    let set = |s: &'static str| run_as_text(&f.pool, A, SET_STATUS, f.t1.account, s);
    assert_eq!(set("paused").await.unwrap(), 1);
    assert_eq!(set("active").await.unwrap(), 1);
    assert_refused(set("disabled").await, "account Meta deauthorized");

    sqlx::query(
        "update ig_accounts set status = 'disabled', status_reason = 'deauthorized' where id = $1",
    )
    .bind(f.t1.account)
    .execute(&f.pool)
    .await
    .unwrap();
    for to in ["active", "paused"] {
        assert_refused(set(to).await, "account Meta deauthorized");
    }
    // Other columns stay the owner's to change.
    assert_eq!(
        run_as(
            &f.pool,
            A,
            "update ig_accounts set username = 'acme.new' where id = $1",
            &[f.t1.account]
        )
        .await
        .unwrap(),
        1
    );
    // The reconnect path: the operator's connection.
    sqlx::query("update ig_accounts set status = 'active' where id = $1")
        .bind(f.t1.account)
        .execute(&f.pool)
        .await
        .unwrap();
}

/// A person's own opt-out (their STOP, through the worker) is undone only by their own START;
/// an editor's opt-out the editors may undo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_person_undoes_their_own_opt_out() {
    let f = fixture().await;
    let store = igflow_worker::clients::store::Store::from_pool(f.pool.clone());
    const OPT: &str = "update contacts set opted_out = $2::text::boolean where account_id = $1";
    let opt = |to: &'static str| run_as_text(&f.pool, C, OPT, f.t2.account, to);

    // Set and undone by the dashboard.
    assert_eq!(opt("true").await.unwrap(), 1);
    assert_eq!(opt("false").await.unwrap(), 1);

    // Set by the person.
    assert!(
        store
            .touch_contact(f.t2.account, "igsid-globex", None, Some(true))
            .await
            .unwrap()
    );
    assert_refused(opt("false").await, "only their own message (START)");
    // Their START opts them back in.
    assert!(
        !store
            .touch_contact(f.t2.account, "igsid-globex", None, Some(false))
            .await
            .unwrap()
    );
    let by: Option<String> =
        sqlx::query_scalar("select opted_out_by from contacts where account_id = $1")
            .bind(f.t2.account)
            .fetch_one(&f.pool)
            .await
            .unwrap();
    assert_eq!(by, None);
}

/// Runs one statement binding an id and a text, in its own transaction as `user`.
async fn run_as_text(
    pool: &PgPool,
    user: Uuid,
    sql: &'static str,
    id: Uuid,
    text: &str,
) -> Result<u64, sqlx::Error> {
    let mut tx = signed_in(pool, user).await;
    let done = sqlx::query(sql)
        .bind(id)
        .bind(text)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Event ids are unique per account only (an echo in one account is a message in the other,
/// with the same id): a tenant sees the queue failures of its own accounts' events, not those
/// of another tenant's account that saw the same id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_failure_shows_only_to_its_accounts_tenant_even_for_a_shared_event_id() {
    let f = fixture().await;
    // Both accounts saw message:shared; only tenant 2's handling of it failed.
    sqlx::query(
        "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, outcome)
         values ($1, '17841400000000001', 'message:shared', 'message', 'decision', 'own_content'),
                ($2, '17841400000000002', 'message:shared', 'message', 'decision', 'matched')",
    )
    .bind(f.t1.id)
    .bind(f.t2.id)
    .execute(&f.pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into message_errors
           (message_id, ig_user_id, event_id, event_kind, error, receive_count)
         values ('msg-shared', '17841400000000002', 'message:shared', 'message', 'graph timeout', 3)",
    )
    .execute(&f.pool)
    .await
    .unwrap();
    for (user, expected) in [
        (A, &["msg-acme"][..]),
        (C, &["msg-globex", "msg-shared"][..]),
    ] {
        let mut tx = signed_in(&f.pool, user).await;
        let errors: Vec<String> =
            sqlx::query_scalar("select message_id from message_errors order by message_id")
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        assert_eq!(errors, expected, "{user}");
    }
}

/// The policies of the tables that grow with traffic ask for the user's tenants once per
/// query (an init plan), not once per row: per row it took 15 s to count a million activity
/// rows (`scripts/bench-rls.sh`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_tables_check_membership_once_per_query() {
    let f = fixture().await;
    let mut tx = signed_in(&f.pool, A).await;
    for table in ["activity", "contacts", "parked_events", "message_errors"] {
        let plan: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "explain (costs off) select count(*) from {table}"
        )))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        let plan = plan.join("\n");
        assert!(
            plan.contains("InitPlan") && !plan.contains("igflow_is_member"),
            "{table}: {plan}"
        );
    }
}
