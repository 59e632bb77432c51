//! "The next post I publish": a comment campaign armed when it is saved answers comments on
//! the first post the account publishes afterwards. Meta sends no webhook for a new post, so
//! the worker finds it from the account's media list when comments arrive; the Graph test
//! server lists media with their publish times as Meta does.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use igflow_tests::fixtures::{ACCOUNT, file_with};
use igflow_tests::graph_server::CallKind;
use igflow_tests::harness::{SteppedWorker, TestEnv, eventually};
use igflow_tests::meta::{CommentSpec, comment_delivery};

const WAIT: Duration = Duration::from_secs(30);
const OLD_POST: &str = "18000000000000011";
const NEXT_POST: &str = "18000000000000012";
const LATER_POST: &str = "18000000000000013";

fn next_post_yaml() -> String {
    file_with(
        r#"      - slug: drop
        name: Next drop
        next_post: true
        rules:
          - keywords: [price]
        actions:
          private_reply: "The drop's prices: https://shop.example/drop"
"#,
    )
}

fn price_comment(post: &str, comment_id: &str) -> CommentSpec {
    CommentSpec {
        media_id: post.to_owned(),
        ..CommentSpec::new(comment_id, &comment_id[12..], "price?")
    }
}

/// Posts one comment and lets the worker (without its background jobs, whose reconciliation
/// would read the media list too) work it.
async fn comment(env: &TestEnv, webhook: &str, worker: &SteppedWorker, post: &str, id: &str) {
    let delivery = comment_delivery(ACCOUNT, &[price_comment(post, id)]);
    assert_eq!(env.post_signed(webhook, &delivery).await.unwrap(), 200);
    worker.finish(1, WAIT).await.unwrap();
}

fn answered(env: &TestEnv) -> Vec<String> {
    env.graph
        .accepted(|k| matches!(k, CallKind::PrivateReply { .. }))
        .into_iter()
        .filter_map(|c| match c.kind {
            CallKind::PrivateReply { comment_id, .. } => Some(comment_id),
            _ => None,
        })
        .collect()
}

async fn bound_post(env: &TestEnv) -> Option<String> {
    sqlx::query_scalar("select next_post_media from campaigns where slug = 'drop'")
        .fetch_one(env.store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_post_campaign_answers_only_the_first_post_published_after_it_was_saved() {
    let env = TestEnv::new().await.unwrap();
    env.graph
        .add_media_published(ACCOUNT, OLD_POST, Duration::from_secs(86_400));
    env.apply(&next_post_yaml()).await.unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env.stepped_worker().await.unwrap();
    let comment = |post, id| comment(&env, &webhook, &worker, post, id);

    // Nothing published since: the old post is read once (its time), then remembered.
    comment(OLD_POST, "179000000000000101").await;
    comment(OLD_POST, "179000000000000102").await;
    assert_eq!(env.graph.media_reads(ACCOUNT), 1);
    assert_eq!(bound_post(&env).await, None);

    // Two posts published; the later one is commented on first, and still only the first
    // published after the campaign was saved is its post. Meta's times are whole seconds.
    env.graph.add_media(ACCOUNT, NEXT_POST);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.graph.add_media(ACCOUNT, LATER_POST);
    comment(LATER_POST, "179000000000000103").await;
    assert_eq!(bound_post(&env).await.as_deref(), Some(NEXT_POST));
    comment(NEXT_POST, "179000000000000104").await;
    comment(OLD_POST, "179000000000000105").await;
    assert_eq!(answered(&env), ["179000000000000104"]);
    // The later post and the list; bound, the campaign reads Meta no more.
    assert_eq!(env.graph.media_reads(ACCOUNT), 3);

    // Applying the same file again keeps the post found; turning next_post off forgets it.
    env.apply(&next_post_yaml()).await.unwrap();
    assert_eq!(bound_post(&env).await.as_deref(), Some(NEXT_POST));
    env.apply(&next_post_yaml().replace("next_post: true", "next_post: false"))
        .await
        .unwrap();
    assert_eq!(bound_post(&env).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_media_read_retries_the_comment_and_it_is_answered_once() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&next_post_yaml()).await.unwrap();
    env.graph.add_media(ACCOUNT, NEXT_POST);
    env.graph.fail_reads(1);
    let webhook = env.start_webhook().await.unwrap().url;
    let _worker = env.start_worker().await.unwrap();
    let delivery = comment_delivery(ACCOUNT, &[price_comment(NEXT_POST, "179000000000000201")]);
    assert_eq!(env.post_signed(&webhook, &delivery).await.unwrap(), 200);
    eventually("the comment answered after the retry", WAIT, || async {
        Ok(!answered(&env).is_empty())
    })
    .await
    .unwrap();
    // Settled: nothing left in the queue, and one answer.
    eventually("the queue drained", WAIT, || async {
        Ok(env.queue_depth().await? == (0, 0))
    })
    .await
    .unwrap();
    assert_eq!(answered(&env), ["179000000000000201"]);
    assert_eq!(bound_post(&env).await.as_deref(), Some(NEXT_POST));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_not_yet_in_metas_list_is_still_the_next_post() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&next_post_yaml()).await.unwrap();
    // Fans comment seconds after publishing, before Meta's media list shows the post.
    env.graph.add_media_unlisted(ACCOUNT, NEXT_POST);
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env.stepped_worker().await.unwrap();
    comment(&env, &webhook, &worker, NEXT_POST, "179000000000000301").await;
    assert_eq!(bound_post(&env).await.as_deref(), Some(NEXT_POST));
    assert_eq!(answered(&env), ["179000000000000301"]);
}
