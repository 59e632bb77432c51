//! The webhook's handshake and its refusals: nothing unverified or malformed is enqueued.

use igflow_core::signature::sign;
use igflow_tests::fixtures::ACCOUNT;
use igflow_tests::harness::TestEnv;
use igflow_tests::meta::{CommentSpec, comment_delivery};
use secrecy::{ExposeSecret, SecretString};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_echoes_the_challenge_only_for_the_right_token() {
    let env = TestEnv::new().await.unwrap();
    let webhook = env.start_webhook().await.unwrap();
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
    let webhook = env.start_webhook().await.unwrap();
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
        "x".repeat(300 * 1024)
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
