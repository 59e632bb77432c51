//! The writes every event makes (its contact noted, its decision recorded, its actions'
//! outcomes) go to Postgres in batches: events in flight together share a statement and a
//! commit, and each still gets its own answer, its own row and its own error.

use futures_util::future::join_all;
use igflow_core::campaign::ActionKind;
use igflow_tests::faults::TcpProxy;
use igflow_tests::fixtures::{ACCOUNT, campaigns_yaml};
use igflow_tests::harness::TestEnv;
use igflow_worker::clients::store::{
    ActionClaim, ActionOutcome, ActionRecord, DecisionOutcome, DecisionRecord, Store,
};
use igflow_worker::config::StoreConfig;
use secrecy::SecretString;
use uuid::Uuid;

/// The store behind a proxy that counts round trips, and the applied account's id and tenant.
async fn counted_store(env: &TestEnv) -> (TcpProxy, Store, Uuid, Uuid) {
    env.apply(&campaigns_yaml()).await.expect("campaigns apply");
    let (proxy, proxied) = TcpProxy::in_front_of(&env.database_url)
        .await
        .expect("proxy");
    let store = Store::connect(&StoreConfig::new(SecretString::from(proxied)))
        .await
        .expect("store through the proxy");
    let (account, tenant): (Uuid, Uuid) =
        sqlx::query_as("select id, tenant_id from ig_accounts where ig_user_id = $1")
            .bind(ACCOUNT)
            .fetch_one(env.store.pool())
            .await
            .expect("applied account");
    (proxy, store, account, tenant)
}

fn decision<'a>(tenant: Uuid, event_id: &'a str, contact: &'a str) -> DecisionRecord<'a> {
    DecisionRecord {
        tenant_id: Some(tenant),
        ig_user_id: ACCOUNT,
        event_id,
        event_kind: "comment",
        campaign_id: None,
        contact: Some(contact),
        outcome: DecisionOutcome::UnknownAccount,
        detail: Some(format!("why {event_id}")),
        excerpt: Some("a comment"),
        attempt: Uuid::new_v4(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_flight_together_share_statements_and_each_gets_its_own_answer() {
    let env = TestEnv::new().await.expect("test environment");
    let (proxy, store, account, tenant) = counted_store(&env).await;
    // Three of the twenty people opted out before (a choice is written at once, not batched).
    for opted in ["p-3", "p-7", "p-11"] {
        assert!(
            store
                .touch_contact(account, opted, None, Some(true))
                .await
                .unwrap()
        );
    }
    let before = proxy.round_trips();

    // 100 sightings of 20 people (some with a username, some not) and 100 decisions of 50
    // events (each recorded twice, as a redelivered event would), all at once.
    let people: Vec<String> = (0..100).map(|i| format!("p-{}", i % 20)).collect();
    let events: Vec<String> = (0..100).map(|i| format!("ev-{}", i % 50)).collect();
    let touches = join_all(people.iter().enumerate().map(|(i, igsid)| {
        let username = (i % 3 == 0).then(|| format!("user_{igsid}"));
        let store = &store;
        async move {
            store
                .touch_contact(account, igsid, username.as_deref(), None)
                .await
        }
    }));
    let decisions = join_all(events.iter().zip(&people).map(|(event, igsid)| {
        let store = &store;
        async move { store.record_decision(&decision(tenant, event, igsid)).await }
    }));
    let (touched, decided) = tokio::join!(touches, decisions);
    let round_trips = proxy.round_trips() - before;

    for (igsid, opted_out) in people.iter().zip(&touched) {
        let expected = ["p-3", "p-7", "p-11"].contains(&igsid.as_str());
        assert_eq!(*opted_out.as_ref().unwrap(), expected, "{igsid}");
    }
    assert!(decided.iter().all(Result::is_ok), "{decided:?}");
    // 200 writes alone would be 200 round trips; batched, a few per flusher.
    assert!(
        round_trips < 50,
        "200 writes took {round_trips} round trips"
    );

    let pool = env.store.pool();
    let contacts: Vec<(String, Option<String>, bool)> = sqlx::query_as(
        "select igsid, username, opted_out from contacts where account_id = $1 order by igsid",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(contacts.len(), 20);
    for (igsid, username, _) in &contacts {
        // Everyone seen with a username at least once (i % 3 == 0 for some i of theirs) kept it.
        assert_eq!(username.as_deref(), Some(format!("user_{igsid}").as_str()));
    }
    assert_eq!(contacts.iter().filter(|c| c.2).count(), 3);
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "select event_id, detail, excerpt from activity
         where ig_user_id = $1 and step = 'decision' order by event_id",
    )
    .bind(ACCOUNT)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 50, "one decision row per event");
    assert!(rows.iter().all(
        |(event, detail, excerpt)| *detail == format!("why {event}") && excerpt == "a comment"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_postgres_refuses_fails_only_its_own_event() {
    let env = TestEnv::new().await.expect("test environment");
    let (_proxy, store, _, tenant) = counted_store(&env).await;
    let events: Vec<String> = (0..60).map(|i| format!("ev-{i}")).collect();
    // One decision names a tenant that does not exist: Postgres refuses its row (the foreign
    // key), and with it the statement of whatever batch it shared.
    let ghost = Uuid::new_v4();
    let results = join_all(events.iter().enumerate().map(|(i, event)| {
        let tenant = if i == 30 { ghost } else { tenant };
        let store = &store;
        async move { store.record_decision(&decision(tenant, event, "p-1")).await }
    }))
    .await;

    let failed: Vec<usize> = (0..60).filter(|&i| results[i].is_err()).collect();
    assert_eq!(failed, [30], "{results:?}");
    let written: i64 = sqlx::query_scalar(
        "select count(*) from activity where ig_user_id = $1 and step = 'decision'",
    )
    .bind(ACCOUNT)
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(written, 59);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_share_statements_and_a_claim_taken_over_keeps_its_new_owner() {
    let env = TestEnv::new().await.expect("test environment");
    let (proxy, store, _, tenant) = counted_store(&env).await;
    let lease = std::time::Duration::from_secs(60);
    let events: Vec<String> = (0..80).map(|i| format!("ev-{i}")).collect();
    let records: Vec<DecisionRecord<'_>> =
        events.iter().map(|e| decision(tenant, e, "p-1")).collect();
    for d in &records {
        let claim = store
            .claim_action(d, ActionKind::PrivateReply, None, lease)
            .await
            .unwrap();
        assert_eq!(claim, ActionClaim::Fresh);
    }
    // Event 7's action was taken over by another copy (its own attempt's claim), which
    // records its outcome in the same batch: that one's stands, this attempt's is refused.
    let other = DecisionRecord {
        attempt: Uuid::new_v4(),
        ..decision(tenant, &events[7], "p-1")
    };
    sqlx::query("update activity set claim_token = $1 where event_id = 'ev-7'")
        .bind(other.attempt)
        .execute(env.store.pool())
        .await
        .unwrap();
    let before = proxy.round_trips();

    let owner = ActionRecord::new(ActionOutcome::Failed);
    let finishes = join_all(records.iter().enumerate().map(|(i, d)| {
        let store = &store;
        async move {
            let record = ActionRecord {
                response_id: Some(format!("m-{i}")),
                graph_status: Some(200),
                latency: Some(std::time::Duration::from_millis(i as u64)),
                ..ActionRecord::new(ActionOutcome::Sent)
            };
            store
                .finish_action(d, ActionKind::PrivateReply, &record)
                .await
        }
    }));
    let (finished, owner_finished) = tokio::join!(
        finishes,
        store.finish_action(&other, ActionKind::PrivateReply, &owner)
    );
    assert!(
        owner_finished.unwrap(),
        "the claim's owner records its outcome"
    );
    let round_trips = proxy.round_trips() - before;

    for (i, f) in finished.iter().enumerate() {
        assert_eq!(*f.as_ref().unwrap(), i != 7, "ev-{i}: {f:?}");
    }
    assert!(
        round_trips < 25,
        "80 outcomes took {round_trips} round trips"
    );
    /// Event, outcome, response id, Graph status, latency.
    type Row = (String, String, Option<String>, Option<i32>, Option<i32>);
    let rows: Vec<Row> = sqlx::query_as(
        "select event_id, outcome, response_id, graph_status, latency_ms from activity
         where ig_user_id = $1 and step = 'private_reply'",
    )
    .bind(ACCOUNT)
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 80);
    for (event, outcome, response, status, latency) in rows {
        let i: usize = event.trim_start_matches("ev-").parse().unwrap();
        if i == 7 {
            assert_eq!((outcome.as_str(), response), ("failed", None), "{event}");
        } else {
            assert_eq!(outcome, "sent", "{event}");
            assert_eq!(response, Some(format!("m-{i}")));
            assert_eq!((status, latency), (Some(200), Some(i as i32)));
        }
    }
}
