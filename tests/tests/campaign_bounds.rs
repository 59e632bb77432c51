//! Postgres holds campaign rows to the campaign file's bounds, so that what the dashboard
//! writes cannot cost a worker more memory or a model call more time than a file could.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use igflow_core::campaign_file::{
    MAX_COOLDOWN_SECONDS, MAX_DM_BYTES, MAX_INTENT_DESCRIPTION_CHARS, MAX_INTENT_EXAMPLE_CHARS,
    MAX_INTENT_EXAMPLES, MAX_INTENTS, MAX_KEYWORD_CHARS, MAX_KEYWORDS, MAX_LISTENED,
    MAX_PAYLOAD_CHARS, MAX_PUBLIC_REPLIES, MAX_QUICK_REPLIES, MAX_QUICK_REPLY_CHARS, MAX_REF_CHARS,
    MAX_RULES, MAX_TEXT_VARIANTS,
};
use igflow_tests::harness::Services;
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

/// `{n}` is replaced by a number; `$1` is the campaign, `$2` a text array.
const RULE_AT: &str = "insert into rules (campaign_id, position, match_mode, keywords) values ($1, {n}, 'whole_word', $2)";
const EXCLUDE: &str = "insert into rules (campaign_id, position, match_mode, keywords, exclude)
     values ($1, 0, 'whole_word', '{a}', $2)";
const INTENT_AT: &str = "insert into intents (campaign_id, position, name, description)
     values ($1, {n}, 'buy', $2[1])";
const EXAMPLES: &str = "insert into intents (campaign_id, position, name, description, examples)
     values ($1, 0, 'buy', 'wants to buy', $2)";
const PUBLIC_REPLIES: &str =
    "insert into actions (campaign_id, kind, variants) values ($1, 'public_reply', $2)";
const QUICK_REPLIES: &str = "insert into actions (campaign_id, kind, variants, quick_replies)
     values ($1, 'private_reply', '{Prices}', $2)";
const PRIVATE_REPLIES: &str =
    "insert into actions (campaign_id, kind, variants) values ($1, 'private_reply', $2)";
const PAYLOADS: &str = "update campaigns set trigger = 'postback', payloads = $2 where id = $1";
const REFS: &str = "update campaigns set trigger = 'referral', refs = $2 where id = $1";
const AD_IDS: &str = "update campaigns set trigger = 'referral', ad_ids = $2 where id = $1";
/// Values only the trigger they belong to may carry.
const PAYLOADS_ON_COMMENTS: &str = "update campaigns set payloads = $2 where id = $1";
const COOLDOWN: &str =
    "update campaigns set cooldown_seconds = {n} where id = $1 and $2::text[] is not null";

/// Runs one statement in a transaction it rolls back: Ok, or the constraint that refused it.
async fn attempt(
    pool: &PgPool,
    sql: &str,
    campaign: Uuid,
    n: usize,
    texts: Vec<String>,
) -> Result<(), String> {
    let mut tx = pool.begin().await.unwrap();
    let result = sqlx::query(AssertSqlSafe(sql.replace("{n}", &n.to_string())))
        .bind(campaign)
        .bind(texts)
        .execute(&mut *tx)
        .await;
    tx.rollback().await.unwrap();
    result.map(|_| ()).map_err(|e| {
        e.as_database_error()
            .and_then(|d| d.constraint())
            .map_or_else(|| e.to_string(), str::to_owned)
    })
}

fn texts(count: usize, chars: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("{:x>chars$}", i % 10, chars = chars))
        .collect()
}

async fn campaign(pool: &PgPool) -> Uuid {
    sqlx::query_scalar(
        "with t as (insert into tenants (slug, name) values ('acme', 'Acme') returning id),
              a as (insert into ig_accounts (tenant_id, ig_user_id, username, login_flavor, token_secret_ref)
                    select id, '17841400000000001', 'acme', 'instagram', 'igflow/x' from t returning id, tenant_id)
         insert into campaigns (tenant_id, account_id, slug, name)
         select tenant_id, id, 'prices', 'Prices' from a returning id",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn postgres_refuses_what_a_campaign_file_refuses() {
    let (store, _) = Services::from_env()
        .fresh_database("igflow_t_")
        .await
        .expect("fresh database (run scripts/services.sh)");
    let pool = store.pool();
    let id = campaign(pool).await;
    // (what, statement, n, texts, the constraint refusing it or None when it fits)
    let cases = [
        ("last rule", RULE_AT, MAX_RULES - 1, texts(1, 1), None),
        (
            "a rule too many",
            RULE_AT,
            MAX_RULES,
            texts(1, 1),
            Some("rules_position_bound"),
        ),
        (
            "most keywords, longest",
            RULE_AT,
            0,
            texts(MAX_KEYWORDS, MAX_KEYWORD_CHARS),
            None,
        ),
        (
            "a keyword too many",
            RULE_AT,
            0,
            texts(MAX_KEYWORDS + 1, 1),
            Some("rules_keywords_bound"),
        ),
        (
            "a keyword too long",
            RULE_AT,
            0,
            texts(1, MAX_KEYWORD_CHARS + 1),
            Some("rules_keywords_bound"),
        ),
        (
            "a blank keyword",
            RULE_AT,
            0,
            vec![" ".into()],
            Some("rules_keywords_bound"),
        ),
        (
            "most excluded words",
            EXCLUDE,
            0,
            texts(MAX_KEYWORDS, MAX_KEYWORD_CHARS),
            None,
        ),
        (
            "an excluded word too many",
            EXCLUDE,
            0,
            texts(MAX_KEYWORDS + 1, 1),
            Some("rules_keywords_bound"),
        ),
        (
            "last intent, longest description",
            INTENT_AT,
            MAX_INTENTS - 1,
            texts(1, MAX_INTENT_DESCRIPTION_CHARS),
            None,
        ),
        (
            "an intent too many",
            INTENT_AT,
            MAX_INTENTS,
            texts(1, 1),
            Some("intents_position_bound"),
        ),
        (
            "a description too long",
            INTENT_AT,
            0,
            texts(1, MAX_INTENT_DESCRIPTION_CHARS + 1),
            Some("intents_description_bound"),
        ),
        (
            "a blank description",
            INTENT_AT,
            0,
            vec!["\n ".into()],
            Some("intents_description_bound"),
        ),
        (
            "most examples, longest",
            EXAMPLES,
            0,
            texts(MAX_INTENT_EXAMPLES, MAX_INTENT_EXAMPLE_CHARS),
            None,
        ),
        (
            "an example too long",
            EXAMPLES,
            0,
            texts(1, MAX_INTENT_EXAMPLE_CHARS + 1),
            Some("intents_examples_bound"),
        ),
        (
            "most public replies, longest",
            PUBLIC_REPLIES,
            0,
            texts(MAX_PUBLIC_REPLIES, 2200),
            None,
        ),
        (
            "a public reply too many",
            PUBLIC_REPLIES,
            0,
            texts(MAX_PUBLIC_REPLIES + 1, 1),
            Some("actions_variants_bound"),
        ),
        (
            "a public reply too long",
            PUBLIC_REPLIES,
            0,
            texts(1, 2201),
            Some("actions_variants_bound"),
        ),
        (
            "most quick replies, longest",
            QUICK_REPLIES,
            0,
            texts(MAX_QUICK_REPLIES, MAX_QUICK_REPLY_CHARS),
            None,
        ),
        (
            "a quick reply too long",
            QUICK_REPLIES,
            0,
            texts(1, MAX_QUICK_REPLY_CHARS + 1),
            Some("actions_quick_reply_titles_bound"),
        ),
        (
            "a blank quick reply",
            QUICK_REPLIES,
            0,
            vec![String::new()],
            Some("actions_quick_reply_titles_bound"),
        ),
        (
            "most private reply variants, longest",
            PRIVATE_REPLIES,
            0,
            texts(MAX_TEXT_VARIANTS, MAX_DM_BYTES),
            None,
        ),
        (
            "a private reply variant too many",
            PRIVATE_REPLIES,
            0,
            texts(MAX_TEXT_VARIANTS + 1, 1),
            Some("actions_dm_text_check"),
        ),
        (
            "a private reply variant too long",
            PRIVATE_REPLIES,
            0,
            vec!["ok".into(), "é".repeat(MAX_DM_BYTES / 2 + 1)],
            Some("actions_dm_text_check"),
        ),
        (
            "most payloads, longest",
            PAYLOADS,
            0,
            texts(MAX_LISTENED, MAX_PAYLOAD_CHARS),
            None,
        ),
        (
            "a payload too many",
            PAYLOADS,
            0,
            texts(MAX_LISTENED + 1, 1),
            Some("campaigns_payloads_bound"),
        ),
        (
            "a payload too long",
            PAYLOADS,
            0,
            texts(1, MAX_PAYLOAD_CHARS + 1),
            Some("campaigns_payloads_bound"),
        ),
        (
            "payloads on a comment campaign",
            PAYLOADS_ON_COMMENTS,
            0,
            texts(1, 1),
            Some("campaigns_payloads_bound"),
        ),
        (
            "most refs, longest",
            REFS,
            0,
            texts(MAX_LISTENED, MAX_REF_CHARS),
            None,
        ),
        (
            "a ref Meta would never send",
            REFS,
            0,
            vec!["bio link".into()],
            Some("campaigns_refs_bound"),
        ),
        (
            "a ref too long",
            REFS,
            0,
            texts(1, MAX_REF_CHARS + 1),
            Some("campaigns_refs_bound"),
        ),
        (
            "an ad id",
            AD_IDS,
            0,
            vec!["120210000000000001".into()],
            None,
        ),
        (
            "an ad id that is not a number",
            AD_IDS,
            0,
            vec!["ad-1".into()],
            Some("campaigns_ad_ids_bound"),
        ),
        (
            "longest cooldown",
            COOLDOWN,
            MAX_COOLDOWN_SECONDS as usize,
            vec![],
            None,
        ),
        (
            "a cooldown too long",
            COOLDOWN,
            MAX_COOLDOWN_SECONDS as usize + 1,
            vec![],
            Some("campaigns_cooldown_bound"),
        ),
    ];
    let mut wrong = Vec::new();
    for (what, sql, n, list, refused_by) in cases {
        let got = attempt(pool, sql, id, n, list).await;
        let expected = refused_by.map_or(Ok(()), |c| Err(c.to_owned()));
        if got != expected {
            wrong.push(format!("{what}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
