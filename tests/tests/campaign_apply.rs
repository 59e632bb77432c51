//! `apply`: idempotent upserts, field-naming refusals, tokens kept out of Postgres.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use igflow_tests::fixtures::{ACCOUNT, TOKEN, campaigns_yaml};
use igflow_tests::harness::TestEnv;
use igflow_worker::ops::apply::ApplyError;
use secrecy::ExposeSecret;

/// Row counts of every campaign table, and the campaigns' statuses.
async fn snapshot(env: &TestEnv) -> (Vec<i64>, Vec<(String, String)>) {
    let mut counts = Vec::new();
    for table in ["tenants", "ig_accounts", "campaigns", "rules", "actions"] {
        let sql = format!("select count(*) from {table}");
        counts.push(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(env.store.pool())
                .await
                .unwrap(),
        );
    }
    let statuses = sqlx::query_as("select slug, status from campaigns order by slug")
        .fetch_all(env.store.pool())
        .await
        .unwrap();
    (counts, statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_twice_changes_nothing_and_dropped_campaigns_are_archived() {
    let env = TestEnv::new().await.unwrap();
    let first = env.apply(&campaigns_yaml()).await.unwrap();
    assert_eq!((first.accounts, first.campaigns, first.archived), (1, 2, 0));
    let before = snapshot(&env).await;
    assert_eq!(before.0, vec![1, 1, 2, 2, 3]);
    env.apply(&campaigns_yaml()).await.unwrap();
    assert_eq!(snapshot(&env).await, before);

    let without_launch = campaigns_yaml()
        .split("      - slug: launch")
        .next()
        .unwrap()
        .to_owned();
    let third = env.apply(&without_launch).await.unwrap();
    assert_eq!(third.archived, 1);
    let (_, statuses) = snapshot(&env).await;
    assert_eq!(
        statuses,
        [("launch", "archived"), ("price-list", "active")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_go_to_secrets_manager_and_never_to_postgres() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let (account, secret_ref): (uuid::Uuid, String) =
        sqlx::query_as("select id, token_secret_ref from ig_accounts where ig_user_id = $1")
            .bind(ACCOUNT)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(
        secret_ref,
        format!("{}accounts/{ACCOUNT}/access-token", env.secrets_prefix)
    );
    assert_eq!(
        env.tokens()
            .get(account, &secret_ref)
            .await
            .unwrap()
            .expose_secret(),
        TOKEN
    );
    let leaked: i64 = sqlx::query_scalar(
        "select count(*) from (select row_to_json(t)::text as j from ig_accounts t
                               union all select row_to_json(t)::text from campaigns t
                               union all select row_to_json(t)::text from tenants t) rows
         where j like '%' || $1 || '%'",
    )
    .bind(TOKEN)
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(leaked, 0);

    // A rotated token replaces the secret's value.
    env.apply(&campaigns_yaml().replace(TOKEN, "IGAA-rotated"))
        .await
        .unwrap();
    assert_eq!(
        env.tokens()
            .get(account, &secret_ref)
            .await
            .unwrap()
            .expose_secret(),
        "IGAA-rotated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_file_is_refused_by_field_and_changes_nothing() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let before = snapshot(&env).await;

    let cases = [
        (
            campaigns_yaml().replace("priority: 10", "priority: ten"),
            "accounts[0].campaigns[1].priority",
        ),
        (
            campaigns_yaml().replace("[link]", "[]"),
            "accounts[0].campaigns[1].rules[0].keywords",
        ),
        (
            campaigns_yaml().replace("match: contains", "match: regex"),
            "accounts[0].campaigns[1].rules[0].match",
        ),
        (
            campaigns_yaml().replace("slug: launch", "slug: price-list"),
            "accounts[0].campaigns[1].slug",
        ),
        (
            campaigns_yaml().replace("cooldown_seconds", "cooldown"),
            "accounts[0].campaigns[0]",
        ),
        (
            campaigns_yaml().replace("login: instagram", "login: facebook"),
            "accounts[0].page_id",
        ),
        (campaigns_yaml().replace("tenant: {", "tenant: {{"), "line"),
    ];
    for (yaml, field) in cases {
        let e = env.apply(&yaml).await.unwrap_err();
        assert!(matches!(e, ApplyError::Invalid(_)), "{e}");
        assert!(e.to_string().contains(field), "expected {field} in: {e}");
    }
    let unset = campaigns_yaml().replace(
        &format!("access_token: \"{TOKEN}\""),
        "access_token_env: IGFLOW_TEST_UNSET_TOKEN",
    );
    let e = env.apply(&unset).await.unwrap_err();
    assert!(
        e.to_string().contains(
            "accounts[0].access_token_env: environment variable IGFLOW_TEST_UNSET_TOKEN is not set"
        ),
        "{e}"
    );
    // An account of another tenant cannot be taken over.
    let e = env
        .apply(&campaigns_yaml().replace("slug: acme", "slug: rival"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("accounts[0].ig_user_id: 17841400000000000 belongs to tenant \"acme\""),
        "{e}"
    );

    assert_eq!(
        snapshot(&env).await,
        before,
        "nothing in the database changed"
    );
}

/// An editor's transaction as PostgREST runs it: role `authenticated`, the JWT's claims set.
async fn as_editor(env: &TestEnv) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let user = uuid::Uuid::new_v4();
    sqlx::query(
        "insert into memberships (tenant_id, user_id, role) select id, $1, 'editor' from tenants",
    )
    .bind(user)
    .execute(env.store.pool())
    .await
    .unwrap();
    let mut tx = env.store.pool().begin().await.unwrap();
    sqlx::raw_sql("set local role authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("select set_config('request.jwt.claims', $1, true)")
        .bind(serde_json::json!({ "sub": user, "role": "authenticated" }).to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_the_dashboard_never_lose_each_others_campaigns() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let mut tx = as_editor(&env).await;
    // The dashboard's own campaign: managed_by defaults to the dashboard for its writes.
    let id: uuid::Uuid = sqlx::query_scalar(
        "insert into campaigns (tenant_id, account_id, slug, name)
         select tenant_id, id, 'black-friday', 'Black Friday' from ig_accounts returning id",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query("insert into rules (campaign_id, position, match_mode, keywords) values ($1, 0, 'whole_word', '{deal}')")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    // File campaigns are read-only for the dashboard: the next apply would undo the change.
    let changed = sqlx::query("update campaigns set name = 'renamed' where slug = 'price-list'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 0);
    let visible: i64 = sqlx::query_scalar("select count(*) from campaigns")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(visible, 3, "file campaigns are still shown");
    let e = sqlx::query("insert into rules (campaign_id, position, match_mode, keywords) select id, 5, 'whole_word', '{x}' from campaigns where slug = 'launch'")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("row-level security"), "{e}");
    tx.rollback().await.unwrap();

    let mut tx = as_editor(&env).await;
    sqlx::query(
        "insert into campaigns (tenant_id, account_id, slug, name)
         select tenant_id, id, 'black-friday', 'Black Friday' from ig_accounts",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // A file that lists neither the dashboard's campaign nor `launch` archives only `launch`.
    let without_launch = campaigns_yaml()
        .split("      - slug: launch")
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(env.apply(&without_launch).await.unwrap().archived, 1);
    let (_, statuses) = snapshot(&env).await;
    assert_eq!(
        statuses,
        [
            ("black-friday", "active"),
            ("launch", "archived"),
            ("price-list", "active")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let sources: Vec<(String, String, Option<String>)> =
        sqlx::query_as("select slug, managed_by, source from campaigns order by slug")
            .fetch_all(env.store.pool())
            .await
            .unwrap();
    assert_eq!(
        sources[0],
        ("black-friday".into(), "dashboard".into(), None)
    );
    assert_eq!(
        sources[2],
        ("price-list".into(), "file".into(), Some("test.yaml".into()))
    );

    // A file naming the dashboard's campaign is refused, by field, and changes nothing.
    let before = snapshot(&env).await;
    let e = env
        .apply(&campaigns_yaml().replace("slug: launch", "slug: black-friday"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "accounts[0].campaigns[1].slug: \"black-friday\" is a campaign made in the dashboard"
        ),
        "{e}"
    );
    assert_eq!(snapshot(&env).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_nearing_its_60_days_is_reported_until_apply_writes_a_fresh_one() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let fresh = env.worker_store.health().await.unwrap();
    assert_eq!(fresh.tokens_expiring, 0, "a token just written is fine");
    assert!(
        fresh.connections_percent > 0.0 && fresh.connections_percent <= 100.0,
        "this test's own connection counts: {}",
        fresh.connections_percent
    );
    sqlx::query(
        "update ig_accounts set token_updated_at = now() - interval '54 days' where ig_user_id = $1",
    )
    .bind(ACCOUNT)
    .execute(env.store.pool())
    .await
    .unwrap();
    assert_eq!(env.worker_store.health().await.unwrap().tokens_expiring, 1);
    env.apply(&campaigns_yaml()).await.unwrap();
    assert_eq!(
        env.worker_store.health().await.unwrap().tokens_expiring,
        0,
        "applying the refreshed token clears TokensExpiringSoon"
    );
}
