//! The raw archive and replay by time (issue 14): the real webhook keeps every verified
//! delivery in S3 (moto), and `igflow-worker replay --from --to` (the real binary: build it
//! first with `cargo build --workspace --bins`) puts a window of them back on the queue. The
//! dedupe makes a replayed window act on nothing twice, and events whose handling was lost
//! are acted on once. A data deletion removes the account's deliveries, and only theirs.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use igflow_core::archive::{ArchiveKey, META_RECEIVED_AT_MS, META_SIGNATURE, PREFIX};
use igflow_core::runtime::{self, AwsCalls};
use igflow_core::signature::sign;
use igflow_tests::fixtures::{ACCOUNT, campaigns_yaml};
use igflow_tests::graph_server::CallKind;
use igflow_tests::harness::{TestEnv, eventually};
use igflow_tests::meta::{CommentSpec, comment_delivery};

const SETTLE: Duration = Duration::from_secs(120);

/// `n` distinct comments that all match the price-list campaign, two per delivery.
fn deliveries(prefix: u32, n: u32) -> (Vec<String>, Vec<String>) {
    let comments: Vec<CommentSpec> = (0..n)
        .map(|i| {
            CommentSpec::new(
                &format!("179{prefix:03}{i:011}"),
                &format!("6{prefix:03}{i:05}"),
                "price?",
            )
        })
        .collect();
    let ids = comments.iter().map(|c| c.comment_id.clone()).collect();
    let bodies = comments
        .chunks(2)
        .map(|chunk| comment_delivery(ACCOUNT, chunk))
        .collect();
    (ids, bodies)
}

async fn replay(env: &TestEnv, bucket: &str, from: jiff::Timestamp, to: jiff::Timestamp) -> String {
    let (from, to) = (from.to_string(), to.to_string());
    let (ok, out) = env
        .worker_command(
            &["replay", "--from", &from, "--to", &to],
            &[("IGFLOW_ARCHIVE_BUCKET", bucket)],
        )
        .await
        .expect("igflow-worker is built and runs");
    assert!(ok, "{out}");
    out
}

/// Private and public replies Meta accepted, in all.
fn replies(env: &TestEnv) -> usize {
    env.graph
        .accepted(|k| {
            matches!(
                k,
                CallKind::PrivateReply { .. } | CallKind::PublicReply { .. }
            )
        })
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_window_acts_on_nothing_twice_and_recovers_lost_handling() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let bucket = env.create_archive_bucket().await.unwrap();
    let webhook = env.start_archiving_webhook(&bucket).await.unwrap();
    let from = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);

    // Handled: six comments in three deliveries, each replied to once.
    let worker = env.start_worker().await.unwrap();
    let (handled, bodies) = deliveries(41, 6);
    for body in &bodies {
        assert_eq!(env.post_signed(&webhook.url, body).await.unwrap(), 200);
    }
    let a = env.settled(&handled, SETTLE).await.unwrap();
    assert_eq!((a.acted, a.doubled.len()), (6, 0), "{a:?}");
    worker.stop().await.unwrap();

    // Lost: four more comments are archived and enqueued, then their messages vanish before
    // any worker handles them (as a purge by mistake, or a message deleted unhandled would).
    let (lost, lost_bodies) = deliveries(42, 4);
    for body in &lost_bodies {
        assert_eq!(env.post_signed(&webhook.url, body).await.unwrap(), 200);
    }
    env.sqs
        .purge_queue()
        .queue_url(&env.queue_url)
        .send()
        .await
        .unwrap();
    assert_eq!(env.queue_depth().await.unwrap(), (0, 0));
    let to = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
    assert_eq!(webhook.metrics.peek().archive_failures, 0);

    // Every delivery is one object: its body byte for byte, the signature header and the
    // receive time beside it.
    let s3 = runtime::s3_client(&env.aws, AwsCalls::Worker);
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(PREFIX)
        .send()
        .await
        .unwrap();
    let keys: Vec<ArchiveKey> = listed
        .contents()
        .iter()
        .map(|o| ArchiveKey::parse(o.key().unwrap()).unwrap())
        .collect();
    assert_eq!(keys.len(), 5);
    let first = s3
        .get_object()
        .bucket(&bucket)
        .key(keys[0].to_string())
        .send()
        .await
        .unwrap();
    let metadata = first.metadata().cloned().unwrap_or_default();
    let body = first.body.collect().await.unwrap().to_vec();
    assert_eq!(body, bodies[0].as_bytes(), "oldest first, byte for byte");
    assert_eq!(
        metadata.get(META_SIGNATURE).map(String::as_str),
        Some(sign(&env.app_secret, &body).as_str())
    );
    assert_eq!(
        metadata.get(META_RECEIVED_AT_MS),
        Some(&keys[0].received_at_ms.to_string())
    );

    // The window again, through the operator's command: the handled comments are dropped by
    // the dedupe, the lost ones are acted on once.
    let out = replay(&env, &bucket, from, to).await;
    assert!(
        out.contains("replayed 5 delivery(ies) as 10 envelope(s)"),
        "{out}"
    );
    let worker = env.start_worker().await.unwrap();
    let all: Vec<String> = handled.iter().chain(&lost).cloned().collect();
    let a = env.settled(&all, SETTLE).await.unwrap();
    assert_eq!((a.acted, a.doubled.len()), (10, 0), "{a:?}");
    worker.wait_finished(10, SETTLE).await.unwrap();
    assert_eq!(
        replies(&env),
        20,
        "one private and one public reply per comment"
    );

    // And once more: nothing at all is acted on.
    replay(&env, &bucket, from, to).await;
    worker.wait_finished(20, SETTLE).await.unwrap();
    eventually("the replayed copies worked off", SETTLE, || async {
        Ok(env.queue_depth().await? == (0, 0))
    })
    .await
    .unwrap();
    // Every copy of both replays was dropped (6 handled before, then all 10): nothing new was
    // handled. At least 16 drops, not exactly: SQS may hand the same message out twice, even
    // at once (seen here: one message received twice in one moment, both copies dropped).
    let stats = worker.stats.snapshot();
    assert_eq!(
        stats.handled, 4,
        "only the lost comments were handled: {stats:?}"
    );
    assert!(stats.duplicates >= 16, "{stats:?}");
    assert_eq!(replies(&env), 20);
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_archive_write_is_counted_and_the_delivery_still_enqueued() {
    let env = TestEnv::new().await.unwrap();
    let missing = format!("igflow-test-missing-{}", igflow_tests::harness::tag());
    let webhook = env.start_archiving_webhook(&missing).await.unwrap();
    let (_, bodies) = deliveries(43, 2);
    assert_eq!(
        env.post_signed(&webhook.url, &bodies[0]).await.unwrap(),
        200
    );
    assert_eq!(env.queue_depth().await.unwrap(), (2, 0));
    let m = webhook.metrics.peek();
    assert_eq!((m.deliveries, m.archive_failures), (1, 1));
}

/// Another account's Instagram user id (no campaign needs it: nothing here is handled).
const OTHER: &str = "17841400000000099";

/// Archived deliveries, by name.
async fn archived(env: &TestEnv, bucket: &str) -> Vec<String> {
    runtime::s3_client(&env.aws, AwsCalls::Worker)
        .list_objects_v2()
        .bucket(bucket)
        .prefix(PREFIX)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// A delivery archived before names carried accounts: only its body says whose it is.
async fn archive_unnamed(env: &TestEnv, bucket: &str, body: &str) {
    let id = igflow_core::signature::VerifiedDelivery::vouched_by_operator(body.as_bytes())
        .delivery_id();
    let key = ArchiveKey::new(igflow_tests::meta::now_ms().try_into().unwrap(), id);
    assert_eq!(key.concerns(ACCOUNT), None);
    runtime::s3_client(&env.aws, AwsCalls::Worker)
        .put_object()
        .bucket(bucket)
        .key(key.to_string())
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

/// Records a data deletion as the worker leaves it once the account's rows are gone.
async fn deletion_done(env: &TestEnv, code: &str, account: &str, outcome: &str) {
    sqlx::query(
        "insert into data_deletion_requests
           (confirmation_code, ig_user_id, requested_at, completed_at, outcome, detail)
         values ($1, $2, now(), now(), $3, 'test')",
    )
    .bind(code)
    .bind(account)
    .bind(outcome)
    .execute(env.store.pool())
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_deletion_removes_the_accounts_archived_deliveries_and_only_theirs() {
    let env = TestEnv::new().await.unwrap();
    let bucket = env.create_archive_bucket().await.unwrap();
    let webhook = env.start_archiving_webhook(&bucket).await.unwrap();
    let comment = |n: u32| CommentSpec::new(&format!("1790440{n:010}"), "600440001", "price?");
    let mine = comment_delivery(ACCOUNT, &[comment(1)]);
    let theirs = comment_delivery(OTHER, &[comment(2)]);
    // One delivery with both accounts' entries, as Meta may batch them.
    let mut both: serde_json::Value = serde_json::from_str(&mine).unwrap();
    let their_entry =
        serde_json::from_str::<serde_json::Value>(&theirs).unwrap()["entry"][0].clone();
    both["entry"].as_array_mut().unwrap().push(their_entry);
    for body in [
        &mine,
        &comment_delivery(ACCOUNT, &[comment(3)]),
        &theirs,
        &both.to_string(),
    ] {
        assert_eq!(env.post_signed(&webhook.url, body).await.unwrap(), 200);
    }
    archive_unnamed(&env, &bucket, &comment_delivery(ACCOUNT, &[comment(4)])).await;
    archive_unnamed(&env, &bucket, &comment_delivery(OTHER, &[comment(5)])).await;
    let names = archived(&env, &bucket).await;
    assert_eq!(names.len(), 6);
    let named = |account: &str| {
        names
            .iter()
            .filter(|n| ArchiveKey::parse(n).unwrap().concerns(account) == Some(true))
            .count()
    };
    assert_eq!((named(ACCOUNT), named(OTHER)), (3, 2), "{names:#?}");

    // The account's rows are gone (app_callbacks tests that); another's request was refused.
    deletion_done(&env, "code0mine", ACCOUNT, "deleted").await;
    deletion_done(&env, "code0refused", OTHER, "refused").await;
    let jobs = env
        .lifecycle(&[("IGFLOW_ARCHIVE_BUCKET", &bucket)])
        .await
        .unwrap();
    jobs.round().await;

    let left = archived(&env, &bucket).await;
    assert_eq!(
        left.len(),
        2,
        "their delivery and their unnamed one: {left:#?}"
    );
    for name in &left {
        let key = ArchiveKey::parse(name).unwrap();
        assert_ne!(key.concerns(ACCOUNT), Some(true), "{name}");
    }
    let (purged, objects, error): (bool, Option<i32>, Option<String>) = sqlx::query_as(
        "select archive_purged_at is not null, archive_objects, archive_purge_error
         from data_deletion_requests where confirmation_code = 'code0mine'",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!((purged, objects, error), (true, Some(4), None));
    let refused: bool = sqlx::query_scalar(
        "select archive_purged_at is null from data_deletion_requests
         where confirmation_code = 'code0refused'",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert!(refused, "a refused request deletes nothing");
    assert_eq!(jobs.stats.snapshot().archive_purged, 4);

    // Done once: the next round has nothing to do.
    jobs.round().await;
    assert_eq!(archived(&env, &bucket).await.len(), 2);
    assert_eq!(jobs.stats.snapshot().archive_purged, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_purge_that_fails_is_kept_on_the_request_and_retried() {
    let env = TestEnv::new().await.unwrap();
    let missing = format!("igflow-test-missing-{}", igflow_tests::harness::tag());
    deletion_done(&env, "code0failing", ACCOUNT, "nothing_to_delete").await;
    let jobs = env
        .lifecycle(&[("IGFLOW_ARCHIVE_BUCKET", &missing)])
        .await
        .unwrap();
    jobs.round().await;
    let (purged, error, later): (bool, Option<String>, bool) = sqlx::query_as(
        "select archive_purged_at is not null, archive_purge_error,
                archive_held_until > now() + interval '10 minutes'
         from data_deletion_requests where confirmation_code = 'code0failing'",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert!(!purged);
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("ListObjectsV2") && e.contains("retried")),
        "{error:?}"
    );
    assert!(later, "tried again in 15 minutes, not at every round");
    assert_eq!(jobs.stats.snapshot().archive_purge_failed, 1);
    jobs.round().await;
    assert_eq!(jobs.stats.snapshot().archive_purge_failed, 1);
}
