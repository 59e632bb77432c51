//! A campaign's flow: a private reply with buttons, taps that lead to the next step, each step
//! sent once whatever Meta redelivers. Real webhook, SQS (moto), worker, Redis and Postgres;
//! the Graph test server checks the button template as Meta does.

use std::time::Duration;

use igflow_tests::fixtures::{ACCOUNT, file_with};
use igflow_tests::graph_server::{CallKind, Faults};
use igflow_tests::harness::{TestEnv, eventually, queue_depth, stepped_fleet};
use igflow_tests::meta::{CommentSpec, comment_delivery, person_delivery};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const PERSON: &str = "6901";

fn campaigns() -> String {
    file_with(
        r#"      - slug: launch-link
        name: Launch link
        cooldown_seconds: 86400
        rules: [{ keywords: [link] }]
        actions:
          private_reply: "Tap below and I'll send you the link 👇"
          buttons:
            - { title: "Send me the link", step: link }
            - { title: "Our shop", url: "https://shop.example" }
          public_replies: ["Sent you a DM 📩"]
        steps:
          - name: link
            dm: "Here it is: https://shop.example/launch 🚀"
            buttons: [{ title: "More deals", step: deals }]
          - name: deals
            dm: "This week: 20% off with LAUNCH20"
      - slug: vip
        name: VIP link for followers
        rules: [{ keywords: [vip] }]
        actions:
          private_reply: "Tap below for the VIP link"
          buttons: [{ title: "Get the link", step: vip }]
        steps:
          - name: vip
            dm: "VIP link: https://shop.example/vip"
            follow_gate:
              not_following: "Follow @acme.shoes first, then tap below 🙏"
              retry_title: "I follow now"
              max_retries: 2
"#,
    )
}

/// The template buttons of the messages the person got, in order: (text, buttons).
fn received(env: &TestEnv) -> Vec<(String, Vec<Value>)> {
    env.graph
        .accepted(|k| match k {
            CallKind::Message { recipient, .. } => recipient == PERSON,
            CallKind::PrivateReply { .. } => true,
            _ => false,
        })
        .into_iter()
        .map(|c| (c.text, c.buttons))
        .collect()
}

/// The id of the test account's campaign `slug`: its steps' payloads name it.
async fn campaign_id(env: &TestEnv, slug: &str) -> uuid::Uuid {
    sqlx::query_scalar("select id from campaigns where slug = $1")
        .bind(slug)
        .fetch_one(env.store.pool())
        .await
        .expect("the campaign is applied")
}

fn tap(mid: &str, title: &str, payload: &str) -> String {
    person_delivery(
        ACCOUNT,
        PERSON,
        json!({ "postback": { "mid": mid, "title": title, "payload": payload } }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taps_walk_the_flow_one_message_per_step_whatever_meta_redelivers() {
    let (env, webhook, worker) = stepped_fleet(&campaigns()).await;
    let post = |body: String| {
        let (env, webhook) = (&env, &webhook);
        async move { assert_eq!(env.post_signed(webhook, &body).await.unwrap(), 200) }
    };
    post(comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000901", PERSON, "link please")],
    ))
    .await;
    worker.finish(1, WAIT).await.unwrap();
    let got = received(&env);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "Tap below and I'll send you the link 👇");
    let campaign = campaign_id(&env, "launch-link").await;
    let link = format!("igflow:step:{campaign}:link");
    assert_eq!(
        got[0].1,
        [
            json!({ "type": "postback", "title": "Send me the link", "payload": link }),
            json!({ "type": "web_url", "title": "Our shop", "url": "https://shop.example" }),
        ]
    );

    // The tap, delivered twice (Meta retries): one message, though the campaign's one-day
    // cooldown would hold back another DM from it.
    post(tap("aWdfFlowTap1", "Send me the link", &link)).await;
    post(tap("aWdfFlowTap1", "Send me the link", &link)).await;
    worker.finish(2, WAIT).await.unwrap();
    let got = received(&env);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].0, "Here it is: https://shop.example/launch 🚀");
    let deals = format!("igflow:step:{campaign}:deals");
    assert_eq!(
        got[1].1,
        [json!({ "type": "postback", "title": "More deals", "payload": deals })]
    );

    post(tap("aWdfFlowTap2", "More deals", &deals)).await;
    worker.finish(1, WAIT).await.unwrap();
    let got = received(&env);
    assert_eq!(got.len(), 3);
    assert_eq!(
        (got[2].0.as_str(), got[2].1.len()),
        ("This week: 20% off with LAUNCH20", 0)
    );

    let steps: Vec<(String, Option<String>)> = sqlx::query_as(
        "select outcome, detail from activity
         where step = 'decision' and event_kind = 'postback' order by id",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        steps,
        [
            ("matched".to_owned(), Some("step \"link\"".to_owned())),
            ("matched".to_owned(), Some("step \"deals\"".to_owned())),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tap_naming_no_step_of_an_active_campaign_or_a_paused_one_sends_nothing() {
    let (env, webhook, worker) = stepped_fleet(&campaigns()).await;
    let campaign = campaign_id(&env, "launch-link").await;
    // A paused campaign's steps are not sent either.
    sqlx::query("update campaigns set status = 'paused' where id = $1")
        .bind(campaign)
        .execute(env.store.pool())
        .await
        .unwrap();
    let bodies = [
        tap(
            "aWdfFlowTap3",
            "x",
            &format!("igflow:step:{campaign}:nowhere"),
        ),
        tap(
            "aWdfFlowTap4",
            "x",
            &format!("igflow:step:{}:link", uuid::Uuid::new_v4()),
        ),
        tap("aWdfFlowTap5", "x", "igflow:step:not-a-uuid:link"),
        tap("aWdfFlowTap6", "x", &format!("igflow:step:{campaign}:link")),
    ];
    for body in &bodies {
        assert_eq!(env.post_signed(&webhook, body).await.unwrap(), 200);
    }
    worker.finish(bodies.len(), WAIT).await.unwrap();
    assert!(received(&env).is_empty());
    let outcomes: Vec<String> =
        sqlx::query_scalar("select outcome from activity where step = 'decision' order by id")
            .fetch_all(env.store.pool())
            .await
            .unwrap();
    assert_eq!(outcomes, ["no_match"; 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_gated_step_turns_back_non_followers_a_bounded_number_of_times() {
    let (env, webhook, worker) = stepped_fleet(&campaigns()).await;
    let post = |body: String| {
        let (env, webhook) = (&env, &webhook);
        async move { assert_eq!(env.post_signed(webhook, &body).await.unwrap(), 200) }
    };
    post(comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000951", PERSON, "vip?")],
    ))
    .await;
    worker.finish(1, WAIT).await.unwrap();
    let campaign = campaign_id(&env, "vip").await;
    let vip = format!("igflow:step:{campaign}:vip");
    let retry = json!({ "type": "postback", "title": "I follow now", "payload": vip });
    let gate = "Follow @acme.shoes first, then tap below 🙏";

    // Not following: the gate's message with a button to try again; the same tap delivered
    // twice counts once.
    post(tap("aWdfGate1", "Get the link", &vip)).await;
    post(tap("aWdfGate1", "Get the link", &vip)).await;
    worker.finish(2, WAIT).await.unwrap();
    // Tried again, still not following: turned back a second and last time, then no answer.
    post(tap("aWdfGate2", "I follow now", &vip)).await;
    worker.finish(1, WAIT).await.unwrap();
    post(tap("aWdfGate3", "I follow now", &vip)).await;
    worker.finish(1, WAIT).await.unwrap();
    // Following now: the step goes out.
    env.graph.set_following(PERSON, true);
    post(tap("aWdfGate4", "I follow now", &vip)).await;
    worker.finish(1, WAIT).await.unwrap();

    let got = received(&env);
    let texts: Vec<&str> = got.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Tap below for the VIP link",
            gate,
            gate,
            "VIP link: https://shop.example/vip"
        ]
    );
    assert_eq!(got[1].1, std::slice::from_ref(&retry));
    assert_eq!(got[2].1, [retry]);
    assert!(got[3].1.is_empty());
    let details: Vec<Option<String>> = sqlx::query_scalar(
        "select detail from activity where step = 'decision' and event_kind = 'postback' order by id",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        details,
        [
            Some(
                "step \"vip\": does not follow the account yet (turned back 1 of 2 times)"
                    .to_owned()
            ),
            Some(
                "step \"vip\": does not follow the account yet (turned back 2 of 2 times)"
                    .to_owned()
            ),
            Some(
                "step \"vip\": still does not follow the account after 2 tries; not answered"
                    .to_owned()
            ),
            Some("step \"vip\": follows the account".to_owned()),
        ]
    );
    let turned_back: Vec<String> =
        sqlx::query_scalar("select unnest(turned_back) from flow_runs where campaign_id = $1")
            .bind(campaign)
            .fetch_all(env.store.pool())
            .await
            .unwrap();
    assert_eq!(turned_back.len(), 3, "{turned_back:?}");
}

/// Comment → DM with a button → tap → follow check → ask for the email → store it → send.
fn guide_campaign() -> String {
    file_with(
        r#"      - slug: guide
        name: Free sizing guide
        rules: [{ keywords: [guide] }]
        actions:
          private_reply: "Want the sizing guide? Tap below 👇"
          buttons: [{ title: "Get the guide", step: ask }]
        steps:
          - name: ask
            dm: "Great! What's your email?"
            follow_gate:
              not_following: "Follow @acme.shoes first, then tap below"
            capture:
              field: email
              invalid: "Hmm, that doesn't look like an email. Try again?"
              max_attempts: 2
              next: sent
          - name: sent
            dm: "Sent! Check your inbox for the guide 📏"
"#,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_step_flow_gates_captures_and_sends_each_message_once_across_a_restart() {
    let (env, webhook, worker) = stepped_fleet(&guide_campaign()).await;
    let post = |body: String| {
        let (env, webhook) = (&env, &webhook);
        async move { assert_eq!(env.post_signed(webhook, &body).await.unwrap(), 200) }
    };
    let says = |mid: &str, text: &str| {
        person_delivery(
            ACCOUNT,
            PERSON,
            json!({ "message": { "mid": mid, "text": text } }),
        )
    };
    post(comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000991", PERSON, "guide pls")],
    ))
    .await;
    worker.finish(1, WAIT).await.unwrap();
    let campaign = campaign_id(&env, "guide").await;
    let ask = format!("igflow:step:{campaign}:ask");

    // Not following yet: turned back. Following: asked for the email.
    post(tap("aWdfGuide1", "Get the guide", &ask)).await;
    worker.finish(1, WAIT).await.unwrap();
    env.graph.set_following(PERSON, true);
    post(tap("aWdfGuide2", "I follow now", &ask)).await;
    post(tap("aWdfGuide2", "I follow now", &ask)).await;
    worker.finish(2, WAIT).await.unwrap();

    // The worker restarts: where the person is lives in Postgres.
    drop(worker);
    let worker = env.stepped_worker().await.unwrap();
    post(says("aWdfGuide3", "my email is ana at example")).await;
    worker.finish(1, WAIT).await.unwrap();
    post(says("aWdfGuide4", "Ana@Example.com")).await;
    post(says("aWdfGuide4", "Ana@Example.com")).await;
    worker.finish(2, WAIT).await.unwrap();
    // Answered: the next message is the person's own again (no campaign answers it).
    post(says("aWdfGuide5", "thanks!")).await;
    worker.finish(1, WAIT).await.unwrap();

    let texts: Vec<String> = received(&env).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        texts,
        [
            "Want the sizing guide? Tap below 👇",
            "Follow @acme.shoes first, then tap below",
            "Great! What's your email?",
            "Hmm, that doesn't look like an email. Try again?",
            "Sent! Check your inbox for the guide 📏",
        ]
    );
    let email: Option<String> = sqlx::query_scalar("select email from contacts where igsid = $1")
        .bind(PERSON)
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert_eq!(email.as_deref(), Some("Ana@example.com"));
    let details: Vec<(String, Option<String>)> = sqlx::query_as(
        "select outcome, detail from activity where step = 'decision' and event_kind = 'message'
         order by id",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        details,
        [
            (
                "matched".to_owned(),
                Some("step \"ask\": not a valid email, asked again (1 of 2)".to_owned())
            ),
            (
                "matched".to_owned(),
                Some("step \"ask\": email captured".to_owned())
            ),
            ("no_match".to_owned(), None),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_stops_asking_after_its_attempts_and_stop_still_opts_out() {
    let (env, webhook, worker) = stepped_fleet(&guide_campaign()).await;
    env.graph.set_following(PERSON, true);
    let campaign = campaign_id(&env, "guide").await;
    let says = |mid: &str, text: &str| {
        person_delivery(
            ACCOUNT,
            PERSON,
            json!({ "message": { "mid": mid, "text": text } }),
        )
    };
    let bodies = [
        tap(
            "aWdfCap1",
            "Get the guide",
            &format!("igflow:step:{campaign}:ask"),
        ),
        says("aWdfCap2", "no"),
        says("aWdfCap3", "still no"),
        says("aWdfCap4", "never"),
        says("aWdfCap5", "nope@"),
    ];
    for body in &bodies {
        assert_eq!(env.post_signed(&webhook, body).await.unwrap(), 200);
        worker.finish(1, WAIT).await.unwrap();
    }
    let texts: Vec<String> = received(&env).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        texts,
        [
            "Great! What's your email?",
            "Hmm, that doesn't look like an email. Try again?",
            "Hmm, that doesn't look like an email. Try again?",
        ]
    );

    // Asked again, then STOP: consent wins over the waiting capture.
    let stop = [
        tap(
            "aWdfCap6",
            "Get the guide",
            &format!("igflow:step:{campaign}:ask"),
        ),
        says("aWdfCap7", "STOP"),
    ];
    for body in &stop {
        assert_eq!(env.post_signed(&webhook, body).await.unwrap(), 200);
        worker.finish(1, WAIT).await.unwrap();
    }
    let opted_out: bool = sqlx::query_scalar("select opted_out from contacts where igsid = $1")
        .bind(PERSON)
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert!(opted_out);
    assert_eq!(received(&env).len(), 4, "the ask once more, then nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_mid_flow_send_every_step_once() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&guide_campaign()).await.unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    // Slow calls keep steps in flight when a worker dies.
    env.graph.set_faults(Faults {
        latency: Duration::from_millis(200),
        slow_share: 0.3,
        slow_delay: Duration::from_millis(800),
        ..Faults::default()
    });
    let process_env = [
        ("IGFLOW_VISIBILITY_SECONDS", "5"),
        ("IGFLOW_CONSUMERS", "3"),
    ];
    let people: Vec<String> = (0..30).map(|i| format!("69{i:03}")).collect();
    for person in &people {
        env.graph.set_following(person, true);
    }
    let campaign = campaign_id(&env, "guide").await;
    let ask = format!("igflow:step:{campaign}:ask");
    let sent_to = |text: &'static str| {
        let env = &env;
        move || async move {
            let dms = env
                .graph
                .accepted(|k| matches!(k, CallKind::Message { .. }))
                .into_iter()
                .filter(|c| c.text == text)
                .count();
            Ok(dms >= 30)
        }
    };
    let mut worker = env.spawn_worker_process("flow-a", &process_env).unwrap();
    for (phase, text) in [
        ("tap", "Great! What's your email?"),
        ("answer", "Sent! Check your inbox for the guide 📏"),
    ] {
        let before = env.graph.calls().len();
        for (i, person) in people.iter().enumerate() {
            let fields = match phase {
                "tap" => {
                    json!({ "postback": { "mid": format!("aWdfKillTap{i}"), "title": "Get the guide", "payload": ask } })
                }
                _ => {
                    json!({ "message": { "mid": format!("aWdfKillMail{i}"), "text": format!("p{i}@example.com") } })
                }
            };
            let body = person_delivery(ACCOUNT, person, fields);
            assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
        }
        // Kill the worker while the phase's messages are going out, and start another.
        eventually("the worker to be sending", WAIT, || async {
            Ok(env.graph.calls().len() >= before + 5)
        })
        .await
        .unwrap();
        worker.kill9().await.unwrap();
        worker = env
            .spawn_worker_process(&format!("flow-{phase}"), &process_env)
            .unwrap();
        let answered = eventually(
            &format!("every {phase} answered"),
            Duration::from_secs(120),
            sent_to(text),
        )
        .await;
        if let Err(e) = answered {
            panic!("{e:#}\n{}", unanswered(&env, text).await);
        }
    }
    // Whatever the kills cut short, each person got each step once.
    for person in &people {
        let texts = env.graph.dm_texts_to(person);
        assert_eq!(
            texts,
            [
                "Great! What's your email?",
                "Sent! Check your inbox for the guide 📏"
            ],
            "{person}"
        );
    }
    let emails: i64 = sqlx::query_scalar("select count(email) from contacts")
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert_eq!(emails, 30);
    // Waiting out a dead worker's leases spends none of an event's receives: none in the DLQ.
    assert_eq!(queue_depth(&env.sqs, &env.dlq_url).await.unwrap(), (0, 0));
    worker.kill9().await.unwrap();
}

/// For a flow that timed out: who has no `text` yet, how far their events got, and what the
/// DLQ holds.
async fn unanswered(env: &TestEnv, text: &str) -> String {
    let got: Vec<String> = env
        .graph
        .accepted(|k| matches!(k, CallKind::Message { .. }))
        .into_iter()
        .filter(|c| c.text == text)
        .filter_map(|c| match c.kind {
            CallKind::Message { recipient, .. } => Some(recipient),
            _ => None,
        })
        .collect();
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "select event_id, step, outcome, detail from activity
         where not (contact_igsid = any($1)) order by id",
    )
    .bind(&got)
    .fetch_all(env.store.pool())
    .await
    .unwrap_or_default();
    let dlq = queue_depth(&env.sqs, &env.dlq_url).await.ok();
    format!("not answered: activity {rows:#?}\nDLQ (visible, in flight): {dlq:?}")
}

/// The person gave the account their email before.
async fn email_on_record(env: &TestEnv, person: &str) {
    sqlx::query(
        "insert into contacts (account_id, igsid, email) select id, $1, 'known@example.com'
         from ig_accounts",
    )
    .bind(person)
    .execute(env.store.pool())
    .await
    .expect("the contact is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capture_step_skips_people_whose_answer_is_on_record() {
    let yaml = guide_campaign()
        .replace(
            "              next: sent\n",
            "              next: sent\n              skip_if_known: true\n",
        )
        .replace(
            "            dm: \"Great! What's your email?\"\n",
            "            dm: \"Great! What's your email?\"\n            quick_replies: [\"Not now\"]\n",
        );
    let (env, webhook, worker) = stepped_fleet(&yaml).await;
    let campaign = campaign_id(&env, "guide").await;
    email_on_record(&env, "6996").await;
    let ask = format!("igflow:step:{campaign}:ask");
    for person in ["6996", "6997"] {
        env.graph.set_following(person, true);
        let body = person_delivery(
            ACCOUNT,
            person,
            json!({ "postback": { "mid": format!("aWdfSkip{person}"), "title": "Get the guide", "payload": ask } }),
        );
        assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
        worker.finish(1, WAIT).await.unwrap();
    }
    let got = |person: &str| env.graph.dms_to(person);
    // On record: straight to the next step. Not: asked, with the step's quick reply.
    let known = got("6996");
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].text, "Sent! Check your inbox for the guide 📏");
    let asked = got("6997");
    assert_eq!(asked.len(), 1);
    assert_eq!(
        (asked[0].text.as_str(), asked[0].quick_replies.as_slice()),
        (
            "Great! What's your email?",
            ["Not now".to_owned()].as_slice()
        )
    );
    let waits: Vec<String> = sqlx::query_scalar(
        "select contact_igsid from flow_runs where awaiting is not null and answered_by is null",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(waits, ["6997"], "only the person asked waits for an answer");
}

/// Tap → the guide if the email is on record, else ask for it first; the answer leads back to
/// the guide, whose condition now holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_goes_out_only_when_its_condition_holds_and_otherwise_leads_elsewhere() {
    let yaml = file_with(
        r#"      - slug: guide
        name: Free sizing guide
        rules: [{ keywords: [guide] }]
        actions:
          private_reply: "Want the sizing guide? Tap below 👇"
          buttons: [{ title: "Get the guide", step: sent }]
        steps:
          - name: sent
            dm: "Sent! Check your inbox for the guide 📏"
            only_if: { known: email }
            otherwise: ask
          - name: ask
            dm: "Great! What's your email?"
            capture:
              field: email
              invalid: "Hmm, that doesn't look like an email. Try again?"
              next: sent
          - name: members
            dm: "Members only"
            only_if: { known: phone }
          - name: round
            dm: "Round"
            only_if: { known: phone }
            otherwise: about
          - name: about
            dm: "About"
            only_if: { known: phone }
            otherwise: round
"#,
    );
    let (env, webhook, worker) = stepped_fleet(&yaml).await;
    let campaign = campaign_id(&env, "guide").await;
    email_on_record(&env, "6996").await;
    let tap_as = |person: &str, step: &str| {
        person_delivery(
            ACCOUNT,
            person,
            json!({ "postback": { "mid": format!("aWdfCond{person}{step}"), "title": "Get the guide",
                                  "payload": format!("igflow:step:{campaign}:{step}") } }),
        )
    };
    for (person, step) in [
        ("6996", "sent"),
        ("6997", "sent"),
        ("6996", "members"),
        ("6996", "round"),
    ] {
        assert_eq!(
            env.post_signed(&webhook, &tap_as(person, step))
                .await
                .unwrap(),
            200
        );
        worker.finish(1, WAIT).await.unwrap();
    }
    let texts = |person: &str| env.graph.dm_texts_to(person);
    // On record: the guide. Not: asked first. Nobody's phone is on record: nothing, and
    // conditions that send each other round in a circle send nothing either.
    assert_eq!(texts("6996"), ["Sent! Check your inbox for the guide 📏"]);
    assert_eq!(texts("6997"), ["Great! What's your email?"]);
    let answer = person_delivery(
        ACCOUNT,
        "6997",
        json!({ "message": { "mid": "aWdfCondAnswer", "text": "new@example.com" } }),
    );
    assert_eq!(env.post_signed(&webhook, &answer).await.unwrap(), 200);
    worker.finish(1, WAIT).await.unwrap();
    assert_eq!(
        texts("6997"),
        [
            "Great! What's your email?",
            "Sent! Check your inbox for the guide 📏"
        ]
    );
    let why: Vec<String> = sqlx::query_scalar(
        "select detail from activity where step = 'decision' and contact_igsid = '6996' order by id",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        why[..2],
        [
            "step \"sent\": email on record",
            "step \"members\": not sent, as it needs phone on record",
        ]
    );
    assert_eq!(
        why[2],
        "step \"round\": not sent, as it needs phone on record; \
         step \"about\": not sent, as it needs phone on record; \
         the steps' conditions lead round in a circle; nothing sent"
    );
}
