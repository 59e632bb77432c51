//! A person who opted out gets no automated message, whether the dashboard marked them or they
//! sent STOP; START brings them back. Real webhook, SQS (moto), worker, Redis and Postgres.

use std::time::Duration;

use igflow_tests::fixtures::{ACCOUNT, campaigns_yaml};
use igflow_tests::harness::{SteppedWorker, TestEnv, stepped_fleet};
use igflow_tests::meta::{self, CommentSpec, comment_delivery};

const WAIT: Duration = Duration::from_secs(30);

async fn decision(env: &TestEnv, event_id: &str) -> String {
    sqlx::query_scalar("select outcome from activity where event_id = $1 and step = 'decision'")
        .bind(event_id)
        .fetch_one(env.store.pool())
        .await
        .expect("a decision is recorded")
}

async fn opted_out(env: &TestEnv, igsid: &str) -> bool {
    sqlx::query_scalar("select opted_out from contacts where igsid = $1")
        .bind(igsid)
        .fetch_one(env.store.pool())
        .await
        .expect("the contact is known")
}

/// Posts one delivery of `events` events and works them.
async fn deliver(env: &TestEnv, webhook: &str, worker: &SteppedWorker, body: &str, events: usize) {
    let status = env
        .post_signed(webhook, body)
        .await
        .expect("webhook answers");
    assert_eq!(status, 200);
    worker
        .finish(events, WAIT)
        .await
        .expect("the worker finishes the event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_opted_out_in_the_dashboard_gets_nothing() {
    let (env, webhook, worker) = stepped_fleet(&campaigns_yaml()).await;
    sqlx::query(
        "insert into contacts (account_id, igsid, opted_out)
         select id, '6401', true from ig_accounts where ig_user_id = $1",
    )
    .bind(ACCOUNT)
    .execute(env.store.pool())
    .await
    .unwrap();

    let comments = [
        CommentSpec::new("17900000000004001", "6401", "price?"),
        CommentSpec::new("17900000000004002", "6402", "price?"),
    ];
    deliver(
        &env,
        &webhook,
        &worker,
        &comment_delivery(ACCOUNT, &comments),
        2,
    )
    .await;

    assert_eq!(
        decision(&env, "comment:17900000000004001").await,
        "contact_opted_out"
    );
    assert_eq!(decision(&env, "comment:17900000000004002").await, "matched");
    let recipients: Vec<String> = env
        .graph
        .accepted(|_| true)
        .into_iter()
        .map(|c| format!("{:?}", c.kind))
        .collect();
    assert_eq!(recipients.len(), 2, "only 6402's private and public reply");
    assert!(
        recipients.iter().all(|k| k.contains("17900000000004002")),
        "{recipients:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_by_message_opts_out_and_start_opts_back_in() {
    let (env, webhook, worker) = stepped_fleet(&campaigns_yaml()).await;
    let message =
        |mid: &str, text: &str| meta::message_delivery(ACCOUNT, "6501", mid, text, meta::now_ms());
    let comment = |id: &str| comment_delivery(ACCOUNT, &[CommentSpec::new(id, "6501", "price?")]);

    deliver(&env, &webhook, &worker, &message("aWdfStop", "STOP"), 1).await;
    assert_eq!(decision(&env, "message:aWdfStop").await, "opted_out");
    assert!(opted_out(&env, "6501").await);

    deliver(&env, &webhook, &worker, &comment("17900000000005001"), 1).await;
    assert_eq!(
        decision(&env, "comment:17900000000005001").await,
        "contact_opted_out"
    );
    assert!(
        env.graph.accepted(|_| true).is_empty(),
        "nothing sent while opted out"
    );

    deliver(&env, &webhook, &worker, &message("aWdfStart", "Start"), 1).await;
    assert_eq!(decision(&env, "message:aWdfStart").await, "opted_in");
    assert!(!opted_out(&env, "6501").await);

    deliver(&env, &webhook, &worker, &comment("17900000000005002"), 1).await;
    assert_eq!(decision(&env, "comment:17900000000005002").await, "matched");
    assert_eq!(
        env.graph.accepted(|_| true).len(),
        2,
        "a private and a public reply once opted back in"
    );
}
