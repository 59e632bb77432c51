//! The rate-limit scripts on a real Redis Cluster (three masters that scripts/services.sh
//! starts): every key a script touches is declared and in the account's hash slot, so
//! bookings, blocks, pacing and a closing window's takeover all work where ElastiCache in
//! cluster mode (or Valkey Serverless) runs them. On a cluster, a script that touched keys of
//! two slots failed with CROSSSLOT.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::{Duration, Instant};

use fred::prelude::ClientLike;
use igflow_core::ids::{EventId, IgUserId};
use igflow_core::runtime::now_ms;
use igflow_tests::harness::{Services, tag};
use igflow_worker::clients::ratelimit::{Budgets, CallClass, Rate, RateLimiter, Throttled};
use igflow_worker::clients::redis::{RedisKeys, connect};
use secrecy::SecretString;

/// One call a second on every budget: bookings one second apart.
const BUDGETS: Budgets = Budgets {
    private_replies: Rate::per_hour(3600),
    send_api: Rate::per_hour(3600),
    automated_dms: Rate::per_hour(3600),
};

fn account(n: u32) -> IgUserId {
    IgUserId::parse(format!("17841400{n:09}")).unwrap()
}

fn event(name: &str) -> EventId {
    EventId::parse(format!("comment:{name}")).unwrap()
}

async fn limiter() -> std::sync::Arc<RateLimiter> {
    let url = Services::from_env().redis_cluster_url;
    let redis = connect(&SecretString::from(url))
        .await
        .expect("a Redis Cluster (run scripts/services.sh; IGFLOW_REDIS_CLUSTER_URL)");
    assert!(
        redis.is_clustered(),
        "IGFLOW_REDIS_CLUSTER_URL is not a cluster"
    );
    RateLimiter::new(
        redis,
        RedisKeys::new(format!("igflow-test:{}:", tag())),
        BUDGETS,
        Duration::from_secs(10),
    )
}

/// When the booked slot is, on this machine's clock.
async fn book(
    limiter: &RateLimiter,
    account: &IgUserId,
    name: &str,
    window_closes_ms: Option<i64>,
) -> Instant {
    let wait = limiter
        .reserve(
            &event(name),
            "private_reply",
            account,
            CallClass::PrivateReply,
            &BUDGETS,
            window_closes_ms,
        )
        .await
        .unwrap();
    Instant::now() + wait
}

fn assert_spaced(slots: &mut [Instant]) {
    slots.sort();
    for pair in slots.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(800),
            "two calls booked {:?} apart, under the budget's second",
            pair[1] - pair[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_are_spaced_per_account_across_the_cluster() {
    let limiter = limiter().await;
    // Accounts hash to different nodes; each is paced on its own.
    for n in 0..6 {
        let a = account(n);
        let mut slots = Vec::new();
        for e in 0..3 {
            slots.push(book(&limiter, &a, &format!("{n}-{e}"), None).await);
        }
        // Coming back for a booked slot books nothing new.
        let again = book(&limiter, &a, &format!("{n}-2"), None).await;
        assert!(again <= slots[2] + Duration::from_millis(100));
        slots.push(book(&limiter, &a, &format!("{n}-3"), None).await);
        assert_spaced(&mut slots);
    }
    let a = account(99);
    let person = igflow_core::ids::Igsid::parse("6000000000001".to_owned()).unwrap();
    let at = now_ms();
    assert_eq!(
        limiter.note_user_message(&a, &person, at).await.unwrap(),
        at
    );
    assert_eq!(
        limiter
            .note_user_message(&a, &person, at - 5)
            .await
            .unwrap(),
        at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_window_takes_over_a_booking_and_the_moved_one_keeps_its_turn() {
    let limiter = limiter().await;
    let a = account(10);
    let mut slots = Vec::new();
    for e in 0..8 {
        slots.push(book(&limiter, &a, &format!("fill-{e}"), None).await);
    }
    // Its natural turn (8 s away) is after its window: it takes the latest far booking
    // before the window closes (2 s of margin), and that booking moves to the end.
    let closes = now_ms() + 8_500;
    let urgent = book(&limiter, &a, "urgent", Some(closes)).await;
    assert_eq!(
        limiter.meter.peek(&a, CallClass::PrivateReply).prioritized,
        1
    );
    assert!(urgent < Instant::now() + Duration::from_millis(6_500));
    // Every booking comes back for its slot: still one per second, none shared with the
    // urgent call (the moved one found its new turn in the account's `moved` hash).
    let mut back = vec![urgent];
    for e in 0..8 {
        back.push(book(&limiter, &a, &format!("fill-{e}"), None).await);
    }
    assert_spaced(&mut back);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_and_app_blocks_and_usage_pacing_hold_on_the_cluster() {
    let limiter = limiter().await;
    let (blocked, other, paced) = (account(20), account(21), account(22));
    limiter
        .block(Throttled::Account(&blocked), Duration::from_secs(30))
        .await
        .unwrap();
    let start = Instant::now();
    assert!(book(&limiter, &blocked, "b-1", None).await >= start + Duration::from_secs(29));
    assert!(book(&limiter, &other, "o-1", None).await < Instant::now() + Duration::from_secs(1));

    // Meta reports 90 percent: 250 ms per point above 79 between the account's calls.
    limiter.record_usage(&paced, 90).await.unwrap();
    let first = book(&limiter, &paced, "p-1", None).await;
    assert!(book(&limiter, &paced, "p-2", None).await >= first + Duration::from_millis(2_500));

    // The app-wide block (its key in another hash slot) holds every account.
    limiter
        .block(Throttled::App, Duration::from_secs(60))
        .await
        .unwrap();
    let start = Instant::now();
    assert!(book(&limiter, &other, "o-2", None).await >= start + Duration::from_secs(59));
}
