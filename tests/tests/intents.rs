//! Intent classification inside the worker: a comment no keyword matches fires a campaign by
//! the intent the model recognizes, and with no model the decision stays keyword only and
//! says so.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use igflow_tests::fixtures::{ACCOUNT, campaigns_yaml};
use igflow_tests::graph_server::CallKind;
use igflow_tests::harness::TestEnv;
use igflow_tests::meta::{CommentSpec, comment_delivery};
use igflow_tests::ollama_server::{Mode, OllamaTestServer};

const SETTLE: Duration = Duration::from_secs(60);

/// The test campaigns, with a purchase intent on the price list.
fn with_intents() -> String {
    campaigns_yaml().replace(
        "        actions:\n          private_reply: \"Hi! Our price list",
        "        intents:\n          - name: purchase\n            description: wants to buy the product or asks where to buy it\n            examples: [\"where can I get these?\", \"do you ship to Pune?\"]\n        actions:\n          private_reply: \"Hi! Our price list",
    )
}

async fn decision(env: &TestEnv, comment: &str) -> (String, Option<String>) {
    sqlx::query_as("select outcome, detail from activity where event_id = $1 and step = 'decision'")
        .bind(format!("comment:{comment}"))
        .fetch_one(env.store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comment_without_keywords_fires_the_campaign_by_intent_once_per_text() {
    let env = TestEnv::new().await.unwrap();
    let yaml = with_intents();
    assert!(yaml.contains("name: purchase"));
    env.apply(&yaml).await.unwrap();
    let ollama = OllamaTestServer::start(0, Mode::Label("purchase".into()))
        .await
        .unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env
        .start_worker_with(
            &[("OLLAMA_URL", ollama.url.as_str())],
            env.worker_store.clone(),
        )
        .await
        .unwrap();
    let comments = [
        CommentSpec::new("17900000000000801", "6801", "where can I buy these??"),
        CommentSpec::new("17900000000000802", "6802", "Where can I buy these"),
        CommentSpec::new("17900000000000803", "6803", "price?"),
    ];
    assert_eq!(
        env.post_signed(&webhook, &comment_delivery(ACCOUNT, &comments))
            .await
            .unwrap(),
        200
    );
    worker.wait_finished(3, SETTLE).await.unwrap();

    let first = decision(&env, "17900000000000801").await;
    let second = decision(&env, "17900000000000802").await;
    assert_eq!(first.0, "matched");
    assert_eq!(second.0, "matched");
    let details = [first.1.unwrap(), second.1.unwrap()];
    assert!(
        details.contains(&"intent \"purchase\" (model)".to_owned()),
        "{details:?}"
    );
    assert!(
        details.contains(&"intent \"purchase\" (cache)".to_owned()),
        "{details:?}"
    );
    assert_eq!(
        decision(&env, "17900000000000803").await.1.as_deref(),
        Some("rule 0 matched keyword \"price\"")
    );
    assert_eq!(
        ollama.calls(),
        1,
        "the keyword match needs no model; the same text asks it once"
    );
    assert_eq!(
        env.graph
            .accepted(|k| matches!(k, CallKind::PrivateReply { .. }))
            .len(),
        3
    );
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_model_decisions_are_keyword_only_and_recorded_as_such() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&with_intents()).await.unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env.stepped_worker().await.unwrap();
    let comment = CommentSpec::new("17900000000000811", "6811", "where can I buy these??");
    assert_eq!(
        env.post_signed(&webhook, &comment_delivery(ACCOUNT, &[comment]))
            .await
            .unwrap(),
        200
    );
    worker.finish(1, SETTLE).await.unwrap();
    let (outcome, detail) = decision(&env, "17900000000000811").await;
    assert_eq!(outcome, "no_match");
    assert_eq!(
        detail.as_deref(),
        Some("model not asked (no_model); keyword rules only")
    );
    assert!(env.graph.calls().is_empty());
}
