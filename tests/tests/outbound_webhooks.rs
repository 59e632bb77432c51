//! What a capture step stores goes to the tenant's own webhook, signed with HMAC-SHA256 and
//! retried with backoff, without holding the flow up; each attempt shows in the activity log.
//! Real webhook, SQS (moto), worker (with its delivery job), Redis, Postgres, Secrets
//! Manager (moto); a local receiver stands in for the tenant.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use igflow_core::signature::Verifier;
use igflow_tests::fixtures::{ACCOUNT, TOKEN};
use igflow_tests::harness::{RunningWorker, TestEnv, eventually};
use igflow_tests::locked::Locked;
use igflow_tests::meta::person_delivery;
use secrecy::SecretString;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const PERSON: &str = "6971";
const SECRET: &str = "whsec-acme-test";

/// The tenant's endpoint: refuses the first `failures` calls with 500, then takes them,
/// keeping (signature valid, body) of each.
struct Receiver {
    url: String,
    calls: Locked<Vec<(bool, Value)>>,
}

async fn receiver(failures: u32) -> Receiver {
    let calls: Locked<Vec<(bool, Value)>> = Locked::default();
    let seen = Arc::new(AtomicU32::new(0));
    let verifier = Arc::new(Verifier::new(vec![SecretString::from(SECRET)]));
    let app = axum::Router::new().route(
        "/hooks/igflow",
        post({
            let calls = calls.clone();
            move |headers: HeaderMap, body: Bytes| async move {
                let signed = verifier
                    .verify(
                        headers.get("x-igflow-signature-256").map(|h| h.as_bytes()),
                        &body,
                    )
                    .is_ok();
                let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                calls.lock().push((signed, json));
                if seen.fetch_add(1, Ordering::SeqCst) < failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/igflow", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, calls }
}

fn campaigns(webhook: &str) -> String {
    format!(
        r#"
version: 1
tenant:
  slug: acme
  name: Acme Shoes
  webhook: {{ url: "{webhook}", secret: "{SECRET}" }}
accounts:
  - ig_user_id: "{ACCOUNT}"
    username: acme.shoes
    login: instagram
    access_token: "{TOKEN}"
    campaigns:
      - slug: newsletter
        name: Newsletter
        trigger: postback
        payloads: [NEWSLETTER]
        actions: {{ dm: "Join the list! Tap below", buttons: [{{ title: "Sign me up", step: ask }}] }}
        steps:
          - name: ask
            dm: "What's your email?"
            capture: {{ field: email, invalid: "Try again?", thanks: "You're on the list 💌" }}
"#
    )
}

/// A fleet whose worker delivers webhooks every 100 ms, retrying after 200 ms (doubling),
/// `attempts` times at most; the person walks the newsletter flow to the captured email.
async fn captured_email(hook: &Receiver, attempts: &str) -> (TestEnv, RunningWorker) {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns(&hook.url)).await.unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let worker = env
        .start_worker_with(
            &[
                ("IGFLOW_WEBHOOK_POLL_MS", "100"),
                ("IGFLOW_WEBHOOK_BACKOFF_MS", "200"),
                ("IGFLOW_WEBHOOK_ATTEMPTS", attempts),
            ],
            env.worker_store.clone(),
        )
        .await
        .unwrap();
    let campaign: uuid::Uuid =
        sqlx::query_scalar("select id from campaigns where slug = 'newsletter'")
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    let deliveries = [
        json!({ "postback": { "mid": "aWdfNl1", "title": "Newsletter", "payload": "NEWSLETTER" } }),
        json!({ "postback": { "mid": "aWdfNl2", "title": "Sign me up",
                               "payload": format!("igflow:step:{campaign}:ask") } }),
        json!({ "message": { "mid": "aWdfNl3", "text": "ana@example.com" } }),
    ];
    for (n, fields) in deliveries.into_iter().enumerate() {
        let body = person_delivery(ACCOUNT, PERSON, fields);
        assert_eq!(env.post_signed(&webhook, &body).await.unwrap(), 200);
        worker.wait_finished(n as u64 + 1, WAIT).await.unwrap();
    }
    (env, worker)
}

async fn webhook_row_says(env: &TestEnv, outcome: &str) {
    let pool = env.store.pool();
    eventually(
        &format!("the webhook delivery is {outcome}"),
        WAIT,
        || async {
            let now: Option<String> =
                sqlx::query_scalar("select outcome from activity where step = 'webhook'")
                    .fetch_optional(pool)
                    .await?;
            Ok(now.as_deref() == Some(outcome))
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_email_reaches_the_tenants_webhook_signed_after_two_failures() {
    let hook = receiver(2).await;
    let (env, worker) = captured_email(&hook, "10").await;
    // The flow went on at once: the thanks went out whatever the webhook answered.
    let dms = env.graph.dm_texts_to(PERSON);
    assert_eq!(
        dms,
        [
            "Join the list! Tap below",
            "What's your email?",
            "You're on the list 💌"
        ]
    );

    webhook_row_says(&env, "sent").await;
    let pool = env.store.pool();
    let calls = hook.calls.lock().clone();
    assert_eq!(calls.len(), 3, "two refused, one taken: {calls:?}");
    assert!(
        calls.iter().all(|(signed, _)| *signed),
        "every call is signed"
    );
    assert!(
        calls.windows(2).all(|w| w[0].1 == w[1].1),
        "the same body each time"
    );
    let body = &calls[2].1;
    assert_eq!(body["type"], "contact.captured");
    assert_eq!(
        body["contact"],
        json!({ "igsid": PERSON, "email": "ana@example.com" })
    );
    assert_eq!(body["campaign"], "newsletter");
    assert_eq!(body["account"]["ig_user_id"], ACCOUNT);
    let (attempts, last_error, detail): (i32, Option<String>, Option<String>) = sqlx::query_as(
        "select d.attempts, d.last_error, a.detail from outbound_deliveries d
         join activity a on a.event_id = d.event_id and a.step = 'webhook'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (attempts, last_error, detail.as_deref()),
        (
            3,
            None,
            Some("delivered to the tenant's webhook (HTTP 200)")
        )
    );
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_keeps_failing_is_given_up_on_visibly() {
    let hook = receiver(u32::MAX).await;
    let (env, worker) = captured_email(&hook, "2").await;
    webhook_row_says(&env, "failed").await;
    let detail: Option<String> =
        sqlx::query_scalar("select detail from activity where step = 'webhook'")
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(
        detail.as_deref(),
        Some("the webhook answered HTTP 500; gave up")
    );
    assert_eq!(hook.calls.lock().len(), 2);
    // The email is the contact's all the same.
    let email: Option<String> = sqlx::query_scalar("select email from contacts where igsid = $1")
        .bind(PERSON)
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert_eq!(email.as_deref(), Some("ana@example.com"));
    worker.stop().await.unwrap();
}
