//! The worker's account cache against Postgres: events that miss an account together (at
//! start, after a change, after the TTL) load it once, not once each.

use std::sync::Arc;

use futures_util::future::join_all;
use igflow_core::ids::IgUserId;
use igflow_tests::faults::TcpProxy;
use igflow_tests::fixtures::{ACCOUNT, campaigns_yaml};
use igflow_tests::harness::TestEnv;
use igflow_worker::clients::cache::AccountCache;
use igflow_worker::clients::store::Store;
use igflow_worker::config::StoreConfig;
use secrecy::SecretString;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_events_of_an_account_load_it_once() {
    let env = TestEnv::new().await.expect("test environment");
    env.apply(&campaigns_yaml()).await.expect("campaigns apply");
    let url = env.database_url.clone();
    let (proxy, proxied) = TcpProxy::in_front_of(&url).await.expect("proxy");
    let store = Store::connect(&StoreConfig::new(SecretString::from(proxied)))
        .await
        .expect("store through the proxy");
    let cache = AccountCache::new(store, Arc::new(env.tokens()));
    let ig_user_id = IgUserId::parse(ACCOUNT).expect("fixture id");

    // One warm connection, so that what follows counts queries, not connection set-ups.
    let first = cache.account(&ig_user_id).await.unwrap().expect("applied");
    cache.forget(Some(first.id));
    let before = proxy.round_trips();

    let accounts = join_all((0..20).map(|_| cache.account(&ig_user_id))).await;
    let sets = join_all((0..20).map(|_| cache.campaigns(first.id))).await;

    // One load each, shared: every caller holds the same copy.
    let accounts: Vec<_> = accounts.into_iter().map(|a| a.unwrap().unwrap()).collect();
    let sets: Vec<_> = sets.into_iter().map(Result::unwrap).collect();
    assert_eq!(accounts[0].id, first.id);
    assert!(accounts.iter().all(|a| Arc::ptr_eq(a, &accounts[0])));
    assert!(sets.iter().all(|s| Arc::ptr_eq(s, &sets[0])));
    let round_trips = proxy.round_trips() - before;
    // One account read and one campaign load (its queries), plus any connections the pool
    // opened for the waiting calls; twenty of each was the count before.
    assert!(
        round_trips < 20,
        "20 concurrent misses of one account and its campaigns took {round_trips} round trips"
    );
}
