//! Fault tests: workers killed and stopped mid-batch, deliveries repeated, Redis restarted,
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]
//! Postgres unreachable, the Graph API failing, an account's token revoked. Each ends with an
//! accounting of every event: acted on exactly once at the Graph test server, recorded as
//! failed for good with a reason, or in the DLQ. Nothing else is allowed.
//!
//! The worker processes are the real `igflow-worker` binary: `cargo build --workspace --bins`
//! first (scripts/test.sh does).

use std::time::{Duration, Instant};

use igflow_tests::faults::{RedisServer, TcpProxy};
use igflow_tests::fixtures::{ACCOUNT, TOKEN, campaigns_yaml};
use igflow_tests::graph_server::Faults;
use igflow_tests::harness::{Accounting, MAX_RECEIVE_COUNT, TestEnv, eventually};
use igflow_tests::meta::{CommentSpec, comment_delivery};
use igflow_worker::clients::store::Store;
use igflow_worker::config::StoreConfig;
use igflow_worker::ops::dlq::{Dlq, Selection};
use secrecy::SecretString;

const SETTLE: Duration = Duration::from_secs(180);
/// Worker processes hide messages this long (and hold claims as long): short, so that a
/// killed worker's messages come back within the test.
const PROCESS_ENV: &[(&str, &str)] = &[
    ("IGFLOW_VISIBILITY_SECONDS", "5"),
    ("IGFLOW_CONSUMERS", "3"),
    ("IGFLOW_UNPARK_SECONDS", "1"),
    ("IGFLOW_THROTTLE_PAUSE_SECONDS", "1"),
];

async fn env() -> TestEnv {
    let env = TestEnv::new()
        .await
        .expect("test environment (run scripts/services.sh)");
    env.apply(&campaigns_yaml()).await.expect("campaigns apply");
    env
}

/// `n` distinct comments that all match the price-list campaign.
fn comments(prefix: u32, n: u32) -> Vec<CommentSpec> {
    (0..n)
        .map(|i| {
            CommentSpec::new(
                &format!("179{prefix:03}{i:011}"),
                &format!("6{prefix:03}{i:05}"),
                "price? \u{1F60D}",
            )
        })
        .collect()
}

fn ids(comments: &[CommentSpec]) -> Vec<String> {
    comments.iter().map(|c| c.comment_id.clone()).collect()
}

fn deliveries(comments: &[CommentSpec], per: usize) -> Vec<String> {
    comments
        .chunks(per)
        .map(|chunk| comment_delivery(ACCOUNT, chunk))
        .collect()
}

async fn post_all(env: &TestEnv, webhook: &str, bodies: &[String]) {
    for body in bodies {
        assert_eq!(env.post_signed(webhook, body).await.unwrap(), 200);
    }
}

/// Waits for every event to end somewhere, prints the counts, and checks the invariants.
async fn settle(env: &TestEnv, name: &str, comments: &[CommentSpec]) -> Accounting {
    let a = env.settled(&ids(comments), SETTLE).await.unwrap();
    println!(
        "[{name}] events={} acted_once={} failed_for_good={} in_dlq={} doubled={} missing={} graph_calls={} dlq_messages={} still_uncertain={}",
        a.events,
        a.acted,
        a.permanent,
        a.in_dlq,
        a.doubled.len(),
        a.missing.len(),
        a.attempts,
        a.dlq_messages,
        a.uncertain
    );
    assert!(
        a.doubled.is_empty(),
        "[{name}] answered twice: {:?}",
        a.doubled
    );
    assert!(a.missing.is_empty(), "[{name}] lost: {:?}", a.missing);
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_mid_batch_lose_and_double_nothing() {
    let env = env().await;
    let webhook = env.start_webhook().await.unwrap().url;
    let mut a = env.spawn_worker_process("kill-a", PROCESS_ENV).unwrap();
    let _b = env.spawn_worker_process("kill-b", PROCESS_ENV).unwrap();
    let comments = comments(1, 300);
    post_all(&env, &webhook, &deliveries(&comments, 10)).await;
    for round in 0..4 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        a.kill9().await.unwrap();
        a = env
            .spawn_worker_process(&format!("kill-a{round}"), PROCESS_ENV)
            .unwrap();
    }
    let acc = settle(&env, "kill -9", &comments).await;
    assert_eq!(acc.in_dlq, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_or_hands_back_within_the_deadline() {
    let env = env().await;
    let webhook = env.start_webhook().await.unwrap().url;
    // Slow Graph calls keep work in flight when SIGTERM arrives.
    env.graph.set_faults(Faults {
        slow_share: 0.3,
        slow_delay: Duration::from_millis(1500),
        ..Faults::default()
    });
    let comments = comments(2, 200);
    post_all(&env, &webhook, &deliveries(&comments, 10)).await;
    let mut overrides = PROCESS_ENV.to_vec();
    overrides.push(("IGFLOW_SHUTDOWN_SECONDS", "3"));
    let mut worker = env.spawn_worker_process("sigterm", &overrides).unwrap();
    eventually("the worker to be busy", Duration::from_secs(60), || async {
        Ok(env.graph.calls().len() >= 30)
    })
    .await
    .unwrap();
    let asked = Instant::now();
    worker.sigterm().await.unwrap();
    let status = worker.wait_exit(Duration::from_secs(15)).await.unwrap();
    let took = asked.elapsed();
    println!("[sigterm] exited with {status} {took:?} after SIGTERM (deadline 3 s)");
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(8), "took {took:?}");

    env.graph.set_faults(Faults::default());
    let finisher = env
        .spawn_worker_process("sigterm-finisher", PROCESS_ENV)
        .unwrap();
    let acc = settle(&env, "sigterm", &comments).await;
    assert_eq!(acc.in_dlq, 0);
    drop(finisher);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_delivery_three_times_interleaved_acts_once() {
    let env = env().await;
    let webhook = env.start_webhook().await.unwrap().url;
    let first = env.start_worker().await.unwrap();
    let second = env.start_worker().await.unwrap();
    let comments = comments(3, 200);
    let bodies = deliveries(&comments, 5);
    let mut order: Vec<&String> = bodies.iter().chain(&bodies).chain(&bodies).collect();
    fastrand::shuffle(&mut order);
    for body in order {
        assert_eq!(env.post_signed(&webhook, body).await.unwrap(), 200);
    }
    let acc = settle(&env, "3x delivery", &comments).await;
    assert_eq!(acc.acted, 200);
    // Copies that met their event in progress come back once it is done, and are dropped then.
    eventually("every copy finished", SETTLE, || async {
        let (s1, s2) = (first.stats.snapshot(), second.stats.snapshot());
        Ok(s1.handled + s2.handled + s1.duplicates + s2.duplicates >= 600)
    })
    .await
    .unwrap();
    let (s1, s2) = (first.stats.snapshot(), second.stats.snapshot());
    println!(
        "[3x delivery] handled={} duplicates_dropped={} left_while_busy={}",
        s1.handled + s2.handled,
        s1.duplicates + s2.duplicates,
        s1.busy + s2.busy
    );
    // SQS (and moto) may deliver a message more than once: exactly 200 receipts did the work.
    assert_eq!(s1.handled + s2.handled, 200);
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_dedupe_state_but_no_event_is_doubled() {
    let env = env().await;
    let webhook = env.start_webhook().await.unwrap().url;
    let mut redis = RedisServer::start().await.unwrap();
    let url = redis.url();
    let worker = env
        .start_worker_with(&[("REDIS_URL", url.as_str())], env.worker_store.clone())
        .await
        .unwrap();
    let comments = comments(4, 200);
    let bodies = deliveries(&comments, 10);
    post_all(&env, &webhook, &bodies).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.restart(Duration::from_secs(2)).await.unwrap();
    // Meta redelivers everything after the restart: the done-markers are gone with Redis.
    post_all(&env, &webhook, &bodies).await;
    let acc = settle(&env, "redis restart", &comments).await;
    assert_eq!(acc.acted, 200);
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_for_seconds_delays_but_loses_nothing() {
    let env = env().await;
    let webhook = env.start_webhook().await.unwrap().url;
    let (proxy, proxied) = TcpProxy::in_front_of(&env.database_url).await.unwrap();
    let store = Store::connect(&StoreConfig::new(SecretString::from(proxied)))
        .await
        .unwrap();
    let worker = env.start_worker_with(&[], store).await.unwrap();
    let comments = comments(5, 200);
    let bodies = deliveries(&comments, 10);
    post_all(&env, &webhook, &bodies[..2]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The database goes away while most of the events arrive (the webhook needs none).
    proxy.cut();
    post_all(&env, &webhook, &bodies[2..]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.restore();
    let acc = settle(&env, "postgres down 4 s", &comments).await;
    let retried = worker.stats.snapshot().retried;
    println!("[postgres down 4 s] retried={retried}");
    assert_eq!(acc.in_dlq, 0);
    assert!(retried > 0, "events met the outage and were retried");
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_api_errors_timeouts_and_throttling_are_absorbed() {
    let env = env().await;
    let webhook = env.start_webhook().await.unwrap().url;
    env.graph.set_faults(Faults {
        server_error_share: 0.1,
        slow_share: 0.1,
        // Past the worker's 2 s client timeout: Meta acted, the worker does not know.
        slow_delay: Duration::from_millis(2500),
        throttle_share: 0.1,
        regain_access_minutes: 0,
        // Written, then answered 504 by a gateway with no Graph error body.
        gateway_error_share: 0.05,
        app_throttle_share: 0.0,
        written_server_error_share: 0.0,
        latency: Duration::ZERO,
    });
    // Throttled answers report 100% usage; the account is then paced, here by 50 ms per call
    // so that the run ends in seconds.
    let worker = env
        .start_worker_with(
            &[
                ("IGFLOW_THROTTLE_PAUSE_SECONDS", "1"),
                ("IGFLOW_PACE_MAX_MS", "50"),
                // Retries from 1 s, so that five failed attempts end within the test.
                ("IGFLOW_BACKOFF_BASE_MS", "1000"),
                ("IGFLOW_CONSUMERS", "4"),
            ],
            env.worker_store.clone(),
        )
        .await
        .unwrap();
    let comments = comments(6, 200);
    post_all(&env, &webhook, &deliveries(&comments, 10)).await;
    // With 30% of calls failing, an event now and then fails all of its receives and lands in
    // the DLQ (to be redriven): allowed, as long as it is not lost or doubled.
    let acc = settle(&env, "graph faults", &comments).await;
    let s = worker.stats.snapshot();
    println!(
        "[graph faults] retried={} uncertain_resolved={} sent={}",
        s.retried, s.uncertain, s.sent
    );
    assert_eq!(acc.acted + acc.in_dlq, 200);
    assert!(s.uncertain > 0, "some outcomes were unknown and resolved");
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_answered_by_a_gateway_error_after_meta_sent_it_is_not_sent_again() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&format!(
        "{}      - slug: dm-prices
        name: Prices by DM
        trigger: message
        rules:
          - keywords: [price]
        actions:
          dm: \"Our prices: https://shop.example/prices\"
",
        campaigns_yaml()
    ))
    .await
    .unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env
        .start_worker_with(
            &[("IGFLOW_BACKOFF_BASE_MS", "300")],
            env.worker_store.clone(),
        )
        .await
        .unwrap();
    env.graph.set_faults(Faults {
        gateway_error_share: 1.0,
        ..Faults::default()
    });
    let ask = igflow_tests::meta::message_delivery(
        ACCOUNT,
        "8201",
        "aWdfGateway",
        "price?",
        igflow_tests::meta::now_ms(),
    );
    env.post_signed(&webhook, &ask).await.unwrap();
    worker.wait_finished(1, SETTLE).await.unwrap();
    let dms = env.graph.dms_to("8201");
    assert_eq!(dms.len(), 1, "Meta sent it once; it is never sent again");
    assert_eq!(
        action_outcome(&env, "message:aWdfGateway", "dm")
            .await
            .as_deref(),
        Some("sent"),
        "found in the thread on read-back"
    );
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_pauses_the_account_and_its_events_wait_for_the_fix() {
    let env = env().await;
    let webhook = env.start_webhook().await.unwrap().url;
    env.graph.accept_only(&["some-other-token"]);
    let worker = env
        .start_worker_with(&[("IGFLOW_UNPARK_SECONDS", "1")], env.worker_store.clone())
        .await
        .unwrap();
    let comments = comments(7, 150);
    post_all(&env, &webhook, &deliveries(&comments, 10)).await;

    let parked = || async {
        let n: i64 = sqlx::query_scalar("select count(*) from parked_events")
            .fetch_one(env.store.pool())
            .await?;
        anyhow::Ok(n)
    };
    eventually("every event parked", Duration::from_secs(60), || async {
        Ok(parked().await? == 150)
    })
    .await
    .unwrap();
    let status: String = sqlx::query_scalar("select status from ig_accounts where ig_user_id = $1")
        .bind(ACCOUNT)
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert_eq!(status, "paused");
    assert!(env.graph.accepted(|_| true).is_empty());
    // Only the events already in flight when Meta first refused the token called Meta (at most
    // the worker's in-flight bound: 2 consumers x 50); the rest were parked without a call.
    let refused = env.graph.calls().len();
    println!("[revoked token] calls refused with 190 before the pause took hold: {refused}");
    assert!((1..=100).contains(&refused), "{refused}");

    // The customer reconnects: Meta accepts the token again and the file is applied.
    env.graph.accept_only(&[TOKEN]);
    env.apply(&campaigns_yaml()).await.unwrap();
    let acc = settle(&env, "revoked token", &comments).await;
    assert_eq!(acc.acted, 150);
    assert_eq!(parked().await.unwrap(), 0);
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_goes_to_the_dlq_with_its_reason_and_operators_redrive_and_replay() {
    let env = env().await;
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env
        .start_worker_with(
            &[("IGFLOW_VISIBILITY_SECONDS", "1")],
            env.worker_store.clone(),
        )
        .await
        .unwrap();
    for body in ["not an envelope", "{\"v\":9}"] {
        env.sqs
            .send_message()
            .queue_url(&env.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let dlq = Dlq::connect(
        env.sqs.clone(),
        env.queue_url.clone(),
        env.worker_store.clone(),
    )
    .await
    .unwrap();
    eventually("poison in the DLQ", Duration::from_secs(60), || async {
        let letters = dlq.peek(10).await?;
        dlq.release(&letters).await?;
        Ok(letters.len() == 2)
    })
    .await
    .unwrap();
    let letters = dlq.peek(10).await.unwrap();
    dlq.release(&letters).await.unwrap();
    for l in &letters {
        assert_eq!(l.kind, None);
        assert!(l.receive_count >= MAX_RECEIVE_COUNT, "{l:?}");
        let error = l.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("envelope"), "recorded reason: {error}");
    }
    assert_eq!(
        worker.stats.snapshot().poison,
        u64::from(2 * MAX_RECEIVE_COUNT)
    );

    // An envelope that ended in the DLQ (say, during a long outage) is redriven by event id.
    let lost = comments(8, 2);
    let body = comment_delivery(ACCOUNT, &lost[..1]);
    let envelope = igflow_core::splitter::split(
        igflow_core::signature::VerifiedDelivery::vouched_by_operator(body.as_bytes()),
        0,
    )
    .unwrap()
    .remove(0);
    env.sqs
        .send_message()
        .queue_url(&env.dlq_url)
        .message_body(envelope.encode())
        .send()
        .await
        .unwrap();
    let moved = dlq
        .redrive(&Selection::Ids(vec![envelope.event_id.to_string()]), 100)
        .await
        .unwrap();
    assert_eq!(moved, 1);

    // A replay of captured deliveries: the first comment again (dropped as done) and a new one.
    let replay = format!("{}\n{}\n", body, comment_delivery(ACCOUNT, &lost[1..]));
    let queue =
        igflow_core::runtime::queue::QueueSender::new(env.sqs.clone(), env.queue_url.clone());
    let summary = igflow_worker::ops::replay::replay(&replay, &queue, 0)
        .await
        .unwrap();
    assert_eq!((summary.deliveries, summary.envelopes), (2, 2));
    let acc = settle(&env, "dlq + replay", &lost).await;
    assert_eq!(acc.acted, 2);
    assert_eq!(acc.dlq_messages, 2, "the poison stays in the DLQ");
    drop(webhook);
    worker.stop().await.unwrap();
}

/// Sends one Redis command to the test's Redis.
async fn redis_command(env: &TestEnv, command: &'static str, args: &[&str]) {
    use fred::prelude::*;
    let redis = Client::new(
        Config::from_url(&env.services.redis_url).unwrap(),
        None,
        None,
        None,
    );
    redis.init().await.unwrap();
    let args: Vec<Value> = args.iter().map(|a| Value::from(*a)).collect();
    let _: Value = redis.custom(fred::cmd!(command), args).await.unwrap();
    redis.quit().await.unwrap();
}

/// Turns one Redis key into a list, so that the worker's next use of it fails with WRONGTYPE:
/// a Redis error at one precise point of the pipeline, as during a failover.
async fn poison(env: &TestEnv, key: &str) {
    redis_command(env, "DEL", &[key]).await;
    redis_command(env, "LPUSH", &[key, "x"]).await;
}

async fn cure(env: &TestEnv, key: &str) {
    redis_command(env, "DEL", &[key]).await;
}

async fn action_outcome(env: &TestEnv, event_id: &str, step: &str) -> Option<String> {
    sqlx::query_scalar("select outcome from activity where event_id = $1 and step = $2")
        .bind(event_id)
        .bind(step)
        .fetch_optional(env.store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_error_in_the_checks_before_a_call_is_retried_as_fresh_not_as_maybe_sent() {
    let env = env().await;
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env
        .start_worker_with(
            &[("IGFLOW_BACKOFF_BASE_MS", "300")],
            env.worker_store.clone(),
        )
        .await
        .unwrap();
    let campaign: uuid::Uuid =
        sqlx::query_scalar("select id from campaigns where slug = 'price-list'")
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    let first = CommentSpec::new("17900000000008001", "8001", "price?");
    env.post_signed(&webhook, &comment_delivery(ACCOUNT, &[first]))
        .await
        .unwrap();
    worker.wait_finished(1, SETTLE).await.unwrap();

    // The same person again, within the campaign's hour of cooldown, while the cooldown
    // check fails; and a third comment whose public reply's slot booking fails.
    let cooldown = format!("{}cool:{campaign}:8001", env.redis_prefix);
    let slot = format!(
        "{}slot:{{{ACCOUNT}}}:comment:17900000000008003:public_reply",
        env.redis_prefix
    );
    poison(&env, &cooldown).await;
    poison(&env, &slot).await;
    let again = [
        CommentSpec::new("17900000000008002", "8001", "how much?"),
        CommentSpec::new("17900000000008003", "8003", "price?"),
    ];
    env.post_signed(&webhook, &comment_delivery(ACCOUNT, &again))
        .await
        .unwrap();
    let held_up = [
        ("comment:17900000000008002", "private_reply"),
        ("comment:17900000000008003", "public_reply"),
    ];
    eventually(
        "both actions held up by the failed checks",
        SETTLE,
        || async {
            for (event, step) in held_up {
                if action_outcome(&env, event, step).await.is_none() {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await
    .unwrap();
    // No call was made: the rows say so, and a retry will not take them for maybe sent.
    for (event, step) in held_up {
        assert_eq!(
            action_outcome(&env, event, step).await,
            Some("claimed".into())
        );
    }
    cure(&env, &cooldown).await;
    cure(&env, &slot).await;
    worker.wait_finished(3, SETTLE).await.unwrap();

    let to_8001 = env.graph.accepted(|k| {
        matches!(k, igflow_tests::graph_server::CallKind::PrivateReply { comment_id, .. }
            if comment_id.starts_with("1790000000000800") && comment_id != "17900000000008003")
    });
    assert_eq!(to_8001.len(), 1, "one DM per person within the cooldown");
    assert_eq!(
        action_outcome(&env, "comment:17900000000008002", "private_reply").await,
        Some("skipped".into())
    );
    let public_8003 = env.graph.accepted(|k| {
        matches!(k, igflow_tests::graph_server::CallKind::PublicReply { comment_id }
            if comment_id == "17900000000008003")
    });
    assert_eq!(public_8003.len(), 1, "the public reply is posted, once");
    assert_eq!(
        action_outcome(&env, "comment:17900000000008003", "public_reply").await,
        Some("sent".into())
    );
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_parked_again_while_it_is_being_unparked_stays_parked() {
    let env = env().await;
    let account: uuid::Uuid = sqlx::query_scalar("select id from ig_accounts")
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    let parked = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from parked_events")
            .fetch_one(env.store.pool())
            .await
            .unwrap()
    };
    env.store
        .park(
            account,
            "comment:17900000000008101",
            "{}",
            "account is paused",
        )
        .await
        .unwrap();
    // An unparker reads it once the account is resumed, and is slow to delete it...
    let read = env.store.parked_ready(10).await.unwrap();
    assert_eq!(read.len(), 1);
    // ...while its copy already failed again (the token was not fixed yet) and parked again.
    tokio::time::sleep(Duration::from_millis(5)).await;
    env.store
        .park(account, "comment:17900000000008101", "{}", "token rejected")
        .await
        .unwrap();
    env.store.unpark(&read).await.unwrap();
    assert_eq!(parked().await, 1, "the second parking is kept");

    let again = env.store.parked_ready(10).await.unwrap();
    env.store.unpark(&again).await.unwrap();
    assert_eq!(parked().await, 0);
}
