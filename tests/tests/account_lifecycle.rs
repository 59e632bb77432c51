//! The account lifecycle jobs against the Graph test server: a token refreshed before it
//! expires and used by the next call; an unsubscribed account subscribed again, a refused
//! subscription marked; comments and replies made while the webhook was down recovered and
//! answered once, the account's own replies never;
//! two workers running the jobs at once doing each once.

use std::time::Duration;

use igflow_core::ids::IgUserId;
use igflow_core::subscription::WEBHOOK_FIELDS;
use igflow_tests::fixtures::{ACCOUNT, TOKEN, campaigns_yaml};
use igflow_tests::graph_server::{APP_TOKEN, CallKind};
use igflow_tests::harness::{RunningWorker, TestEnv, eventually};
use igflow_tests::meta::{CommentSpec, comment_delivery, now_ms};
use igflow_worker::clients::store::Account;
use igflow_worker::jobs::lifecycle::Lifecycle;
use igflow_worker::jobs::reconcile::reconcile;
use igflow_worker::jobs::subscriptions::{Audit, audit};
use secrecy::ExposeSecret;

const WAIT: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// The media the test comments are on (the fixtures' default).
const MEDIA: &str = "18000000000000001";

/// The lifecycle jobs as a worker runs them, with these settings, outside a worker.
async fn lifecycle(env: &TestEnv, overrides: &[(&str, &str)]) -> Lifecycle {
    env.lifecycle(overrides).await.expect("lifecycle connects")
}

async fn account(env: &TestEnv) -> Account {
    env.worker_store
        .account(&IgUserId::parse(ACCOUNT).expect("fixture id"))
        .await
        .expect("account read")
        .expect("account applied")
}

/// The fixture's token, issued 55 days ago, expires in 5 days; the account knows it.
async fn token_expiring_in_five_days(env: &TestEnv) {
    env.graph.issue_token(TOKEN, ACCOUNT, DAY * 55, DAY * 5);
    sqlx::query(
        "update ig_accounts set token_updated_at = now() - interval '55 days',
                                token_expires_at = now() + interval '5 days'",
    )
    .execute(env.store.pool())
    .await
    .expect("expiry set");
}

/// `n` comments saying "price?" from distinct people, written `ago` (the first oldest).
fn comments(prefix: u32, n: u32, ago: Duration) -> Vec<(String, String, Duration)> {
    (0..n)
        .map(|i| {
            (
                format!("179{prefix:03}{i:011}"),
                format!("9{prefix:03}{i:012}"),
                ago.saturating_sub(Duration::from_secs(u64::from(i))),
            )
        })
        .collect()
}

/// A worker whose own reconciliation looks back nowhere: only the test's runs recover.
async fn worker_not_reconciling(env: &TestEnv) -> RunningWorker {
    env.start_worker_with(
        &[("IGFLOW_RECONCILE_LOOKBACK_HOURS", "0")],
        env.worker_store.clone(),
    )
    .await
    .expect("worker starts")
}

fn add_to_graph(env: &TestEnv, list: &[(String, String, Duration)]) {
    for (id, from, ago) in list {
        env.graph.add_comment(MEDIA, id, from, "price?", *ago);
    }
}

fn private_replies(env: &TestEnv) -> Vec<(String, Option<String>)> {
    env.graph
        .accepted(|k| matches!(k, CallKind::PrivateReply { .. }))
        .into_iter()
        .filter_map(|c| match c.kind {
            CallKind::PrivateReply { comment_id, .. } => Some((comment_id, c.token)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed_and_the_next_call_uses_it() {
    let env = TestEnv::new().await.expect("test environment");
    env.apply(&campaigns_yaml()).await.expect("campaigns apply");
    token_expiring_in_five_days(&env).await;
    let webhook = env.start_webhook().await.expect("webhook").url;
    let worker = env.start_worker().await.expect("worker starts");

    eventually("the token refreshed", WAIT, || async {
        Ok(worker.stats.snapshot().tokens_refreshed == 1)
    })
    .await
    .unwrap();
    assert_eq!(env.graph.refreshed(), [TOKEN], "refreshed once");
    let (days_left, error): (f64, Option<String>) = sqlx::query_as(
        "select (extract(epoch from token_expires_at - now()) / 86400)::float8, token_refresh_error
         from ig_accounts",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert!(
        days_left > 59.0,
        "expiry recorded from Meta's answer: {days_left}"
    );
    assert_eq!(error, None);
    let a = account(&env).await;
    let stored = env.tokens().get(a.id, &a.token_secret_ref).await.unwrap();
    assert_ne!(
        stored.expose_secret(),
        TOKEN,
        "the new token is in Secrets Manager"
    );

    let comment = CommentSpec::new("17900000000000777", "9000000000000777", "price?");
    let status = env
        .post_signed(&webhook, &comment_delivery(ACCOUNT, &[comment]))
        .await
        .unwrap();
    assert_eq!(status, 200);
    eventually("the private reply", WAIT, || async {
        Ok(!private_replies(&env).is_empty())
    })
    .await
    .unwrap();
    assert_eq!(
        private_replies(&env)[0].1.as_deref(),
        Some(stored.expose_secret()),
        "the next call uses the refreshed token"
    );
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_refresh_close_to_expiry_is_shown_and_raises_token_expiring() {
    let env = TestEnv::new().await.expect("test environment");
    env.apply(&campaigns_yaml()).await.expect("campaigns apply");
    // Meta no longer knows the token: it refuses the refresh.
    sqlx::query(
        "update ig_accounts set token_updated_at = now() - interval '57 days',
                                token_expires_at = now() + interval '3 days'",
    )
    .execute(env.store.pool())
    .await
    .unwrap();
    let jobs = lifecycle(&env, &[]).await;
    jobs.round().await;
    let s = jobs.stats.snapshot();
    assert_eq!((s.token_refresh_failed, s.token_expiring), (1, 1));
    let error: Option<String> = sqlx::query_scalar("select token_refresh_error from ig_accounts")
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("Meta refused the refresh")),
        "{error:?}"
    );
    // Retried after IGFLOW_TOKEN_RETRY_SECONDS, not at the next round.
    jobs.round().await;
    assert_eq!(jobs.stats.snapshot().token_refresh_failed, 1);
}

#[tokio::test]
async fn a_facebook_login_tokens_expiry_is_read_from_meta() {
    let env = TestEnv::new().await.expect("test environment");
    let yaml = campaigns_yaml().replace(
        "login: instagram",
        "login: facebook\n    page_id: \"100000000000001\"",
    );
    env.apply(&yaml).await.expect("campaigns apply");
    env.graph.issue_token(TOKEN, ACCOUNT, DAY * 57, DAY * 3);
    let expiry = || async {
        sqlx::query_scalar::<_, Option<f64>>(
            "select (extract(epoch from token_expires_at - now()) / 86400)::float8 from ig_accounts",
        )
        .fetch_one(env.store.pool())
        .await
        .unwrap()
    };

    // Without the app's token Meta does not answer about an ordinary user's token.
    lifecycle(&env, &[]).await.round().await;
    assert_eq!(expiry().await, None, "nothing learned");
    sqlx::query("delete from job_leases")
        .execute(env.store.pool())
        .await
        .unwrap();

    let jobs = lifecycle(&env, &[("IGFLOW_FB_APP_TOKEN", APP_TOKEN)]).await;
    jobs.round().await;
    let days_left = expiry().await.expect("expiry learned");
    assert!((2.9..3.1).contains(&days_left), "{days_left}");
    let s = jobs.stats.snapshot();
    assert_eq!((s.token_expiring, s.tokens_refreshed), (1, 0));
    assert!(
        env.graph.refreshed().is_empty(),
        "Facebook Login tokens are not refreshed"
    );
}

#[tokio::test]
async fn an_unsubscribed_account_is_subscribed_again_and_a_refusal_is_marked() {
    let env = TestEnv::new().await.expect("test environment");
    env.apply(&campaigns_yaml()).await.expect("campaigns apply");
    let jobs = lifecycle(&env, &[("IGFLOW_QUIET_SECONDS", "0")]).await;
    let a = account(&env).await;

    let all: Vec<String> = WEBHOOK_FIELDS.iter().map(|f| (*f).to_owned()).collect();
    assert_eq!(
        audit(&jobs, &a).await.unwrap(),
        Audit::Resubscribed(all.clone())
    );
    assert_eq!(env.graph.subscribed_fields(ACCOUNT), all);
    assert_eq!(audit(&jobs, &a).await.unwrap(), Audit::Subscribed);
    assert_eq!(
        env.graph.subscribes(ACCOUNT),
        1,
        "nothing to renew the second time"
    );

    env.graph.unsubscribe(ACCOUNT);
    env.graph.fail_subscribes(1);
    assert!(matches!(audit(&jobs, &a).await.unwrap(), Audit::Failed(_)));
    let (fields, error): (Vec<String>, Option<String>) =
        sqlx::query_as("select webhook_fields, subscription_error from ig_accounts")
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert!(fields.is_empty(), "{fields:?}");
    assert!(
        error.as_deref().is_some_and(|e| e.contains("refused")),
        "the account is marked: {error:?}"
    );
    let s = jobs.stats.snapshot();
    assert_eq!((s.resubscribed, s.resubscribe_failed), (1, 1));

    // The round renews it and, with active campaigns and no event at all, finds it silent.
    jobs.round().await;
    let s = jobs.stats.snapshot();
    assert_eq!((s.resubscribed, s.account_silent), (2, 1));
    let error: Option<String> = sqlx::query_scalar("select subscription_error from ig_accounts")
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert_eq!(error, None, "a renewed subscription clears the mark");
}

#[tokio::test]
async fn comments_missed_while_the_webhook_was_down_are_recovered_and_answered_once() {
    let env = TestEnv::new().await.expect("test environment");
    env.apply(&campaigns_yaml()).await.expect("campaigns apply");
    let webhook = env.start_webhook().await.expect("webhook").url;
    let worker = worker_not_reconciling(&env).await;
    env.graph.add_media(ACCOUNT, MEDIA);
    let missed = comments(1, 50, Duration::from_secs(3 * 3600));
    let live = comments(2, 10, Duration::from_secs(600));
    add_to_graph(&env, &missed);
    add_to_graph(&env, &live);
    let specs: Vec<CommentSpec> = live
        .iter()
        .map(|(id, from, _)| CommentSpec::new(id, from, "price?"))
        .collect();
    let status = env
        .post_signed(&webhook, &comment_delivery(ACCOUNT, &specs))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let live_ids: Vec<String> = live.iter().map(|c| c.0.clone()).collect();
    let a = env.settled(&live_ids, WAIT).await.unwrap();
    assert_eq!(a.acted, 10, "{a:?}");

    let jobs = lifecycle(&env, &[]).await;
    let since = i64::try_from(now_ms()).unwrap() - 24 * 3600 * 1000;
    let done = reconcile(&jobs, &account(&env).await, since).await.unwrap();
    assert_eq!(
        (done.media, done.comments_read, done.recovered),
        (2, 70, 50),
        "the launch reel and the recent post; 60 comments and the account's public answers to \
         the 10 delivered live, never recovered; {done:?}"
    );
    assert_eq!(jobs.stats.snapshot().recovered_events, 50);

    let all: Vec<String> = missed.iter().chain(&live).map(|c| c.0.clone()).collect();
    let a = env.settled(&all, WAIT * 2).await.unwrap();
    assert_eq!(
        (a.acted, a.doubled.len(), a.missing.len()),
        (60, 0, 0),
        "{a:?}"
    );
    let again = reconcile(&jobs, &account(&env).await, since).await.unwrap();
    assert_eq!(again.recovered, 0, "all seen now");
    let replies = private_replies(&env);
    assert_eq!(replies.len(), 60, "one private reply per comment");
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn replies_are_recovered_but_never_the_accounts_own_and_recent_media_are_paged() {
    let env = TestEnv::new().await.expect("test environment");
    env.apply(&campaigns_yaml()).await.expect("campaigns apply");
    let worker = worker_not_reconciling(&env).await;
    for n in 0..60 {
        env.graph.add_media(ACCOUNT, &format!("180000000100{n:05}"));
    }
    env.graph.add_media(ACCOUNT, MEDIA);
    // A comment from before the private-reply window whose thread is still alive: the
    // account's own 55 answers (more than a page), then a person asking.
    let (old, reply) = ("17900000000000100", "17900000000000199");
    env.graph
        .add_comment(MEDIA, old, "9000000000000100", "love it", DAY * 10);
    for i in 0..55u64 {
        let ago = Duration::from_secs(7200 - i);
        let id = format!("179000000002{i:05}");
        env.graph.add_reply(old, &id, ACCOUNT, "Sent you a DM", ago);
    }
    env.graph.add_reply(
        old,
        reply,
        "9000000000000199",
        "price?",
        Duration::from_secs(3600),
    );

    let jobs = lifecycle(&env, &[("IGFLOW_RECONCILE_RECENT_MEDIA", "55")]).await;
    let since = i64::try_from(now_ms()).unwrap() - 24 * 3600 * 1000;
    let done = reconcile(&jobs, &account(&env).await, since).await.unwrap();
    assert_eq!(
        (done.media, done.comments_read, done.recovered),
        (56, 57, 1),
        "the 55 newest media (two pages) and the launch reel; the comment and its 56 replies; {done:?}"
    );
    let a = env.settled(&[reply.to_owned()], WAIT).await.unwrap();
    assert_eq!((a.acted, a.doubled.len()), (1, 0), "{a:?}");
    let replies = private_replies(&env);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].0, reply);
    let again = reconcile(&jobs, &account(&env).await, since).await.unwrap();
    assert_eq!(
        again.recovered, 0,
        "seen now; the public answer it got is the account's own"
    );
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn two_workers_running_the_jobs_at_once_do_each_once() {
    let env = TestEnv::new().await.expect("test environment");
    env.apply(&campaigns_yaml()).await.expect("campaigns apply");
    token_expiring_in_five_days(&env).await;
    add_to_graph(&env, &comments(3, 5, Duration::from_secs(3600)));
    env.graph.add_media(ACCOUNT, MEDIA);
    let (a, b) = (lifecycle(&env, &[]).await, lifecycle(&env, &[]).await);

    tokio::join!(a.round(), b.round());
    tokio::join!(a.round(), b.round());

    let (sa, sb) = (a.stats.snapshot(), b.stats.snapshot());
    assert_eq!(env.graph.refreshed(), [TOKEN], "one refresh");
    assert_eq!(env.graph.subscribes(ACCOUNT), 1, "one subscription");
    assert_eq!(
        (
            sa.tokens_refreshed + sb.tokens_refreshed,
            sa.resubscribed + sb.resubscribed,
            sa.recovered_events + sb.recovered_events,
        ),
        (1, 1, 5)
    );
}

/// What Postgres notifies within a short wait, if anything.
async fn notified(
    changes: &mut igflow_worker::clients::store::Changes,
) -> Option<Option<uuid::Uuid>> {
    tokio::time::timeout(Duration::from_millis(500), changes.next())
        .await
        .ok()
        .map(|n| n.expect("listening"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_bookkeeping_leaves_worker_caches_alone_and_a_new_token_does_not() {
    let env = TestEnv::new().await.expect("env");
    env.apply(&campaigns_yaml()).await.expect("applied");
    let id = account(&env).await.id;
    let store = &env.worker_store;
    let mut changes = store.changes().await.expect("listening");

    // Bookkeeping the workers never read: the audit's result, a failed refresh, a learned expiry.
    let fields: Vec<String> = WEBHOOK_FIELDS.iter().map(|f| (*f).to_owned()).collect();
    store
        .subscription_checked(id, Some(&fields), None)
        .await
        .expect("audit recorded");
    store
        .token_refresh_failed(id, "Meta said no")
        .await
        .expect("failure recorded");
    sqlx::query("update ig_accounts set token_expires_at = now() + interval '50 days'")
        .execute(env.store.pool())
        .await
        .expect("expiry recorded");
    assert_eq!(
        notified(&mut changes).await,
        None,
        "nothing a worker caches changed"
    );

    // A refreshed token must reach every worker at once, as must a pause.
    store
        .token_refreshed(id, DAY * 60)
        .await
        .expect("refresh recorded");
    assert_eq!(notified(&mut changes).await, Some(Some(id)));
    store
        .pause_account(id, "token revoked")
        .await
        .expect("paused");
    assert_eq!(notified(&mut changes).await, Some(Some(id)));
}
