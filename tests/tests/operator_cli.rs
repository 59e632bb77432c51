//! The operator commands, run as the real `igflow-worker` binary against this test's
//! services (build it first: `cargo build --workspace --bins`).

use igflow_tests::faults::workspace_bin;
use igflow_tests::fixtures::{ACCOUNT, campaigns_yaml};
use igflow_tests::harness::{TestEnv, queue_depth};
use igflow_tests::meta::{CommentSpec, comment_delivery};
use igflow_tests::ollama_server::{Mode, OllamaTestServer};

async fn run(env: &TestEnv, args: &[&str]) -> (bool, String) {
    env.worker_command(args, &[])
        .await
        .expect("igflow-worker is built and runs")
}

/// `igflow-worker simulate --campaigns <file>` with `args`.
async fn simulate(env: &TestEnv, campaigns: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["simulate", "--campaigns", campaigns];
    all.extend_from_slice(args);
    run(env, &all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_and_dlq_commands_work_from_the_command_line() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();

    let dir = std::env::temp_dir().join(format!("igflow-replay-{}", igflow_tests::harness::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("captured.jsonl");
    let comments = [
        CommentSpec::new("17900000000000301", "6301", "price?"),
        CommentSpec::new("17900000000000302", "6302", "cost?"),
    ];
    std::fs::write(&file, comment_delivery(ACCOUNT, &comments) + "\n").unwrap();
    let (ok, out) = run(&env, &["replay", file.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("replayed 1 delivery(ies) as 2 envelope(s)"),
        "{out}"
    );
    assert_eq!(env.queue_depth().await.unwrap(), (2, 0));

    std::fs::write(
        &file,
        "{\"object\": \"instagram\", \"entry\": [{\"time\": 1}]}\n",
    )
    .unwrap();
    let (ok, out) = run(&env, &["replay", file.to_str().unwrap()]).await;
    assert!(!ok && out.contains("delivery 0 of the file"), "{out}");
    assert_eq!(
        env.queue_depth().await.unwrap(),
        (2, 0),
        "a bad file enqueues nothing"
    );

    env.sqs
        .send_message()
        .queue_url(&env.dlq_url)
        .message_body("not an envelope")
        .send()
        .await
        .unwrap();
    let (ok, out) = run(&env, &["dlq", "list"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("1 message(s) in the DLQ") && out.contains("kind=(not an envelope)"),
        "{out}"
    );
    let (ok, out) = run(&env, &["dlq", "redrive"]).await;
    assert!(!ok && out.contains("--all"), "{out}");
    let (ok, out) = run(&env, &["dlq", "redrive", "--all"]).await;
    assert!(ok && out.contains("1 message(s) moved back"), "{out}");
    assert_eq!(queue_depth(&env.sqs, &env.dlq_url).await.unwrap(), (0, 0));
    assert_eq!(env.queue_depth().await.unwrap(), (3, 0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_shows_the_decision_without_sending_anything() {
    let env = TestEnv::new().await.unwrap();
    let dir =
        std::env::temp_dir().join(format!("igflow-simulate-{}", igflow_tests::harness::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("campaigns.yaml");
    let with_intent = campaigns_yaml().replace(
        "        actions:\n          private_reply: \"Hi! Our price list",
        "        intents:\n          - name: purchase\n            description: wants to buy\n        actions:\n          private_reply: \"Hi! Our price list",
    );
    std::fs::write(&file, with_intent).unwrap();
    let path = file.to_str().unwrap();

    let (ok, out) = simulate(&env, path, &["PRICE pls 😍"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("campaign price-list fires: rule 0 matched keyword \"price\""),
        "{out}"
    );
    assert!(
        out.contains("would send private_reply: \"Hi! Our price list"),
        "{out}"
    );
    assert!(out.contains("would send public_reply"), "{out}");

    let (ok, out) = simulate(&env, path, &["where can I buy these?"]).await;
    assert!(
        ok && out.contains("the model was not asked (no_model)")
            && out.contains("no campaign fires"),
        "{out}"
    );

    let ollama = OllamaTestServer::start(0, Mode::Label("purchase".into()))
        .await
        .unwrap();
    let bin = workspace_bin("igflow-worker").expect("igflow-worker is built");
    let out = tokio::process::Command::new(bin)
        .args(["simulate", "--campaigns", path, "where can I buy these?"])
        .env("OLLAMA_URL", &ollama.url)
        .output()
        .await
        .expect("igflow-worker runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("the model recognized intent \"purchase\" (model)"),
        "{text}"
    );
    assert!(
        text.contains("campaign price-list fires: intent \"purchase\""),
        "{text}"
    );
    assert!(env.graph.calls().is_empty(), "nothing is sent");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_takes_messages_story_mentions_taps_and_referrals() {
    let env = TestEnv::new().await.unwrap();
    let dir =
        std::env::temp_dir().join(format!("igflow-simulate-{}", igflow_tests::harness::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("campaigns.yaml");
    let yaml = format!(
        "{}      - slug: mention-thanks
        name: Thanks
        trigger: story_mention
        actions: {{ dm: \"Thanks for the mention!\" }}
      - slug: prices-button
        name: Prices button
        trigger: postback
        payloads: [PRICES]
        actions: {{ dm: \"Prices: https://shop.example/p\" }}
      - slug: bio-link
        name: Bio link
        trigger: referral
        refs: [bio]
        actions: {{ dm: \"Welcome from the bio\" }}
",
        campaigns_yaml()
    );
    std::fs::write(&file, yaml).unwrap();
    let path = file.to_str().unwrap();
    for (args, expected) in [
        (
            vec!["--as", "story_mention"],
            vec![
                "story mention",
                "campaign mention-thanks fires: story",
                "would send dm: \"Thanks for the mention!\"",
            ],
        ),
        (
            vec!["--as", "postback", "--payload", "PRICES"],
            vec!["campaign prices-button fires: payload \"PRICES\""],
        ),
        (
            vec!["--as", "referral", "--ref", "bio", "hello"],
            vec!["campaign bio-link fires: referral ref \"bio\""],
        ),
        (
            vec!["--as", "message", "what is the price?"],
            vec!["no campaign fires"],
        ),
        (vec!["--as", "message", "STOP"], vec!["skipped: opted_out"]),
    ] {
        let (ok, out) = simulate(&env, path, &args).await;
        assert!(ok, "{args:?}: {out}");
        for line in expected {
            assert!(out.contains(line), "{args:?}: {line} in {out}");
        }
    }
    // Windows from when it happened; with a contact, what Postgres knows of them.
    let (ok, out) = simulate(&env, path, &["--at", "2026-11-20T10:00:00Z", "price?"]).await;
    assert!(
        ok && out
            .contains("window: closed at 2026-11-27T10:00:00Z: the private reply would be dropped"),
        "{out}"
    );
    env.apply(&campaigns_yaml()).await.unwrap();
    sqlx::query(
        "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, campaign_id,
                               contact_igsid, outcome)
         select tenant_id, $1, 'comment:earlier', 'comment', 'private_reply', id, '6999', 'sent'
         from campaigns where slug = 'price-list'",
    )
    .bind(igflow_tests::fixtures::ACCOUNT)
    .execute(env.store.pool())
    .await
    .unwrap();
    let (ok, out) = simulate(&env, path, &["--contact", "6999", "price?"]).await;
    assert!(ok, "{out}");
    for line in [
        "window: the private reply may go until",
        "contact 6999: never seen by the account",
        "cooldown: 6999 got a DM from price-list within 3600 s: the DM would be skipped",
    ] {
        assert!(out.contains(line), "{line} in {out}");
    }
    let (ok, out) = simulate(&env, path, &["--contact", "7000", "price?"]).await;
    assert!(ok && out.contains("cooldown: free (3600 s)"), "{out}");
    let (ok, out) = simulate(&env, path, &["--as", "postback"]).await;
    assert!(
        !ok && out.contains("a postback to test needs a payload"),
        "{out}"
    );
    let (ok, out) = simulate(&env, path, &["--as", "tap"]).await;
    assert!(!ok && out.contains("unknown Trigger \"tap\""), "{out}");
    assert!(env.graph.calls().is_empty(), "nothing is sent");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_deletes_old_rows_but_keeps_cooldowns_and_opt_outs() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    // The price-list campaign has a one-hour cooldown; give it a year to cover old DMs.
    sqlx::query("update campaigns set cooldown_seconds = 365 * 86400 where slug = 'price-list'")
        .execute(env.store.pool())
        .await
        .unwrap();
    let setup = "
        insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, campaign_id, contact_igsid, outcome, created_at, updated_at)
        select c.tenant_id, '17841400000000000', e.id, 'comment', e.step, c.id, e.contact, e.outcome, now() - e.age, now() - e.age
        from campaigns c,
             (values ('comment:old-decision', 'decision', '7001', 'matched', interval '100 days'),
                     ('comment:old-dm', 'private_reply', '7001', 'sent', interval '100 days'),
                     ('comment:old-reply', 'public_reply', '7001', 'sent', interval '100 days'),
                     ('comment:new-decision', 'decision', '7002', 'matched', interval '1 day'))
               as e (id, step, contact, outcome, age)
        where c.slug = 'price-list';
        insert into contacts (account_id, igsid, opted_out, last_seen_at)
        select a.id, v.igsid, v.opted_out, now() - v.age from ig_accounts a,
             (values ('7001', false, interval '100 days'), ('7003', true, interval '100 days'),
                     ('7002', false, interval '1 day')) as v (igsid, opted_out, age);
        insert into message_errors (message_id, error, receive_count, updated_at)
        values ('m-old', 'x', 1, now() - interval '100 days'), ('m-new', 'x', 1, now());
        insert into parked_events (event_id, account_id, envelope, reason, parked_at)
        select v.id, a.id, '{}', 'account is disabled', now() - v.age from ig_accounts a,
             (values ('comment:parked-old', interval '100 days'), ('comment:parked-new', interval '1 day'))
               as v (id, age);";
    sqlx::raw_sql(setup)
        .execute(env.store.pool())
        .await
        .unwrap();

    let (ok, out) = run(&env, &["prune"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "older than 90 days, deleted: 2 activity rows, 1 queue errors, 1 contacts, 1 parked events"
        ),
        "{out}"
    );
    let left: Vec<String> =
        sqlx::query_scalar("select event_id || '/' || step from activity order by event_id, step")
            .fetch_all(env.store.pool())
            .await
            .unwrap();
    assert_eq!(
        left,
        [
            "comment:new-decision/decision",
            "comment:old-dm/private_reply"
        ],
        "the old DM still counts for the campaign's cooldown"
    );
    let contacts: Vec<String> = sqlx::query_scalar("select igsid from contacts order by igsid")
        .fetch_all(env.store.pool())
        .await
        .unwrap();
    assert_eq!(contacts, ["7002", "7003"], "an opt-out is never forgotten");

    let (ok, out) = run(&env, &["prune"]).await;
    assert!(
        ok && out.contains("deleted: 0 activity rows, 0 queue errors, 0 contacts, 0 parked events"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_enqueues_the_comments_meta_did_not_deliver() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let media = "18000000000000001";
    env.graph.add_media(ACCOUNT, media);
    let hour = std::time::Duration::from_secs(3600);
    // Written before the window's start, then twice inside it.
    env.graph
        .add_comment(media, "17900000000000400", "6400", "price?", hour * 30);
    env.graph
        .add_comment(media, "17900000000000401", "6401", "price?", hour * 2);
    env.graph
        .add_comment(media, "17900000000000402", "6402", "cost?", hour);
    let since = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24)).to_string();

    let args = ["reconcile", "--account", ACCOUNT, "--since", &since];
    let (ok, out) = run(&env, &args).await;
    assert!(
        ok && out.contains("3 comments read, 2 never seen and enqueued"),
        "{out}"
    );
    assert_eq!(env.queue_depth().await.unwrap(), (2, 0));

    let (ok, out) = run(
        &env,
        &[
            "reconcile",
            "--account",
            "17841400000000999",
            "--since",
            &since,
        ],
    )
    .await;
    assert!(!ok && out.contains("no account 17841400000000999"), "{out}");
}
