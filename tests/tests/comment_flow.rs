//! A signed comment delivery, through the real webhook, SQS (moto), the real worker, Redis and
//! Postgres, to the Graph API test server.

use std::time::Duration;

use igflow_tests::fixtures::{
    ACCOUNT, LAUNCH_MEDIA, PRIVATE_REPLY, PUBLIC_REPLIES, TOKEN, campaigns_yaml,
};
use igflow_tests::graph_server::CallKind;
use igflow_tests::harness::{TestEnv, eventually, fleet, stepped_fleet};
use igflow_tests::meta::{CommentSpec, comment_delivery, echo_delivery, message_delivery, now_ms};

const WAIT: Duration = Duration::from_secs(30);

async fn drained(env: &TestEnv) {
    let last = &std::cell::Cell::new((0, 0));
    let drained = eventually("events queue drained", WAIT, move || async move {
        let depth = env.queue_depth().await?;
        last.set(depth);
        Ok(depth == (0, 0))
    })
    .await;
    if let Err(e) = drained {
        panic!("{e}: (visible, in flight) {:?}", last.get());
    }
}

fn private_replies_to(env: &TestEnv, comment: &str) -> usize {
    env.graph
        .accepted(
            |k| matches!(k, CallKind::PrivateReply { comment_id, .. } if comment_id == comment),
        )
        .len()
}

/// The texts of the private replies Meta accepted, in order.
fn private_reply_texts(env: &TestEnv) -> Vec<String> {
    env.graph
        .accepted(|k| matches!(k, CallKind::PrivateReply { .. }))
        .into_iter()
        .map(|c| c.text)
        .collect()
}

fn public_replies_to(env: &TestEnv, comment: &str) -> usize {
    env.graph
        .accepted(|k| matches!(k, CallKind::PublicReply { comment_id } if comment_id == comment))
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_comment_becomes_one_private_and_one_public_reply() {
    let (env, webhook, worker) = stepped_fleet(&campaigns_yaml()).await;

    let body = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new(
            "17900000000000001",
            "6001",
            "Price??? \u{1F60D}",
        )],
    );
    assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
    worker.finish(1, WAIT).await.unwrap();
    drained(&env).await;

    let calls = env.graph.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let private = &calls[0];
    assert_eq!(
        private.kind,
        CallKind::PrivateReply {
            sender: ACCOUNT.into(),
            comment_id: "17900000000000001".into()
        }
    );
    assert_eq!(private.text, PRIVATE_REPLY);
    assert_eq!(
        private.token.as_deref(),
        Some(TOKEN),
        "the token comes from Secrets Manager"
    );
    assert_eq!(
        calls[1].kind,
        CallKind::PublicReply {
            comment_id: "17900000000000001".into()
        }
    );
    assert!(
        PUBLIC_REPLIES.contains(&calls[1].text.as_str()),
        "{}",
        calls[1].text
    );

    let activity = env.activity().await.unwrap();
    let expect = |step: &str, outcome: &str| {
        (
            String::from("comment:17900000000000001"),
            step.to_owned(),
            outcome.to_owned(),
        )
    };
    assert_eq!(
        activity,
        vec![
            expect("decision", "matched"),
            expect("private_reply", "sent"),
            expect("public_reply", "sent")
        ]
    );
    let (detail, status, response_id): (Option<String>, Option<i32>, Option<String>) = sqlx::query_as(
        "select d.detail, a.graph_status, a.response_id from activity d join activity a using (event_id)
         where d.step = 'decision' and a.step = 'private_reply'",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(detail.as_deref(), Some("rule 0 matched keyword \"price\""));
    assert_eq!(status, Some(200));
    assert!(response_id.is_some_and(|id| id.starts_with("aWdf")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_deliveries_and_repeated_items_act_once() {
    let (env, webhook, worker) = stepped_fleet(&campaigns_yaml()).await;

    let once = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000011", "6011", "how much?")],
    );
    for _ in 0..3 {
        assert_eq!(env.post_signed(&webhook, &once).await.unwrap(), 200);
    }
    let twice_inside = CommentSpec::new("17900000000000012", "6012", "cost pls");
    let doubled = comment_delivery(ACCOUNT, &[twice_inside.clone(), twice_inside]);
    assert_eq!(env.post_signed(&webhook, &doubled).await.unwrap(), 200);

    // Three messages for the first comment (the worker drops two), one for the second (the
    // webhook already kept the repeated item once).
    worker.finish(4, WAIT).await.unwrap();
    drained(&env).await;
    for comment in ["17900000000000011", "17900000000000012"] {
        assert_eq!(private_replies_to(&env, comment), 1, "{comment}");
        assert_eq!(public_replies_to(&env, comment), 1, "{comment}");
    }
    assert_eq!(
        env.graph.calls().len(),
        4,
        "no refused or repeated calls either"
    );
    let stats = worker.stats();
    assert_eq!(
        (stats.handled, stats.duplicates, stats.sent),
        (2, 2, 4),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_comments_arrive_escaped_verify_and_match() {
    let (env, webhook, worker) = stepped_fleet(&campaigns_yaml()).await;

    let comments = [
        CommentSpec::new("17900000000000021", "6021", "इसकी कीमत क्या है? \u{1F60D}"),
        CommentSpec::new("17900000000000022", "6022", "விலை என்ன?"),
        CommentSpec::new("17900000000000023", "6023", "Très joli, quel est le prix ?"),
    ];
    let body = comment_delivery(ACCOUNT, &comments);
    assert!(
        body.is_ascii() && body.contains("\\u0915"),
        "Meta's escaped encoding"
    );
    assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
    worker.finish(3, WAIT).await.unwrap();
    for c in &comments {
        assert_eq!(private_replies_to(&env, &c.comment_id), 1, "{}", c.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_comments_echoes_and_unmatched_comments_cause_no_action() {
    let (env, webhook, worker) = stepped_fleet(&campaigns_yaml()).await;

    let by_account = CommentSpec::new("17900000000000031", ACCOUNT, "price list in bio");
    let mut self_scoped = CommentSpec::new("17900000000000032", "6032", "price drop!");
    self_scoped.self_ig_scoped_id = Some("9988".into());
    let unmatched = CommentSpec::new("17900000000000033", "6033", "love these shoes");
    let wrong_media = CommentSpec::new("17900000000000034", "6034", "link?");
    let mut launch = CommentSpec::new("17900000000000035", "6035", "links please");
    launch.media_id = LAUNCH_MEDIA.into();
    let body = comment_delivery(
        ACCOUNT,
        &[by_account, self_scoped, unmatched, wrong_media, launch],
    );
    assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
    let echo = echo_delivery(ACCOUNT, "6033", "aWdfZAG1echo0001", "price list sent");
    assert_eq!(env.post_signed(&webhook, &echo).await.unwrap(), 200);

    worker.finish(6, WAIT).await.unwrap();
    drained(&env).await;
    let calls = env.graph.calls();
    assert_eq!(
        calls.iter().map(|c| c.kind.clone()).collect::<Vec<_>>(),
        vec![CallKind::PrivateReply {
            sender: ACCOUNT.into(),
            comment_id: "17900000000000035".into()
        }],
        "only the launch comment on the launch reel is answered"
    );
    let mut decisions: Vec<(String, String)> = sqlx::query_as(
        "select event_id, outcome from activity where step = 'decision' order by event_id",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    decisions.sort();
    assert_eq!(
        decisions,
        [
            ("comment:17900000000000031", "own_content"),
            ("comment:17900000000000032", "own_content"),
            ("comment:17900000000000033", "no_match"),
            ("comment:17900000000000034", "no_match"),
            ("comment:17900000000000035", "matched"),
            ("message:aWdfZAG1echo0001", "own_content"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let contacts: i64 = sqlx::query_scalar("select count(*) from contacts")
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert_eq!(contacts, 3, "people who commented, not the account itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_change_reaches_a_running_worker_without_waiting_for_its_cache() {
    let (env, webhook, worker) = fleet(&campaigns_yaml()).await;
    let first = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000901", "6901", "price?")],
    );
    assert_eq!(env.post_signed(&webhook, &first).await.unwrap(), 200);
    worker.wait_finished(1, WAIT).await.unwrap();

    // Postgres notifies the worker of the change; give the notification a moment to arrive
    // (the cache's own expiry is a minute).
    env.apply(&campaigns_yaml().replace(PRIVATE_REPLY, "New prices from today!"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000902", "6902", "price?")],
    );
    assert_eq!(env.post_signed(&webhook, &second).await.unwrap(), 200);
    worker.wait_finished(2, WAIT).await.unwrap();

    assert_eq!(
        private_reply_texts(&env),
        [PRIVATE_REPLY, "New prices from today!"]
    );
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_campaign_running_when_the_comment_was_written_fires() {
    let at = |hours: i64| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_hours(hours))
            .unwrap()
    };
    // Three higher-priority campaigns on the same keyword: one running, one over, one to come.
    let scheduled = |slug: &str, from: jiff::Timestamp, until: jiff::Timestamp, priority: u8| {
        format!(
            "      - slug: {slug}\n        name: {slug}\n        priority: {priority}\n        starts_at: \"{from}\"\n        ends_at: \"{until}\"\n        rules: [{{ keywords: [price] }}]\n        actions: {{ private_reply: \"{slug} offer\" }}\n"
        )
    };
    let campaigns = [
        scheduled("flash-sale", at(-1), at(1), 20),
        scheduled("last-week", at(-170), at(-2), 30),
        scheduled("next-week", at(2), at(170), 40),
    ]
    .concat();
    let yaml = campaigns_yaml().replacen(
        "    campaigns:\n",
        &format!("    campaigns:\n{campaigns}"),
        1,
    );
    let (env, webhook, worker) = stepped_fleet(&yaml).await;

    let body = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000951", "6951", "price?")],
    );
    assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
    worker.finish(1, WAIT).await.unwrap();

    assert_eq!(private_reply_texts(&env), ["flash-sale offer"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_paused_in_the_dashboard_stops_at_once_and_resumes() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env
        .start_worker_with(&[("IGFLOW_UNPARK_SECONDS", "1")], env.worker_store.clone())
        .await
        .unwrap();
    // Each from its own person: the campaign's cooldown allows one DM per person.
    let comment = |id: &str| comment_delivery(ACCOUNT, &[CommentSpec::new(id, id, "price?")]);
    let set_status = |status: &'static str| {
        sqlx::query("update ig_accounts set status = $1 where ig_user_id = $2")
            .bind(status)
            .bind(ACCOUNT)
            .execute(env.store.pool())
    };

    // The first event puts the active account in the worker's cache.
    assert_eq!(
        env.post_signed(&webhook, &comment("17900000000000961"))
            .await
            .unwrap(),
        200
    );
    worker.wait_finished(1, WAIT).await.unwrap();
    assert_eq!(private_replies_to(&env, "17900000000000961"), 1);

    // Postgres notifies the worker of the change; give the notification a moment to arrive
    // (the cache's own expiry is a minute).
    set_status("paused").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.post_signed(&webhook, &comment("17900000000000962"))
            .await
            .unwrap(),
        200
    );
    eventually("the event parked", WAIT, || async {
        let parked: i64 = sqlx::query_scalar("select count(*) from parked_events")
            .fetch_one(env.store.pool())
            .await?;
        Ok(parked == 1)
    })
    .await
    .unwrap();
    assert_eq!(private_replies_to(&env, "17900000000000962"), 0);

    set_status("active").await.unwrap();
    eventually("the parked event answered", WAIT, || async {
        Ok(private_replies_to(&env, "17900000000000962") == 1)
    })
    .await
    .unwrap();
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_greet_the_commenter_by_username() {
    let yaml = campaigns_yaml()
        .replace(PUBLIC_REPLIES[0], "@{username} check your DMs")
        .replace(PUBLIC_REPLIES[1], "@{username} check your DMs")
        .replace(PRIVATE_REPLY, "Hi {username|there}, here are our prices");
    let (env, webhook, worker) = stepped_fleet(&yaml).await;
    let mut anonymous = CommentSpec::new("17900000000000972", "6972", "price?");
    anonymous.username = String::new();
    let body = comment_delivery(
        ACCOUNT,
        &[
            CommentSpec::new("17900000000000971", "6971", "price?"),
            anonymous,
        ],
    );
    assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
    worker.finish(2, WAIT).await.unwrap();

    let mut texts: Vec<String> = env
        .graph
        .accepted(|_| true)
        .into_iter()
        .map(|c| c.text)
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            "@ check your DMs",
            "@user6971 check your DMs",
            "Hi there, here are our prices",
            "Hi user6971, here are our prices",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tapped_quick_reply_gets_the_follow_up_dm() {
    let with_buttons = campaigns_yaml().replace(
        &format!("          private_reply: \"{PRIVATE_REPLY}\"\n"),
        &format!(
            "          private_reply: \"{PRIVATE_REPLY}\"\n          quick_replies: [\"Send me the link\", \"No thanks\"]\n"
        ),
    );
    let yaml = format!(
        "{with_buttons}      - slug: link-follow-up
        name: Link follow-up
        trigger: message
        rules:
          - keywords: [\"send me the link\"]
        actions:
          dm: \"Here it is: https://shop.example/launch\"
"
    );
    let (env, webhook, worker) = stepped_fleet(&yaml).await;
    let comment = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000981", "6981", "price?")],
    );
    assert_eq!(env.post_signed(&webhook, &comment).await.unwrap(), 200);
    worker.finish(1, WAIT).await.unwrap();
    let private = env
        .graph
        .accepted(|k| matches!(k, CallKind::PrivateReply { .. }));
    assert_eq!(private.len(), 1);
    assert_eq!(private[0].quick_replies, ["Send me the link", "No thanks"]);

    // Tapping a button posts its title into the conversation as the person's message.
    let tap = message_delivery(ACCOUNT, "6981", "aWdfTap1", "Send me the link", now_ms());
    assert_eq!(env.post_signed(&webhook, &tap).await.unwrap(), 200);
    worker.finish(1, WAIT).await.unwrap();
    let dms = env.graph.dms_to("6981");
    assert_eq!(dms.len(), 1);
    assert_eq!(dms[0].text, "Here it is: https://shop.example/launch");
    assert!(dms[0].quick_replies.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_row_the_worker_cannot_read_pauses_the_account_and_loses_nothing() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let db = env.store.pool();
    // Postgres refuses what the dashboard must not save...
    let bad_media = sqlx::query("update campaigns set media_ids = '{\"18000000000000001 \"}'")
        .execute(db)
        .await;
    assert!(bad_media.is_err(), "a media id with a blank is refused");
    let over_meta =
        sqlx::query("update ig_accounts set limits = '{\"private_replies_per_hour\": 5000}'")
            .execute(db)
            .await;
    assert!(over_meta.is_err(), "a budget above Meta's limit is refused");
    // ...and should such a row get in anyway (an older schema, a manual fix gone wrong), the
    // account's events wait for it instead of being dropped.
    sqlx::raw_sql(
        "alter table campaigns drop constraint campaigns_media_ids_check;
         update campaigns set media_ids = '{\"18000000000000001 \"}' where slug = 'launch'",
    )
    .execute(db)
    .await
    .unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env
        .start_worker_with(&[("IGFLOW_UNPARK_SECONDS", "1")], env.worker_store.clone())
        .await
        .unwrap();
    let body = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000991", "6991", "price?")],
    );
    assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
    eventually("the account paused and the event parked", WAIT, || async {
        let (status, parked): (String, i64) = sqlx::query_as(
            "select a.status, (select count(*) from parked_events) from ig_accounts a",
        )
        .fetch_one(db)
        .await?;
        Ok(status == "paused" && parked == 1)
    })
    .await
    .unwrap();
    let reason: String = sqlx::query_scalar("select status_reason from ig_accounts")
        .fetch_one(db)
        .await
        .unwrap();
    assert!(
        reason.contains("campaigns") && reason.contains("fix the row"),
        "{reason}"
    );
    assert_eq!(private_replies_to(&env, "17900000000000991"), 0);

    sqlx::query("update campaigns set media_ids = '{\"18000000000000099\"}' where slug = 'launch'")
        .execute(db)
        .await
        .unwrap();
    sqlx::query("update ig_accounts set status = 'active', status_reason = null")
        .execute(db)
        .await
        .unwrap();
    eventually("the parked comment answered", WAIT, || async {
        Ok(private_replies_to(&env, "17900000000000991") == 1)
    })
    .await
    .unwrap();
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_row_the_worker_cannot_read_is_retried_not_paused() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let db = env.store.pool();
    // Limits Postgres would refuse today, as an older schema or a manual fix could leave them.
    sqlx::raw_sql(
        "alter table ig_accounts drop constraint ig_accounts_limits_check;
         update ig_accounts set limits = '{\"private_replies_per_hour\": \"lots\"}'",
    )
    .execute(db)
    .await
    .unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env
        .start_worker_with(
            &[("IGFLOW_BACKOFF_BASE_MS", "200")],
            env.worker_store.clone(),
        )
        .await
        .unwrap();
    let body = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000992", "6992", "price?")],
    );
    assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
    eventually(
        "the corrupt row recorded as the event's error",
        WAIT,
        || async {
            let error: Option<String> = sqlx::query_scalar("select error from message_errors")
                .fetch_optional(db)
                .await?;
            Ok(error.is_some_and(|e| {
                e.contains("account row ig_accounts.")
                    && e.contains("limits")
                    && e.contains("fix the row")
            }))
        },
    )
    .await
    .unwrap();
    // Not paused: writing the status would hide what is wrong with the row. Not parked
    // either: the message itself waits, retried.
    let (status, parked): (String, i64) =
        sqlx::query_as("select a.status, (select count(*) from parked_events) from ig_accounts a")
            .fetch_one(db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), parked), ("active", 0));
    assert_eq!(private_replies_to(&env, "17900000000000992"), 0);

    sqlx::query("update ig_accounts set limits = '{}'")
        .execute(db)
        .await
        .unwrap();
    eventually(
        "the retried comment answered once the row is fixed",
        WAIT,
        || async { Ok(private_replies_to(&env, "17900000000000992") == 1) },
    )
    .await
    .unwrap();
    worker.stop().await.unwrap();
}

/// The (step, outcome, detail) rows of one comment's actions.
async fn actions_of(env: &TestEnv, comment: &str) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "select step, outcome, detail from activity
         where event_id = $1 and step <> 'decision' order by step",
    )
    .bind(format!("comment:{comment}"))
    .fetch_all(env.store.pool())
    .await
    .expect("the comment's action rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_reply_follows_the_private_reply_unless_told_always() {
    // Two campaigns with a one-hour cooldown, one of them posting its public reply always.
    let yaml = format!(
        "{}      - slug: giveaway
        name: Giveaway
        priority: 20
        cooldown_seconds: 3600
        rules:
          - keywords: [giveaway]
        actions:
          private_reply: \"You're in!\"
          public_replies: [\"Good luck! 🍀\"]
          public_reply_when: always
",
        campaigns_yaml()
    );
    let (env, webhook, worker) = stepped_fleet(&yaml).await;
    // The same person comments twice on each campaign.
    let comments = [
        CommentSpec::new("17900000000000601", "6601", "price?"),
        CommentSpec::new("17900000000000602", "6601", "price again?"),
        CommentSpec::new("17900000000000603", "6601", "giveaway"),
        CommentSpec::new("17900000000000604", "6601", "giveaway!!"),
    ];
    for comment in &comments {
        let body = comment_delivery(ACCOUNT, std::slice::from_ref(comment));
        assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
        worker.finish(1, WAIT).await.unwrap();
    }
    let public_to = |comment: &str| {
        env.graph
            .accepted(
                |k| matches!(k, CallKind::PublicReply { comment_id, .. } if comment_id == comment),
            )
            .len()
    };
    // First comments: both replies. Second: the cooldown holds the DM back, and "check your
    // DMs" is not posted without one; the giveaway's public reply is posted all the same.
    assert_eq!(
        (
            private_replies_to(&env, "17900000000000601"),
            public_to("17900000000000601")
        ),
        (1, 1)
    );
    assert_eq!(
        (
            private_replies_to(&env, "17900000000000602"),
            public_to("17900000000000602")
        ),
        (0, 0)
    );
    assert_eq!(
        (
            private_replies_to(&env, "17900000000000604"),
            public_to("17900000000000604")
        ),
        (0, 1)
    );
    let held = actions_of(&env, "17900000000000602").await;
    assert_eq!(
        held.iter()
            .map(|(step, outcome, _)| (step.as_str(), outcome.as_str()))
            .collect::<Vec<_>>(),
        [("private_reply", "skipped"), ("public_reply", "skipped")]
    );
    assert_eq!(
        held[1].2.as_deref(),
        Some(
            "not posted: the private reply was skipped and the public reply follows it (public_reply_when: private_reply_sent)"
        )
    );

    // Meta redelivers the held-back comment: still nothing, and the rows stand.
    let again = comment_delivery(ACCOUNT, &comments[1..2]);
    assert_eq!(env.post_signed(&webhook, &again).await.unwrap(), 200);
    worker.finish(1, WAIT).await.unwrap();
    assert_eq!(public_to("17900000000000602"), 0);
    assert_eq!(actions_of(&env, "17900000000000602").await, held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_reply_variants_are_spread_and_each_recorded_with_its_text() {
    let yaml = campaigns_yaml().replace(
        &format!("          private_reply: \"{PRIVATE_REPLY}\"\n"),
        "          private_reply:\n            - \"Variant A: prices inside\"\n            - \"Variant B: here are our prices\"\n",
    );
    let (env, webhook, worker) = stepped_fleet(&yaml).await;
    let comments: Vec<CommentSpec> = (0..24)
        .map(|i| {
            CommentSpec::new(
                &format!("179000000000008{i:02}"),
                &format!("68{i:02}"),
                "price?",
            )
        })
        .collect();
    let body = comment_delivery(ACCOUNT, &comments);
    assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
    worker.finish(comments.len(), WAIT).await.unwrap();
    let sent: std::collections::HashMap<String, String> = env
        .graph
        .accepted(|k| matches!(k, CallKind::PrivateReply { .. }))
        .into_iter()
        .filter_map(|c| match c.kind {
            CallKind::PrivateReply { comment_id, .. } => Some((comment_id, c.text)),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), comments.len(), "one private reply per comment");
    let recorded: Vec<(String, Option<i16>)> = sqlx::query_as(
        "select event_id, variant from activity where step = 'private_reply' and outcome = 'sent'",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    let mut used = std::collections::HashSet::new();
    for (event_id, variant) in recorded {
        let comment = event_id.trim_start_matches("comment:");
        let expected = match variant {
            Some(0) => "Variant A: prices inside",
            Some(1) => "Variant B: here are our prices",
            other => panic!("variant {other:?} recorded for {event_id}"),
        };
        assert_eq!(sent[comment], expected, "{event_id}");
        used.insert(variant);
    }
    assert_eq!(used.len(), 2, "both variants are used over 24 comments");
}
