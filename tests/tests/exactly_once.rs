//! Exactly once out, where the outcome of a call is unknown: read-backs that fail, DMs and
//! public replies answered with a server error after Meta wrote them (or without writing),
//! two workers on one action, tokens replaced while workers hold the old one, and event ids
//! two accounts share.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use igflow_tests::fixtures::{ACCOUNT, TOKEN, campaigns_yaml};
use igflow_tests::graph_server::{CallKind, Faults};
use igflow_tests::harness::{RunningWorker, TestEnv, eventually};
use igflow_tests::meta::{CommentSpec, comment_delivery, echo_delivery, message_delivery, now_ms};

const SETTLE: Duration = Duration::from_secs(60);
const PUBLIC_REPLY: &str = "Thanks! Details are in your inbox";

/// A campaign file of the fixtures' tenant with these accounts.
fn file(accounts: &[String]) -> String {
    format!(
        "version: 1\ntenant: {{ slug: acme, name: Acme Shoes }}\naccounts:\n{}",
        accounts.concat()
    )
}

/// One account of a campaign file, with its campaigns (a YAML list, `[]` for none).
fn account(ig_user_id: &str, username: &str, token: &str, campaigns: &str) -> String {
    format!(
        r#"  - ig_user_id: "{ig_user_id}"
    username: {username}
    login: instagram
    access_token: "{token}"
    campaigns: {campaigns}
"#
    )
}

/// One account whose campaign answers "price" comments with a public reply only.
fn public_reply_yaml() -> String {
    let campaigns = format!(
        r#"
      - slug: price-public
        name: Price, public reply
        rules:
          - keywords: [price]
        actions:
          public_replies: ["{PUBLIC_REPLY}"]"#
    );
    file(&[account(ACCOUNT, "acme.shoes", TOKEN, &campaigns)])
}

/// A test environment with `yaml` applied, its webhook's URL and a worker retrying soon.
async fn running(yaml: &str) -> (TestEnv, String, RunningWorker) {
    let env = TestEnv::new().await.unwrap();
    env.apply(yaml).await.unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env
        .start_worker_with(
            &[
                ("IGFLOW_BACKOFF_BASE_MS", "300"),
                ("IGFLOW_UNPARK_SECONDS", "1"),
            ],
            env.worker_store.clone(),
        )
        .await
        .unwrap();
    (env, webhook, worker)
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
    let (env, webhook, worker) = running(&public_reply_yaml()).await;
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

/// The public replies Meta accepted under `comment`, and every call that tried one.
fn public_replies_to(env: &TestEnv, comment: &str) -> (usize, usize) {
    let under =
        |k: &CallKind| matches!(k, CallKind::PublicReply { comment_id } if comment_id == comment);
    let accepted = env.graph.accepted(under).len();
    let tried = env.graph.calls().iter().filter(|c| under(&c.kind)).count();
    (accepted, tried)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_reply_answered_500_is_read_back_and_posted_only_if_it_is_not_there() {
    let (env, webhook, worker) = running(&public_reply_yaml()).await;
    // Meta posts the reply and answers 500 with its transient error (code 2): read back and
    // found, never posted again.
    env.graph.set_faults(Faults {
        written_server_error_share: 1.0,
        ..Faults::default()
    });
    let written = CommentSpec::new("17900000000009011", "9011", "price?");
    env.post_signed(&webhook, &comment_delivery(ACCOUNT, &[written]))
        .await
        .unwrap();
    let (outcome, detail) =
        settled_outcome(&env, "comment:17900000000009011", "public_reply").await;
    assert_eq!(
        (outcome.as_str(), detail.as_deref()),
        ("sent", Some("found on read-back after an unknown outcome"))
    );
    assert_eq!(
        public_replies_to(&env, "17900000000009011"),
        (1, 1),
        "posted once, never again"
    );

    // The same answer without the write: not among the comment's replies, so posted, once.
    env.graph.set_faults(Faults::default());
    env.graph.fail_writes(1);
    let refused = CommentSpec::new("17900000000009012", "9012", "price?");
    env.post_signed(&webhook, &comment_delivery(ACCOUNT, &[refused]))
        .await
        .unwrap();
    let (outcome, detail) =
        settled_outcome(&env, "comment:17900000000009012", "public_reply").await;
    assert_eq!(
        (outcome.as_str(), detail.as_deref()),
        (
            "sent",
            Some("posted after an unknown outcome: not among the comment's replies")
        )
    );
    assert_eq!(
        public_replies_to(&env, "17900000000009012"),
        (1, 2),
        "refused once, then posted once"
    );
    worker.stop().await.unwrap();
}

/// The account's status.
async fn status(env: &TestEnv) -> String {
    sqlx::query_scalar("select status from ig_accounts where ig_user_id = $1")
        .bind(ACCOUNT)
        .fetch_one(env.store.pool())
        .await
        .unwrap()
}

/// The token of the accepted private reply to `comment`.
fn token_used_for(env: &TestEnv, comment: &str) -> Option<String> {
    env.graph
        .accepted(
            |k| matches!(k, CallKind::PrivateReply { comment_id, .. } if comment_id == comment),
        )
        .first()
        .and_then(|c| c.token.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_with_a_new_token_is_used_at_once_by_a_worker_that_held_the_old_one() {
    let (env, webhook, worker) = running(&campaigns_yaml()).await;
    let post = |comment: &'static str, from: &'static str| {
        let body = comment_delivery(ACCOUNT, &[CommentSpec::new(comment, from, "price?")]);
        let (env, webhook) = (&env, &webhook);
        async move { assert_eq!(env.post_signed(webhook, &body).await.unwrap(), 200) }
    };
    // Both replies out, so that no call of this comment is still under way when Meta's
    // accepted token changes.
    let sent = |comment: &'static str| {
        let env = &env;
        async move {
            let event = format!("comment:{comment}");
            for step in ["private_reply", "public_reply"] {
                assert_eq!(settled_outcome(env, &event, step).await.0, "sent", "{step}");
            }
        }
    };
    // The worker reads the token and keeps it in its cache.
    post("17900000000009101", "9101").await;
    sent("17900000000009101").await;
    assert_eq!(
        token_used_for(&env, "17900000000009101").as_deref(),
        Some(TOKEN)
    );

    // Meta revokes it: the account is paused on the 190 and its event parked.
    let reconnected = "IGAAtest-token-0002";
    env.graph.accept_only(&[reconnected]);
    post("17900000000009102", "9102").await;
    eventually("paused on the 190", SETTLE, || async {
        Ok(status(&env).await == "paused")
    })
    .await
    .unwrap();

    // The customer reconnects: a different token, and the account resumes.
    env.apply(&campaigns_yaml().replace(TOKEN, reconnected))
        .await
        .unwrap();
    sent("17900000000009102").await;
    assert_eq!(
        token_used_for(&env, "17900000000009102").as_deref(),
        Some(reconnected),
        "the token Meta refused is not used again"
    );
    assert_eq!(status(&env).await, "active");

    // A second reconnect, this time without a 190 first: the change to the account row tells
    // every worker to drop the token it holds.
    let rotated = "IGAAtest-token-0003";
    env.apply(&campaigns_yaml().replace(TOKEN, rotated))
        .await
        .unwrap();
    env.graph.accept_only(&[rotated]);
    // The notification travels on its own connection; give it a moment before the event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    post("17900000000009103", "9103").await;
    sent("17900000000009103").await;
    assert_eq!(
        token_used_for(&env, "17900000000009103").as_deref(),
        Some(rotated)
    );
    assert_eq!(status(&env).await, "active", "never paused again");
    let refused = env
        .graph
        .calls()
        .iter()
        .filter(|c| c.code == Some(190))
        .count();
    assert_eq!(
        refused, 1,
        "only the call with the revoked token was refused"
    );
    worker.stop().await.unwrap();
}

const OTHER_ACCOUNT: &str = "17841400000000777";
const OTHER_TOKEN: &str = "IGAAtest-token-other";

/// Two igflow accounts of one tenant; the second answers DMs that ask for prices.
fn two_accounts_yaml() -> String {
    let dm_prices = r#"
      - slug: dm-prices
        name: Prices by DM
        trigger: message
        rules:
          - keywords: [price]
        actions:
          dm: "Our prices: https://shop.example/prices""#;
    file(&[
        account(ACCOUNT, "acme.shoes", TOKEN, "[]"),
        account(OTHER_ACCOUNT, "acme.outlet", OTHER_TOKEN, dm_prices),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_seen_by_two_accounts_is_two_events() {
    let (env, webhook, worker) = running(&two_accounts_yaml()).await;
    // The first account writes to the second: Meta gives both sides the same mid, an echo
    // in the sender's webhook and a message in the recipient's.
    let mid = "aWdfShared0001";
    let echo = echo_delivery(ACCOUNT, OTHER_ACCOUNT, mid, "price?");
    assert_eq!(env.post_signed(&webhook, &echo).await.unwrap(), 200);
    worker.wait_finished(1, SETTLE).await.unwrap();
    let message = message_delivery(OTHER_ACCOUNT, ACCOUNT, mid, "price?", now_ms());
    assert_eq!(env.post_signed(&webhook, &message).await.unwrap(), 200);
    worker.wait_finished(2, SETTLE).await.unwrap();

    let answered = env.graph.accepted(|k| {
        matches!(k, CallKind::Message { sender, recipient }
            if sender == OTHER_ACCOUNT && recipient == ACCOUNT)
    });
    assert_eq!(answered.len(), 1, "the recipient's campaign answers it");
    let decisions: Vec<(String, String)> = sqlx::query_as(
        "select ig_user_id, outcome from activity where event_id = $1 and step = 'decision'
         order by ig_user_id",
    )
    .bind(format!("message:{mid}"))
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        decisions,
        [
            (ACCOUNT.to_owned(), "own_content".to_owned()),
            (OTHER_ACCOUNT.to_owned(), "matched".to_owned())
        ]
    );
    worker.stop().await.unwrap();
}

/// The DMs Meta accepted to `recipient`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_answered_500_is_read_back_from_the_thread_and_sent_only_if_never_written() {
    let (env, webhook, worker) = running(&two_accounts_yaml()).await;
    let ask =
        |sender: &str, mid: &str| message_delivery(OTHER_ACCOUNT, sender, mid, "price?", now_ms());

    // Meta writes the DM and answers 500 with its transient error (code 2); the first read of
    // the thread fails too, so the DM is found by a later attempt.
    env.graph.set_faults(Faults {
        written_server_error_share: 1.0,
        ..Faults::default()
    });
    env.graph.fail_reads(1);
    env.post_signed(&webhook, &ask("8301", "aWdfWritten500"))
        .await
        .unwrap();
    let (outcome, detail) = settled_outcome(&env, "message:aWdfWritten500", "dm").await;
    assert_eq!(
        (outcome.as_str(), detail.as_deref()),
        ("sent", Some("found on read-back after an unknown outcome"))
    );
    assert_eq!(env.graph.dms_to("8301").len(), 1, "sent once, never again");

    // The same answer without the write: not in the thread. Right away that proves nothing
    // (the call might still land); once it could have (twice the client's timeout, at least
    // 10 s), not there means never sent: sent then, once.
    env.graph.set_faults(Faults::default());
    env.graph.fail_writes(1);
    env.post_signed(&webhook, &ask("8302", "aWdfRefused500"))
        .await
        .unwrap();
    let (outcome, detail) = settled_outcome(&env, "message:aWdfRefused500", "dm").await;
    assert_eq!(
        (outcome.as_str(), detail.as_deref()),
        (
            "sent",
            Some(
                "sent after an unknown outcome: not in the thread once the earlier call could have landed"
            )
        )
    );
    let attempts = env
        .graph
        .calls()
        .iter()
        .filter(|c| matches!(&c.kind, CallKind::Message { recipient, .. } if recipient == "8302"))
        .count();
    assert_eq!(
        (attempts, env.graph.dms_to("8302").len()),
        (2, 1),
        "refused once, sent once"
    );
    worker.stop().await.unwrap();
}

/// Deletes every event claim of this test's worker fleet in Redis, as a Redis failover that
/// lost them would.
async fn flush_event_claims(env: &TestEnv) {
    use fred::prelude::*;
    let redis = env.redis().await.unwrap();
    let keys = env.redis_keys(&redis, "evt:*").await.unwrap();
    assert!(!keys.is_empty(), "the event is claimed");
    let _: i64 = redis.del(keys).await.unwrap();
    redis.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_worker_meeting_a_live_send_defers_instead_of_resolving_it() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    // Meta answers every write after 2 s; the workers wait up to 5 s.
    env.graph.set_faults(Faults {
        slow_share: 1.0,
        slow_delay: Duration::from_secs(2),
        ..Faults::default()
    });
    let settings = [
        ("IGFLOW_GRAPH_TIMEOUT_MS", "5000"),
        ("IGFLOW_BACKOFF_BASE_MS", "300"),
    ];
    let _a = env.spawn_worker_process("lease-a", &settings).unwrap();
    let _b = env.spawn_worker_process("lease-b", &settings).unwrap();
    let comment = CommentSpec::new("17900000000009201", "9201", "price?");
    let delivery = comment_delivery(ACCOUNT, &[comment]);
    env.post_signed(&webhook, &delivery).await.unwrap();
    let event = "comment:17900000000009201";
    eventually("the private reply is being sent", SETTLE, || async {
        Ok(action(&env, event, "private_reply")
            .await
            .is_some_and(|(o, _)| o == "pending"))
    })
    .await
    .unwrap();
    // Mid-send, Redis loses the claim and Meta redelivers: a second worker takes the copy.
    flush_event_claims(&env).await;
    env.post_signed(&webhook, &delivery).await.unwrap();

    for step in ["private_reply", "public_reply"] {
        let (outcome, _) = settled_outcome(&env, event, step).await;
        assert_eq!(outcome, "sent", "{step}");
    }
    eventually("every copy handled", SETTLE, || async {
        Ok(env.queue_depth().await? == (0, 0))
    })
    .await
    .unwrap();
    let calls = env.graph.calls();
    let private = calls
        .iter()
        .filter(|c| matches!(c.kind, CallKind::PrivateReply { .. }))
        .count();
    let public = calls
        .iter()
        .filter(|c| matches!(c.kind, CallKind::PublicReply { .. }))
        .count();
    assert_eq!(
        (private, public),
        (1, 1),
        "one Graph call per action: {calls:?}"
    );
}
