//! The webhook's handshake and its refusals: nothing unverified or malformed is enqueued.

use std::sync::Arc;
use std::time::Duration;

use igflow_core::envelope::Envelope;
use igflow_core::runtime::AwsCalls;
use igflow_core::runtime::queue::MAX_SQS_PAYLOAD;
use igflow_core::signature::sign;
use igflow_tests::fixtures::ACCOUNT;
use igflow_tests::harness::{TestEnv, WEBHOOK_MAX_BODY_BYTES, aws_at, eventually, queue_depth};
use igflow_tests::meta::{CommentSpec, comment_delivery, rest_api_event};
use igflow_webhook::{AppState, KeyStore, Keys, Metrics, SqsSink};
use secrecy::{ExposeSecret, SecretString};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_echoes_the_challenge_only_for_the_right_token() {
    let env = TestEnv::new().await.unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let http = reqwest::Client::new();
    let get = |mode: &str, token: &str| {
        http.get(&webhook)
            .query(&[
                ("hub.mode", mode),
                ("hub.challenge", "1158201444"),
                ("hub.verify_token", token),
            ])
            .send()
    };
    let ok = get("subscribe", env.verify_token.expose_secret())
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "text/plain");
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    assert_eq!(
        get("subscribe", "meatyhamhock").await.unwrap().status(),
        403
    );
    assert_eq!(
        get("unsubscribe", env.verify_token.expose_secret())
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(http.get(&webhook).send().await.unwrap().status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_and_bad_bodies_are_refused_and_enqueue_nothing() {
    let env = TestEnv::new().await.unwrap();
    let webhook = env.start_webhook().await.unwrap().url;
    let body = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000041", "6041", "price?")],
    );
    let good = sign(&env.app_secret, body.as_bytes());
    let forged = sign(
        &SecretString::from("not-the-app-secret".to_owned()),
        body.as_bytes(),
    );
    let sha1_only = "sha1=2fd4e1c67a2d28fced849ee1bb76e7391b93eb12".to_owned();
    let truncated = good[..40].to_owned();

    assert_eq!(
        env.post_with(&webhook, &body, Some(&forged)).await.unwrap(),
        403
    );
    assert_eq!(env.post_with(&webhook, &body, None).await.unwrap(), 401);
    assert_eq!(
        env.post_with(&webhook, &body, Some(&truncated))
            .await
            .unwrap(),
        401
    );
    // Meta's older SHA-1 header alone does not count.
    let response = reqwest::Client::new()
        .post(&webhook)
        .header("X-Hub-Signature", sha1_only)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // A valid signature over a different body (one byte changed) is a forgery too.
    let tampered = body.replace("price?", "price!");
    assert_eq!(
        env.post_with(&webhook, &tampered, Some(&good))
            .await
            .unwrap(),
        403
    );
    // Signed but not a delivery.
    assert_eq!(
        env.post_signed(
            &webhook,
            "{\"object\":\"instagram\",\"entry\":[{\"time\":1}]}"
        )
        .await
        .unwrap(),
        400
    );
    assert_eq!(env.post_signed(&webhook, "not json").await.unwrap(), 400);
    // Larger than the body limit.
    let huge = format!(
        "{{\"object\":\"instagram\",\"pad\":\"{}\"}}",
        "x".repeat(WEBHOOK_MAX_BODY_BYTES)
    );
    assert_eq!(env.post_signed(&webhook, &huge).await.unwrap(), 413);

    assert_eq!(
        env.queue_depth().await.unwrap(),
        (0, 0),
        "nothing was enqueued"
    );
    assert_eq!(
        env.post_with(&webhook, &body, Some(&good)).await.unwrap(),
        200
    );
    assert_eq!(
        env.queue_depth().await.unwrap(),
        (1, 0),
        "the genuine delivery was"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_through_secrets_manager_and_a_failed_refresh_keeps_the_last_good_ones() {
    let env = TestEnv::new().await.unwrap();
    let webhook = env.start_webhook().await.unwrap();
    let body = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000051", "6051", "price?")],
    );
    let signed_with = |secret: &SecretString| sign(secret, body.as_bytes());
    let old = env.app_secret.clone();
    let new = SecretString::from("rotated-app-secret".to_owned());
    assert_eq!(
        env.post_with(&webhook.url, &body, Some(&signed_with(&old)))
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        env.post_with(&webhook.url, &body, Some(&signed_with(&new)))
            .await
            .unwrap(),
        403
    );

    // During a rotation both secrets are listed; afterwards only the new one.
    env.put_webhook_secret(&[&old, &new]).await.unwrap();
    eventually(
        "the new secret to be accepted",
        Duration::from_secs(15),
        || async {
            Ok(env
                .post_with(&webhook.url, &body, Some(&signed_with(&new)))
                .await?
                == 200)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        env.post_with(&webhook.url, &body, Some(&signed_with(&old)))
            .await
            .unwrap(),
        200
    );
    env.put_webhook_secret(&[&new]).await.unwrap();
    eventually(
        "the old secret to be refused",
        Duration::from_secs(15),
        || async {
            Ok(env
                .post_with(&webhook.url, &body, Some(&signed_with(&old)))
                .await?
                == 403)
        },
    )
    .await
    .unwrap();

    // The secret disappears: refreshes fail, the last good keys stay in use.
    aws_sdk_secretsmanager::Client::new(&env.aws)
        .delete_secret()
        .secret_id(env.webhook_secret_id())
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for _ in 0..3 {
        assert_eq!(
            env.post_with(&webhook.url, &body, Some(&signed_with(&new)))
                .await
                .unwrap(),
            200
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_item_delivery_is_enqueued_whole_and_metrics_count_it() {
    let env = TestEnv::new().await.unwrap();
    let webhook = env.start_webhook().await.unwrap();
    let comments: Vec<CommentSpec> = (0..1000)
        .map(|i| {
            CommentSpec::new(
                &format!("179{i:014}"),
                &format!("7{i:04}"),
                "how much? \u{1F60D}",
            )
        })
        .collect();
    let body = comment_delivery(ACCOUNT, &comments);
    assert_eq!(env.post_signed(&webhook.url, &body).await.unwrap(), 200);
    assert_eq!(env.queue_depth().await.unwrap(), (1000, 0));

    assert_eq!(
        env.post_with(&webhook.url, &body, Some("sha256=00"))
            .await
            .unwrap(),
        401
    );
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(WEBHOOK_MAX_BODY_BYTES));
    assert_eq!(env.post_signed(&webhook.url, &huge).await.unwrap(), 413);
    let m = webhook.metrics.peek();
    assert_eq!(
        (
            m.deliveries,
            m.signature_failures,
            m.too_large,
            m.enqueue_failures
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(m.items_by_kind.get("comment"), Some(&1000));
    assert_eq!(
        m.batch_ms.len(),
        100,
        "one latency sample per SendMessageBatch call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_items_are_batched_within_sqs_limits_and_an_impossible_one_is_dropped_alone() {
    let env = TestEnv::new().await.unwrap();
    let webhook = env.start_webhook().await.unwrap();
    // Ten 150 KB comments: more than SQS takes in one batch (1 MiB), fine in two.
    let text = "x".repeat(150 * 1024);
    let big: Vec<CommentSpec> = (0..10)
        .map(|i| CommentSpec::new(&format!("1790000000000008{i}"), "6081", &text))
        .collect();
    assert_eq!(
        env.post_signed(&webhook.url, &comment_delivery(ACCOUNT, &big))
            .await
            .unwrap(),
        200
    );
    assert_eq!(env.queue_depth().await.unwrap(), (10, 0));

    // One item beyond SQS's 1 MiB per message can never be enqueued; the others are.
    let huge = "y".repeat(MAX_SQS_PAYLOAD + 1);
    let body = comment_delivery(
        ACCOUNT,
        &[
            CommentSpec::new("17900000000000091", "6091", &huge),
            CommentSpec::new("17900000000000092", "6092", "price?"),
        ],
    );
    assert_eq!(env.post_signed(&webhook.url, &body).await.unwrap(), 200);
    assert_eq!(env.queue_depth().await.unwrap(), (11, 0));
    assert_eq!(webhook.metrics.peek().oversized_items, 1);
}

/// SQS refuses a body holding characters outside XML 1.0's set (U+FFFF here, sent as it is
/// rather than `\\u`-escaped: valid JSON, and envelopes keep an item's bytes) as the sender's
/// fault: every redelivery would be refused the same. That item alone goes to the DLQ with
/// SQS's reason; the rest is enqueued and Meta gets its 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_sqs_refuses_for_good_goes_to_the_dlq_and_the_rest_is_enqueued() {
    let env = TestEnv::new().await.unwrap();
    let webhook = env.start_webhook().await.unwrap();
    let body = comment_delivery(
        ACCOUNT,
        &[
            CommentSpec::new("17900000000000111", "6111", "price?"),
            CommentSpec::new("17900000000000112", "6112", "price? \u{ffff}"),
            CommentSpec::new("17900000000000113", "6113", "prix ? très joli"),
        ],
    )
    .replace("\\uffff", "\u{ffff}");
    assert_eq!(env.post_signed(&webhook.url, &body).await.unwrap(), 200);
    assert_eq!(env.queue_depth().await.unwrap(), (2, 0));
    let m = webhook.metrics.peek();
    assert_eq!((m.refused_items, m.enqueue_failures), (1, 0));

    let received = env
        .sqs
        .receive_message()
        .queue_url(&env.dlq_url)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let [message] = received.messages() else {
        panic!("one message on the DLQ: {received:?}");
    };
    let attributes = message.message_attributes().unwrap();
    let attribute = |name: &str| attributes[name].string_value().unwrap_or_default();
    assert_eq!(attribute("igflow_refused_code"), "InvalidMessageContents");
    assert!(attribute("igflow_refused_reason").contains("invalid characters"));
    assert_eq!(attribute("igflow_event_id"), "comment:17900000000000112");
    // The DLQ copy is the same envelope, in characters SQS always takes.
    let copy = Envelope::decode(message.body().unwrap()).unwrap();
    assert_eq!(copy.event_id.as_str(), "comment:17900000000000112");
    let item: serde_json::Value = serde_json::from_str(copy.item.get()).unwrap();
    assert!(item.to_string().contains('\u{ffff}'), "{item}");
}

/// A refused item that in ASCII outgrows an SQS message (400 KB of emoji become 1.2 MB of
/// `\\u` escapes) cannot be dead-lettered either: it is dropped like an oversized item, and
/// the delivery is still answered 200 rather than blocked forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_item_too_large_for_the_dlq_is_dropped_alone() {
    let env = TestEnv::new().await.unwrap();
    let webhook = env.start_webhook().await.unwrap();
    let text = format!("\u{ffff}{}", "😀".repeat(100_000));
    let body = comment_delivery(
        ACCOUNT,
        &[
            CommentSpec::new("17900000000000121", "6121", &text),
            CommentSpec::new("17900000000000122", "6122", "price?"),
        ],
    )
    .replace("\\ud83d\\ude00", "😀")
    .replace("\\uffff", "\u{ffff}");
    assert!(body.len() < MAX_SQS_PAYLOAD, "{}", body.len());
    assert_eq!(env.post_signed(&webhook.url, &body).await.unwrap(), 200);
    assert_eq!(env.queue_depth().await.unwrap(), (1, 0));
    let m = webhook.metrics.peek();
    assert_eq!((m.refused_items, m.oversized_items), (0, 1));
    assert_eq!(queue_depth(&env.sqs, &env.dlq_url).await.unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_refuses_makes_the_delivery_fail_so_meta_redelivers() {
    let env = TestEnv::new().await.unwrap();
    let webhook = env.start_webhook().await.unwrap();
    env.sqs
        .delete_queue()
        .queue_url(&env.queue_url)
        .send()
        .await
        .unwrap();
    let body = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000101", "6101", "price?")],
    );
    assert_eq!(env.post_signed(&webhook.url, &body).await.unwrap(), 503);
    let m = webhook.metrics.peek();
    assert_eq!((m.deliveries, m.enqueue_failures), (1, 1));
    assert_eq!(m.batch_ms.len(), 3, "the batch was tried three times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_entry_point_accepts_api_gateway_rest_events() {
    use tower::ServiceExt;
    let env = TestEnv::new().await.unwrap();
    let (app, _) = env.webhook_app().await.unwrap();
    let body = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new(
            "17900000000000071",
            "6071",
            "prix ? très joli",
        )],
    );
    let good = sign(&env.app_secret, body.as_bytes());
    for (i, base64) in [false, true].into_iter().enumerate() {
        let request = lambda_http::request::from_str(&rest_api_event(
            "/webhook",
            &[
                ("Content-Type", "application/json"),
                ("X-Hub-Signature-256", &good),
            ],
            &body,
            base64,
        ))
        .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200, "base64: {base64}");
        assert_eq!(env.queue_depth().await.unwrap(), (i as u64 + 1, 0));
    }
    let forged = sign(&SecretString::from("x".to_owned()), body.as_bytes());
    let request = lambda_http::request::from_str(&rest_api_event(
        "/webhook",
        &[
            ("Content-Type", "application/json"),
            ("X-Hub-Signature-256", &forged),
        ],
        &body,
        true,
    ))
    .unwrap();
    assert_eq!(app.oneshot(request).await.unwrap().status(), 403);
    assert_eq!(env.queue_depth().await.unwrap(), (2, 0));
}

/// A queue endpoint that takes the connection and never answers: the SDK's timeouts end the
/// send and the delivery is answered 503, instead of waiting until Lambda kills the invocation
/// (the SDK has no timeouts of its own). The outer timeout only guards against a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_never_answers_gets_a_503_not_a_hang() {
    use tower::ServiceExt;
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = hole.accept().await {
            held.push(conn);
        }
    });
    let aws = aws_at(&endpoint, AwsCalls::Ingress).await;
    let secret = SecretString::from("stalled-queue-secret".to_owned());
    let metrics = Arc::new(Metrics::default());
    let sink = Arc::new(SqsSink::new(
        aws_sdk_sqs::Client::new(&aws),
        format!("{endpoint}/123456789012/events"),
        format!("{endpoint}/123456789012/events-dlq"),
        Arc::clone(&metrics),
    ));
    let keys = KeyStore::fixed(Keys::new(
        vec![secret.clone()],
        SecretString::from("verify".to_owned()),
    ));
    let app = igflow_webhook::app(
        AppState::new(keys, sink, metrics, false),
        WEBHOOK_MAX_BODY_BYTES,
    );
    let body = comment_delivery(
        ACCOUNT,
        &[CommentSpec::new("17900000000000081", "6081", "price?")],
    );
    let request = axum::http::Request::post("/webhook")
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", sign(&secret, body.as_bytes()))
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(120), app.oneshot(request))
        .await
        .expect("the SDK's timeouts end the send")
        .unwrap();
    assert_eq!(response.status(), 503);
}
