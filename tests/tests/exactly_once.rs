//! Exactly once out, where the outcome of a call is unknown: read-backs that fail, DMs
//! answered with a server error after Meta wrote them, two workers on one action, tokens
//! replaced while workers hold the old one, and event ids two accounts share.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use igflow_tests::fixtures::{ACCOUNT, TOKEN};
use igflow_tests::graph_server::{CallKind, Faults};
use igflow_tests::harness::{TestEnv, eventually};
use igflow_tests::meta::{CommentSpec, comment_delivery};

const SETTLE: Duration = Duration::from_secs(60);
const PUBLIC_REPLY: &str = "Thanks! Details are in your inbox";

/// One account whose campaign answers "price" comments with a public reply only.
fn public_reply_yaml() -> String {
    format!(
        r#"
version: 1
tenant: {{ slug: acme, name: Acme Shoes }}
accounts:
  - ig_user_id: "{ACCOUNT}"
    username: acme.shoes
    login: instagram
    access_token: "{TOKEN}"
    campaigns:
      - slug: price-public
        name: Price, public reply
        rules:
          - keywords: [price]
        actions:
          public_replies: ["{PUBLIC_REPLY}"]
"#
    )
}

async fn action(env: &TestEnv, event_id: &str, step: &str) -> Option<(String, Option<String>)> {
    sqlx::query_as("select outcome, detail from activity where event_id = $1 and step = $2")
        .bind(event_id)
        .bind(step)
        .fetch_optional(env.store.pool())
        .await
        .unwrap()
}

/// Waits until the action's outcome is one that ends it.
async fn settled_outcome(env: &TestEnv, event_id: &str, step: &str) -> (String, Option<String>) {
    eventually(&format!("{event_id} {step} settled"), SETTLE, || async {
        Ok(action(env, event_id, step)
            .await
            .is_some_and(|(o, _)| ["sent", "failed", "already_done"].contains(&o.as_str())))
    })
    .await
    .unwrap();
    action(env, event_id, step).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_back_answered_with_an_error_is_checked_again_not_taken_for_not_there() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&public_reply_yaml()).await.unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env
        .start_worker_with(&[("IGFLOW_BACKOFF_BASE_MS", "300")], env.store.clone())
        .await
        .unwrap();
    // The reply is posted but answered after the client gave up (2 s), and the first
    // read-backs are answered 500 with Meta's transient error.
    env.graph.set_faults(Faults {
        slow_share: 1.0,
        slow_delay: Duration::from_millis(2500),
        ..Faults::default()
    });
    env.graph.fail_reads(2);
    let comment = CommentSpec::new("17900000000009001", "9001", "price?");
    env.post_signed(&webhook, &comment_delivery(ACCOUNT, &[comment]))
        .await
        .unwrap();
    let (outcome, detail) =
        settled_outcome(&env, "comment:17900000000009001", "public_reply").await;
    assert_eq!(
        (outcome.as_str(), detail.as_deref()),
        ("sent", Some("found on read-back after an unknown outcome")),
        "the reply is there: an error answer to the read-back is no proof it is not"
    );
    let posted = env
        .graph
        .accepted(|k| matches!(k, CallKind::PublicReply { .. }));
    assert_eq!(posted.len(), 1, "posted once, never again");
    worker.stop().await.unwrap();
}
