//! Meta's app callbacks through the real webhook, SQS (moto) and the real worker: a
//! deauthorized account is disabled and sends nothing more; a data deletion request deletes
//! the account's rows and answers a stable confirmation code; anything unsigned or malformed
//! is refused with a JSON error and enqueues nothing.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use igflow_core::signature::Verifier;
use igflow_core::signed_request::{self, Callback};
use igflow_tests::fixtures::{ACCOUNT, campaigns_yaml};
use igflow_tests::harness::{RunningWorker, TestEnv, eventually};
use igflow_tests::meta::{
    CommentSpec, callback_form, callback_payload, comment_delivery, rest_api_event, signed_request,
    signed_request_over,
};
use igflow_worker::pipeline::account_events;
use secrecy::SecretString;
use serde_json::{Value, json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const STATUS_URL: &str = "https://igflow.example/data-deletion";

/// A minute ago, in seconds: the webhook refuses signed requests older than a day.
fn issued_at() -> i64 {
    igflow_core::runtime::now_ms() / 1000 - 60
}

/// The confirmation code the webhook answers for this signed request.
fn code_of(env: &TestEnv, signed: &str) -> String {
    let verifier = Verifier::new(vec![env.app_secret.clone()]);
    signed_request::verify(&verifier, signed, igflow_core::runtime::now_ms())
        .expect("the test's signed request verifies")
        .confirmation_code()
}
const OTHER_ACCOUNT: &str = "17841400000000002";

/// A second tenant with its own account, to show a deletion stays within its account.
fn second_tenant_yaml() -> String {
    format!(
        r#"
version: 1
tenant: {{ slug: globex, name: Globex }}
accounts:
  - ig_user_id: "{OTHER_ACCOUNT}"
    username: globex.shop
    login: instagram
    access_token: "IGAAtest-token-0002"
    campaigns:
      - slug: prices
        name: Prices
        rules:
          - keywords: [price]
        actions:
          private_reply: "Globex prices: https://globex.example/prices"
"#
    )
}

fn comment(account: &str, id: &str) -> String {
    comment_delivery(account, &[CommentSpec::new(id, id, "price?")])
}

/// The envelope the webhook enqueues for this signed request, for calling the worker's
/// handler directly (a redelivery that got past the Redis done-marker).
fn envelope_of(env: &TestEnv, signed: &str, callback: Callback) -> igflow_core::envelope::Envelope {
    let verifier = Verifier::new(vec![env.app_secret.clone()]);
    signed_request::verify(&verifier, signed, igflow_core::runtime::now_ms())
        .expect("the test's signed request verifies")
        .envelope(callback, 0)
}

async fn wait_duplicates(worker: &RunningWorker, n: u64) {
    let stats = worker.stats.clone();
    eventually("the repeat dropped as a duplicate", WAIT, move || {
        let s = stats.snapshot();
        async move { Ok(s.duplicates >= n) }
    })
    .await
    .expect("duplicate dropped");
}

async fn scalar_i64(env: &TestEnv, sql: &'static str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(env.store.pool())
        .await
        .expect("count query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deauthorized_account_is_disabled_and_its_comments_are_parked_not_sent() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    // No IGFLOW_DELETION_STATUS_URL: the deauthorize callback does not need it.
    let webhook = env.start_webhook().await.unwrap();
    let worker = env.start_worker().await.unwrap();

    // Active, and now in the worker's cache: a comment is answered.
    assert_eq!(
        env.post_signed(&webhook.url, &comment(ACCOUNT, "17900000000001001"))
            .await
            .unwrap(),
        200
    );
    worker.wait_finished(1, WAIT).await.unwrap();
    assert_eq!(env.graph.calls().len(), 2, "private and public reply");

    let issued = issued_at();
    let signed = signed_request(&env.app_secret, &callback_payload(ACCOUNT, issued));
    let url = format!("{}/meta/deauthorize", webhook.base);
    let (status, body) = env.post_form(&url, &callback_form(&signed)).await.unwrap();
    assert_eq!(
        (status.as_u16(), &body),
        (200, &json!({ "status": "received" }))
    );
    worker.wait_finished(2, WAIT).await.unwrap();

    let account = || {
        sqlx::query_as::<_, (String, Option<String>, String)>(
            "select status, status_reason, updated_at::text from ig_accounts where ig_user_id = $1",
        )
        .bind(ACCOUNT)
        .fetch_one(env.store.pool())
    };
    let disabled = account().await.unwrap();
    assert_eq!(disabled.0, "disabled");
    assert_eq!(
        disabled.1.as_deref(),
        Some(
            format!(
                "the account removed the app on {} (Meta's deauthorize callback)",
                jiff::Timestamp::from_second(issued).unwrap()
            )
            .as_str()
        )
    );
    let event_id = format!("deauthorize:{ACCOUNT}:{issued}");
    let decision: (String, String) = sqlx::query_as(
        "select event_kind, outcome from activity where event_id = $1 and step = 'decision'",
    )
    .bind(&event_id)
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        decision,
        ("app_deauthorized".into(), "app_deauthorized".into())
    );

    // Postgres notifies the worker, which drops the cached account; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.post_signed(&webhook.url, &comment(ACCOUNT, "17900000000001002"))
            .await
            .unwrap(),
        200
    );
    eventually("the comment parked", WAIT, || async {
        let parked: i64 = sqlx::query_scalar(
            "select count(*) from parked_events where event_id = 'comment:17900000000001002'",
        )
        .fetch_one(env.store.pool())
        .await?;
        Ok(parked == 1)
    })
    .await
    .unwrap();
    assert_eq!(
        env.graph.calls().len(),
        2,
        "nothing sent after the deauthorization"
    );

    // Meta retries: accepted again, dropped by the worker's done-marker.
    let (status, _) = env.post_form(&url, &callback_form(&signed)).await.unwrap();
    assert_eq!(status, 200);
    wait_duplicates(&worker, 1).await;
    // Past Redis too (its marker expired, say): the handler itself changes nothing.
    account_events::handle(
        &env.worker_store,
        &envelope_of(&env, &signed, Callback::Deauthorize),
    )
    .await
    .unwrap();
    assert_eq!(
        account().await.unwrap(),
        disabled,
        "status, reason and updated_at kept"
    );
    assert_eq!(
        scalar_i64(
            &env,
            "select count(*) from activity where event_id = $1",
            &event_id
        )
        .await,
        1
    );
    eventually("the queue drained", WAIT, || async {
        Ok(env.queue_depth().await? == (0, 0))
    })
    .await
    .unwrap();
    assert_eq!(env.graph.calls().len(), 2);
    worker.stop().await.unwrap();
}

/// Rows igflow holds for an account: ig_accounts, campaigns, rules, contacts, activity,
/// parked events.
async fn held(env: &TestEnv, ig_user_id: &str, account: Uuid) -> [i64; 7] {
    let row: (i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "select (select count(*) from ig_accounts where ig_user_id = $1),
                (select count(*) from campaigns where account_id = $2),
                (select count(*) from rules r join campaigns c on c.id = r.campaign_id
                   where c.account_id = $2),
                (select count(*) from contacts where account_id = $2),
                (select count(*) from activity where ig_user_id = $1),
                (select count(*) from parked_events where account_id = $2),
                (select count(*) from message_errors where ig_user_id = $1)",
    )
    .bind(ig_user_id)
    .bind(account)
    .fetch_one(env.store.pool())
    .await
    .expect("counts");
    [row.0, row.1, row.2, row.3, row.4, row.5, row.6]
}

async fn account_uuid(env: &TestEnv, ig_user_id: &str) -> Uuid {
    sqlx::query_scalar("select id from ig_accounts where ig_user_id = $1")
        .bind(ig_user_id)
        .fetch_one(env.store.pool())
        .await
        .expect("account row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_deletion_request_deletes_the_account_and_answers_a_stable_code() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    env.apply(&second_tenant_yaml()).await.unwrap();
    let webhook = env.start_webhook_with(Some(STATUS_URL)).await.unwrap();
    let worker = env.start_worker().await.unwrap();

    // Contacts and activity for both accounts, and a parked event for the first.
    for (account, id) in [
        (ACCOUNT, "17900000000002001"),
        (OTHER_ACCOUNT, "17900000000002002"),
    ] {
        assert_eq!(
            env.post_signed(&webhook.url, &comment(account, id))
                .await
                .unwrap(),
            200
        );
    }
    worker.wait_finished(2, WAIT).await.unwrap();
    let (mine, theirs) = (
        account_uuid(&env, ACCOUNT).await,
        account_uuid(&env, OTHER_ACCOUNT).await,
    );
    sqlx::query(
        "insert into parked_events (event_id, account_id, envelope, reason)
         values ('comment:17900000000002003', $1, '{}', 'account is paused')",
    )
    .bind(mine)
    .execute(env.store.pool())
    .await
    .unwrap();
    // A queue failure of each account for one event id (ids are unique per account only):
    // only the account's own goes.
    sqlx::query(
        "insert into message_errors
           (message_id, ig_user_id, event_id, event_kind, error, receive_count)
         values ('msg-mine', $1, 'message:aWdfShared', 'message', 'graph timeout', 2),
                ('msg-theirs', $2, 'message:aWdfShared', 'message', 'graph timeout', 2)",
    )
    .bind(ACCOUNT)
    .bind(OTHER_ACCOUNT)
    .execute(env.store.pool())
    .await
    .unwrap();
    let before = held(&env, ACCOUNT, mine).await;
    assert!(
        before.iter().all(|n| *n > 0),
        "the account holds data: {before:?}"
    );
    let theirs_before = held(&env, OTHER_ACCOUNT, theirs).await;

    let issued = issued_at();
    let signed = signed_request(&env.app_secret, &callback_payload(ACCOUNT, issued));
    let url = format!("{}/meta/data-deletion", webhook.base);
    let code = code_of(&env, &signed);
    let answer = json!({ "url": format!("{STATUS_URL}?code={code}"), "confirmation_code": code });
    let (status, body) = env.post_form(&url, &callback_form(&signed)).await.unwrap();
    assert_eq!((status.as_u16(), &body), (200, &answer));

    let request = || {
        sqlx::query_as::<_, (String, i64, Option<String>, Option<String>)>(
            "select ig_user_id, extract(epoch from requested_at)::bigint, completed_at::text, detail
             from data_deletion_requests where confirmation_code = $1",
        )
        .bind(&code)
        .fetch_optional(env.store.pool())
    };
    eventually("the deletion completed", WAIT, || async {
        Ok(request().await?.is_some_and(|r| r.2.is_some()))
    })
    .await
    .unwrap();
    assert_eq!(
        held(&env, ACCOUNT, mine).await,
        [0; 7],
        "nothing left of the account"
    );
    assert_eq!(
        held(&env, OTHER_ACCOUNT, theirs).await,
        theirs_before,
        "the other tenant untouched"
    );
    let done = request().await.unwrap().unwrap();
    assert_eq!(
        deletion_outcome(&env, &code).await.unwrap().0.as_deref(),
        Some("deleted")
    );
    assert_eq!(done.0, ACCOUNT);
    assert_eq!(done.1, issued, "requested when Meta issued it");
    let detail = done.3.clone().unwrap();
    let secret = format!("{}accounts/{ACCOUNT}/access-token", env.secrets_prefix);
    assert!(
        detail.starts_with("deleted the account and 2 campaigns")
            && detail.contains(&format!(
                "delete the access token secret {secret:?} in Secrets Manager"
            )),
        "{detail}"
    );

    // Meta retries: the same code, and the worker changes nothing.
    let (status, body) = env.post_form(&url, &callback_form(&signed)).await.unwrap();
    assert_eq!((status.as_u16(), &body), (200, &answer));
    wait_duplicates(&worker, 1).await;
    account_events::handle(
        &env.worker_store,
        &envelope_of(&env, &signed, Callback::DataDeletion),
    )
    .await
    .unwrap();
    assert_eq!(
        request().await.unwrap().unwrap(),
        done,
        "completed_at and detail kept"
    );
    assert_eq!(
        scalar_i64(
            &env,
            "select count(*) from data_deletion_requests where ig_user_id = $1",
            ACCOUNT
        )
        .await,
        1
    );

    // Operator-only: dashboard roles see nothing of it.
    for role in ["authenticated", "anon"] {
        let mut tx = env.store.pool().begin().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("set local role {role}")))
            .execute(&mut *tx)
            .await
            .unwrap();
        let e = sqlx::query("select * from data_deletion_requests")
            .execute(&mut *tx)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{role}: {e}");
    }
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_callbacks_answer_a_json_error_and_enqueue_nothing() {
    let env = TestEnv::new().await.unwrap();
    let webhook = env.start_webhook_with(Some(STATUS_URL)).await.unwrap();
    let payload = callback_payload(ACCOUNT, issued_at());
    let with = |key: &str, value: Value| {
        let mut p = payload.clone();
        p[key] = value;
        p
    };
    let good = signed_request(&env.app_secret, &payload);
    let (_, good_part) = good.split_once('.').unwrap();
    let forged = signed_request(
        &SecretString::from("not-the-app-secret".to_owned()),
        &payload,
    );
    let mut no_user = payload.clone();
    no_user.as_object_mut().unwrap().remove("user_id");
    let signed = |p: &Value| callback_form(&signed_request(&env.app_secret, p));
    let over = |part: &str| callback_form(&signed_request_over(&env.app_secret, part));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("forged", callback_form(&forged), 403, "does not match"),
        (
            "wrong algorithm",
            signed(&with("algorithm", json!("HMAC-SHA1"))),
            400,
            "algorithm must be HMAC-SHA256",
        ),
        (
            "signature not base64url",
            callback_form(&format!("sig*.{good_part}")),
            400,
            "signature is not base64url",
        ),
        (
            "payload not base64url",
            over("eyJ*"),
            400,
            "payload is not base64url",
        ),
        (
            "payload not JSON",
            over(&URL_SAFE_NO_PAD.encode("{\"user_id\":")),
            400,
            "payload is not a JSON object",
        ),
        ("missing user_id", signed(&no_user), 400, "has no user_id"),
        (
            "user_id not an id",
            signed(&with("user_id", json!("me"))),
            400,
            "user_id must be a numeric id",
        ),
        ("no dot", callback_form("abc"), 400, "joined by a dot"),
        (
            "issued two days ago",
            signed(&with("issued_at", json!(issued_at() - 2 * 86_400))),
            400,
            "cannot be replayed",
        ),
        (
            "no signed_request",
            "signed=1".to_owned(),
            400,
            "no signed_request field",
        ),
    ];
    let routes = [
        "/meta/deauthorize",
        "/meta/data-deletion",
        "/prod/meta/deauthorize",
    ];
    for route in routes {
        let url = format!("{}{route}", webhook.base);
        for (name, form, want, message) in &cases {
            let (status, body) = env.post_form(&url, form).await.unwrap();
            assert_eq!(status.as_u16(), *want, "{route} {name}: {body}");
            let error = body["error"].as_str().unwrap_or_default();
            assert!(error.contains(message), "{route} {name}: {body}");
        }
    }
    // Not a form at all.
    let response = reqwest::Client::new()
        .post(format!("{}/meta/deauthorize", webhook.base))
        .header("content-type", "application/json")
        .body(json!({ "signed_request": good }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");

    // Without IGFLOW_DELETION_STATUS_URL, even a genuine deletion request cannot be answered.
    let unconfigured = env.start_webhook().await.unwrap();
    let (status, body) = env
        .post_form(
            &format!("{}/meta/data-deletion", unconfigured.base),
            &callback_form(&good),
        )
        .await
        .unwrap();
    assert_eq!(status, 503);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("IGFLOW_DELETION_STATUS_URL"),
        "{body}"
    );

    assert_eq!(
        env.queue_depth().await.unwrap(),
        (0, 0),
        "nothing was enqueued"
    );
    let m = webhook.metrics.peek();
    assert_eq!(
        (
            m.callbacks,
            m.callback_signature_failures,
            m.malformed_callbacks
        ),
        (0, 3, 3 * 9 + 1)
    );

    // The genuine request, under API Gateway's stage prefix, goes through.
    let (status, body) = env
        .post_form(
            &format!("{}/prod/meta/data-deletion", webhook.base),
            &callback_form(&good),
        )
        .await
        .unwrap();
    assert_eq!(
        (status.as_u16(), body["confirmation_code"].as_str()),
        (200, Some(code_of(&env, &good).as_str()))
    );
    assert_eq!(env.queue_depth().await.unwrap(), (1, 0));
    let m = webhook.metrics.peek();
    assert_eq!(
        (m.callbacks, m.items_by_kind.get("data_deletion")),
        (1, Some(&1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_the_queue_refuses_is_answered_503_so_meta_retries() {
    let env = TestEnv::new().await.unwrap();
    let webhook = env.start_webhook_with(Some(STATUS_URL)).await.unwrap();
    env.sqs
        .delete_queue()
        .queue_url(&env.queue_url)
        .send()
        .await
        .unwrap();
    let form = callback_form(&signed_request(
        &env.app_secret,
        &callback_payload(ACCOUNT, issued_at()),
    ));
    for route in ["/meta/deauthorize", "/meta/data-deletion"] {
        let (status, body) = env
            .post_form(&format!("{}{route}", webhook.base), &form)
            .await
            .unwrap();
        assert_eq!(status, 503, "{route}: {body}");
        assert_eq!(body["error"], "queue unavailable, retry later", "{route}");
    }
    assert_eq!(webhook.metrics.peek().enqueue_failures, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_entry_point_takes_the_callbacks_form_posts() {
    use tower::ServiceExt;
    let env = TestEnv::new().await.unwrap();
    let (app, _) = env.webhook_app_with(Some(STATUS_URL)).await.unwrap();
    let form = callback_form(&signed_request(
        &env.app_secret,
        &callback_payload(ACCOUNT, issued_at()),
    ));
    for (i, route) in ["/meta/deauthorize", "/meta/data-deletion"]
        .into_iter()
        .enumerate()
    {
        let request = lambda_http::request::from_str(&rest_api_event(
            route,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &form,
            false,
        ))
        .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200, "{route}");
        assert_eq!(env.queue_depth().await.unwrap(), (i as u64 + 1, 0));
    }
}

/// What a request's `data_deletion_requests` row says: outcome and detail.
async fn deletion_outcome(env: &TestEnv, code: &str) -> Option<(Option<String>, Option<String>)> {
    sqlx::query_as(
        "select outcome, detail from data_deletion_requests where confirmation_code = $1",
    )
    .bind(code)
    .fetch_optional(env.store.pool())
    .await
    .expect("deletion request query")
}

/// Meta's signed request does not say which callback it is for: a deauthorize request
/// replayed at the data deletion URL deletes nothing, a deletion request replayed at the
/// deauthorize URL disables nothing, and a deletion for an id igflow never held is recorded
/// as "nothing to delete", not as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_to_the_other_callback_is_refused_and_nothing_is_deleted() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let webhook = env.start_webhook_with(Some(STATUS_URL)).await.unwrap();
    let worker = env.start_worker().await.unwrap();
    assert_eq!(
        env.post_signed(&webhook.url, &comment(ACCOUNT, "17900000000003001"))
            .await
            .unwrap(),
        200
    );
    worker.wait_finished(1, WAIT).await.unwrap();
    let mine = account_uuid(&env, ACCOUNT).await;
    let before = held(&env, ACCOUNT, mine).await;

    let deauthorize = format!("{}/meta/deauthorize", webhook.base);
    let deletion = format!("{}/meta/data-deletion", webhook.base);
    let captured = signed_request(&env.app_secret, &callback_payload(ACCOUNT, issued_at()));
    let (status, _) = env
        .post_form(&deauthorize, &callback_form(&captured))
        .await
        .unwrap();
    assert_eq!(status, 200);
    worker.wait_finished(2, WAIT).await.unwrap();
    // The webhook cannot tell (it holds no state); the worker refuses it.
    let (status, _) = env
        .post_form(&deletion, &callback_form(&captured))
        .await
        .unwrap();
    assert_eq!(status, 200);
    worker.wait_finished(3, WAIT).await.unwrap();
    let (outcome, detail) = deletion_outcome(&env, &code_of(&env, &captured))
        .await
        .expect("the refusal is recorded for the status page");
    assert_eq!(outcome.as_deref(), Some("refused"));
    let detail = detail.unwrap_or_default();
    assert!(
        detail.contains("first sent to the app_deauthorized callback"),
        "{detail}"
    );
    assert_eq!(
        held(&env, ACCOUNT, mine).await[..4],
        before[..4],
        "nothing deleted"
    );
    let status: String = sqlx::query_scalar("select status from ig_accounts where id = $1")
        .bind(mine)
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    assert_eq!(status, "disabled", "the deauthorization itself stands");

    // An id igflow never held: nothing to delete, said so.
    let stranger = "17841400000000099";
    let request = signed_request(&env.app_secret, &callback_payload(stranger, issued_at()));
    let (status, _) = env
        .post_form(&deletion, &callback_form(&request))
        .await
        .unwrap();
    assert_eq!(status, 200);
    worker.wait_finished(4, WAIT).await.unwrap();
    let (outcome, detail) = deletion_outcome(&env, &code_of(&env, &request))
        .await
        .expect("the request is recorded");
    assert_eq!(outcome.as_deref(), Some("nothing_to_delete"));
    assert!(detail.unwrap_or_default().contains("nothing to delete"));

    // The same deletion request at the deauthorize URL: recorded as a refused replay.
    let (status, _) = env
        .post_form(&deauthorize, &callback_form(&request))
        .await
        .unwrap();
    assert_eq!(status, 200);
    worker.wait_finished(5, WAIT).await.unwrap();
    let decision: (String, String) = sqlx::query_as(
        "select outcome, detail from activity where event_id = $1 and step = 'decision'",
    )
    .bind(
        envelope_of(&env, &request, Callback::Deauthorize)
            .event_id
            .as_str(),
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(decision.0, "refused_replay");
    assert!(
        decision
            .1
            .contains("first sent to the data_deletion callback"),
        "{}",
        decision.1
    );
    worker.stop().await.unwrap();
}
