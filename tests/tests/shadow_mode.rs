//! A campaign in shadow mode decides and records what it would send, under the same windows,
//! cooldowns and follow rules, and sends nothing: its records match a live copy's. Real
//! webhook, SQS (moto), worker, Redis and Postgres; the Graph test server sees the calls.

use std::time::Duration;

use igflow_tests::fixtures::TOKEN;
use igflow_tests::graph_server::CallKind;
use igflow_tests::harness::stepped_fleet;
use igflow_tests::meta::{CommentSpec, comment_delivery, message_delivery, now_ms};

const WAIT: Duration = Duration::from_secs(30);
const LIVE: &str = "17841400000000101";
const SHADOW: &str = "17841400000000102";

/// One account with `shadow` set as given; both accounts run the same campaigns.
fn account(ig_user_id: &str, shadow: bool) -> String {
    format!(
        r#"  - ig_user_id: "{ig_user_id}"
    username: shop{ig_user_id}
    login: instagram
    access_token: "{TOKEN}"
    campaigns:
      - slug: prices
        name: Prices
        cooldown_seconds: 3600
        shadow: {shadow}
        rules: [{{ keywords: [price] }}]
        actions:
          private_reply: "Our prices: https://shop.example/p"
          public_replies: ["Sent you a DM 📩"]
      - slug: dm-prices
        name: Prices by DM
        trigger: message
        shadow: {shadow}
        rules: [{{ keywords: [price] }}]
        actions: {{ dm: "Prices by DM: https://shop.example/p" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_campaign_records_what_a_live_copy_sends_and_sends_nothing() {
    let yaml = format!(
        "version: 1\ntenant: {{ slug: acme, name: Acme }}\naccounts:\n{}{}",
        account(LIVE, false),
        account(SHADOW, true)
    );
    let (env, webhook, worker) = stepped_fleet(&yaml).await;
    let day_and_more = 25 * 3600 * 1000;
    for ig_user_id in [LIVE, SHADOW] {
        let deliveries = [
            // Private and public reply; then the cooldown holds both back.
            comment_delivery(
                ig_user_id,
                &[CommentSpec::new("17900000000000701", "6701", "price?")],
            ),
            comment_delivery(
                ig_user_id,
                &[CommentSpec::new("17900000000000702", "6701", "price pls")],
            ),
            // A DM inside the window, and one whose window closed before it was handled.
            message_delivery(ig_user_id, "6702", "aWdfShadow1", "price?", now_ms()),
            message_delivery(
                ig_user_id,
                "6703",
                "aWdfShadow2",
                "price?",
                now_ms() - day_and_more,
            ),
        ];
        for body in &deliveries {
            assert_eq!(env.post_signed(&webhook, body).await.unwrap(), 200);
            worker.finish(1, WAIT).await.unwrap();
        }
    }

    let pool = env.store.pool();
    let records = |ig_user_id: &'static str| async move {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "select event_id, step, outcome from activity where ig_user_id = $1
             order by event_id, step",
        )
        .bind(ig_user_id)
        .fetch_all(pool)
        .await
        .expect("activity rows");
        rows
    };
    let live = records(LIVE).await;
    let shadow = records(SHADOW).await;
    // What the live account sent, the shadow account recorded as "shadow"; all else equal.
    let as_shadow: Vec<_> = live
        .iter()
        .map(|(event, step, outcome)| {
            let outcome = if outcome == "sent" { "shadow" } else { outcome };
            (event.clone(), step.clone(), outcome.to_owned())
        })
        .collect();
    assert_eq!(shadow, as_shadow);
    let outcomes: Vec<&str> = shadow.iter().map(|(_, _, o)| o.as_str()).collect();
    for expected in ["shadow", "skipped", "dropped", "matched"] {
        assert!(outcomes.contains(&expected), "{expected} in {shadow:?}");
    }
    assert_eq!(outcomes.iter().filter(|o| **o == "shadow").count(), 3);

    // The texts it would have sent are on record; Meta heard nothing from it.
    let details: Vec<String> = sqlx::query_scalar(
        "select detail from activity where ig_user_id = $1 and outcome = 'shadow' order by step",
    )
    .bind(SHADOW)
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        details,
        [
            "shadow mode, not sent: Prices by DM: https://shop.example/p",
            "shadow mode, not sent: Our prices: https://shop.example/p",
            "shadow mode, not sent: Sent you a DM 📩",
        ]
    );
    // One private reply, one public reply and one DM in all: the live account's.
    let writes = env.graph.calls();
    let writes: Vec<_> = writes
        .iter()
        .filter(|c| {
            matches!(
                c.kind,
                CallKind::PrivateReply { .. }
                    | CallKind::PublicReply { .. }
                    | CallKind::Message { .. }
            )
        })
        .collect();
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert!(
        writes.iter().all(|c| match &c.kind {
            CallKind::PrivateReply { sender, .. } | CallKind::Message { sender, .. } =>
                sender == LIVE,
            _ => true,
        }),
        "{writes:?}"
    );
}
