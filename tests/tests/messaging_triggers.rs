//! Story mentions, story replies, button taps and ig.me links or ads, each from a signed
//! delivery in Meta's shape through the real webhook, SQS (moto), worker, Redis and Postgres
//! to the Graph test server.

use std::time::Duration;

use igflow_tests::fixtures::{ACCOUNT, file_with};
use igflow_tests::graph_server::CallKind;
use igflow_tests::harness::{TestEnv, stepped_fleet};
use igflow_tests::meta::{message_delivery, now_ms, person_delivery};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const GIVEAWAY_STORY: &str = "17900000000000777";

fn campaigns() -> String {
    file_with(&format!(
        r#"      - slug: hello
        name: Keyword by DM
        trigger: message
        rules: [{{ keywords: [win] }}]
        actions: {{ dm: "message campaign" }}
      - slug: mention-thanks
        name: Thanks for the mention
        trigger: story_mention
        actions: {{ dm: "Thanks for the shout-out! Here is 10% off: ACME10" }}
      - slug: giveaway
        name: Giveaway story
        trigger: story_reply
        priority: 5
        media_ids: ["{GIVEAWAY_STORY}"]
        rules: [{{ keywords: [win] }}]
        actions: {{ dm: "You're in the giveaway!" }}
      - slug: story-replies
        name: Any other story reply
        trigger: story_reply
        actions: {{ dm: "Thanks for replying to our story" }}
      - slug: prices-button
        name: Prices ice breaker
        trigger: postback
        payloads: [PRICES]
        actions: {{ dm: "Our prices: https://shop.example/prices" }}
      - slug: bio-link
        name: Link in bio
        trigger: referral
        refs: [bio]
        ad_ids: ["120210000000000001"]
        actions: {{ dm: "Welcome from our bio link!" }}
"#
    ))
}

/// The decision recorded for the one event from `igsid`: outcome, campaign, detail.
async fn decision_for(env: &TestEnv, igsid: &str) -> (String, Option<String>, Option<String>) {
    sqlx::query_as(
        "select a.outcome, c.slug, a.detail from activity a left join campaigns c on c.id = a.campaign_id
         where a.contact_igsid = $1 and a.step = 'decision'",
    )
    .bind(igsid)
    .fetch_one(env.store.pool())
    .await
    .expect("one decision for the contact")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_trigger_answers_by_dm_once_from_a_signed_delivery() {
    let (env, webhook, worker) = stepped_fleet(&campaigns()).await;
    let story = |id: &str| json!({ "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1", "id": id });
    let deliveries = [
        // Someone mentions the account in their story.
        person_delivery(
            ACCOUNT,
            "7001",
            json!({ "message": { "mid": "aWdfMention1",
            "attachments": [{ "type": "story_mention", "payload": { "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=2" } }] } }),
        ),
        // Replies to the giveaway story, with and without the keyword, and to another story.
        person_delivery(
            ACCOUNT,
            "7002",
            json!({ "message": { "mid": "aWdfReply1", "text": "I want to win!",
            "reply_to": { "story": story(GIVEAWAY_STORY) } } }),
        ),
        person_delivery(
            ACCOUNT,
            "7003",
            json!({ "message": { "mid": "aWdfReply2", "text": "love it 😍",
            "reply_to": { "story": story(GIVEAWAY_STORY) } } }),
        ),
        person_delivery(
            ACCOUNT,
            "7004",
            json!({ "message": { "mid": "aWdfReply3", "text": "win",
            "reply_to": { "story": story("17900000000000778") } } }),
        ),
        // An ice breaker tapped, and the same tap from a link with a known ref.
        person_delivery(
            ACCOUNT,
            "7005",
            json!({ "postback": { "mid": "aWdfTap1", "title": "Prices?", "payload": "PRICES" } }),
        ),
        person_delivery(
            ACCOUNT,
            "7006",
            json!({ "postback": { "mid": "aWdfTap2", "title": "Prices?", "payload": "PRICES",
            "referral": { "ref": "bio", "source": "IG.ME", "type": "OPEN_THREAD" } } }),
        ),
        // An existing conversation opened from the bio link, and a first message from an ad.
        person_delivery(
            ACCOUNT,
            "7007",
            json!({ "referral": { "ref": "bio", "source": "IG.ME", "type": "OPEN_THREAD" } }),
        ),
        person_delivery(
            ACCOUNT,
            "7008",
            json!({ "message": { "mid": "aWdfAd1", "text": "Is this still available?",
            "referral": { "ref": null, "ad_id": "120210000000000001", "source": "ADS", "type": "OPEN_THREAD",
                "ads_context_data": { "ad_title": "Winter sale", "photo_url": "https://example.invalid/p.jpg" } } } }),
        ),
        // A plain DM still goes to the message campaign.
        message_delivery(ACCOUNT, "7009", "aWdfPlain1", "can I win?", now_ms()),
    ];
    for body in &deliveries {
        assert_eq!(env.post_signed(&webhook, body).await.unwrap(), 200);
    }
    worker.finish(deliveries.len(), WAIT).await.unwrap();

    let expected = [
        (
            "7001",
            "mention-thanks",
            "Thanks for the shout-out! Here is 10% off: ACME10",
        ),
        ("7002", "giveaway", "You're in the giveaway!"),
        // No keyword: the catch-all story campaign, not the giveaway.
        ("7003", "story-replies", "Thanks for replying to our story"),
        // The keyword, on a story the giveaway does not listen to: never the message campaign.
        ("7004", "story-replies", "Thanks for replying to our story"),
        (
            "7005",
            "prices-button",
            "Our prices: https://shop.example/prices",
        ),
        // Where the person came from answers first.
        ("7006", "bio-link", "Welcome from our bio link!"),
        ("7007", "bio-link", "Welcome from our bio link!"),
        ("7008", "bio-link", "Welcome from our bio link!"),
        ("7009", "hello", "message campaign"),
    ];
    for (igsid, slug, text) in expected {
        assert_eq!(env.graph.dm_texts_to(igsid), [text], "DMs to {igsid}");
        let (outcome, campaign, _) = decision_for(&env, igsid).await;
        assert_eq!(
            (outcome.as_str(), campaign.as_deref()),
            ("matched", Some(slug)),
            "{igsid}"
        );
    }
    let (_, _, detail) = decision_for(&env, "7008").await;
    assert_eq!(detail.as_deref(), Some("referral ad 120210000000000001"));

    // Meta redelivers a tap and a referral: nobody gets a second DM.
    for body in [&deliveries[4], &deliveries[6]] {
        assert_eq!(env.post_signed(&webhook, body).await.unwrap(), 200);
    }
    worker.finish(2, WAIT).await.unwrap();
    assert_eq!(env.graph.dm_texts_to("7005").len(), 1);
    assert_eq!(env.graph.dm_texts_to("7007").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taps_and_links_no_campaign_answers_are_recorded_not_dropped() {
    let (env, webhook, worker) = stepped_fleet(&campaigns()).await;
    let deliveries = [
        person_delivery(
            ACCOUNT,
            "7101",
            json!({ "postback": { "mid": "aWdfTap9", "title": "Other", "payload": "UNKNOWN" } }),
        ),
        person_delivery(
            ACCOUNT,
            "7102",
            json!({ "referral": { "ref": "newsletter", "source": "IG.ME", "type": "OPEN_THREAD" } }),
        ),
        // The account's own tap (self-messaging) is never answered.
        person_delivery(
            ACCOUNT,
            "7103",
            json!({ "is_self": true, "postback": { "mid": "aWdfTap8", "title": "Start", "payload": "PRICES" } }),
        ),
        person_delivery(
            ACCOUNT,
            "7104",
            json!({ "reaction": { "mid": "aWdfX", "action": "react", "reaction": "love", "emoji": "❤" } }),
        ),
    ];
    for body in &deliveries {
        assert_eq!(env.post_signed(&webhook, body).await.unwrap(), 200);
    }
    worker.finish(deliveries.len(), WAIT).await.unwrap();
    assert!(
        env.graph
            .accepted(|k| matches!(k, CallKind::Message { .. }))
            .is_empty()
    );
    let mut outcomes: Vec<(String, String)> = sqlx::query_as(
        "select event_kind, outcome from activity where step = 'decision' order by event_kind, outcome",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("postback".into(), "no_match".into()),
            ("postback".into(), "own_content".into()),
            ("reaction".into(), "kind_not_handled".into()),
            ("referral".into(), "no_match".into()),
        ]
    );
}
