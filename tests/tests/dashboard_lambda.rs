//! The dashboard API as it runs in AWS: the `igflow-dashboard` binary under the Lambda Runtime
//! API (the test server of `igflow_tests::lambda_runtime`), invoked with API Gateway REST
//! proxy events as the `/api/{proxy+}` resource sends them with response streaming on, its
//! database URL read from Secrets Manager. The live feed reaches the client while the
//! invocation is still running, ends after its lifetime, and resumes from where it stopped.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use igflow_tests::dashboard::{ISSUER, JWT_SECRET, add_member};
use igflow_tests::faults::{Proc, workspace_bin};
use igflow_tests::fixtures::campaigns_yaml;
use igflow_tests::harness::TestEnv;
use igflow_tests::lambda_runtime::{LambdaRuntime, StreamedHttp, rest_api_event};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

struct Function {
    runtime: LambdaRuntime,
    _process: Proc,
}

impl Function {
    /// The dashboard binary as the stack deploys it (template.yaml's DashboardFunction).
    async fn start(env: &TestEnv) -> Function {
        let secret = format!("{}dashboard-database-url", env.secrets_prefix);
        aws_sdk_secretsmanager::Client::new(&env.aws)
            .create_secret()
            .name(&secret)
            .secret_string(&env.admin_database_url)
            .send()
            .await
            .unwrap();
        let runtime = LambdaRuntime::start().await.unwrap();
        let mut vars: std::collections::HashMap<String, String> = runtime
            .function_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        for (k, v) in [
            ("IGFLOW_DATABASE_URL_SECRET_ID", secret.as_str()),
            ("IGFLOW_JWT_ISSUER", ISSUER),
            ("IGFLOW_JWT_SECRET", JWT_SECRET),
            ("IGFLOW_DEV_SIGN_IN", "true"),
            ("IGFLOW_SECRETS_PREFIX", env.secrets_prefix.as_str()),
            // As template.yaml sets it: the stage is not part of the app's routes.
            ("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true"),
            ("IGFLOW_FEED_SECONDS", "3"),
            ("AWS_ENDPOINT_URL", env.services.aws_endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("RUST_LOG", "info"),
        ] {
            vars.insert(k.to_owned(), v.to_owned());
        }
        let log = std::env::temp_dir().join("igflow-tests").join(format!(
            "{}dashboard-lambda.log",
            env.secrets_prefix.replace('/', "-")
        ));
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        let process = Proc::spawn(
            &workspace_bin("igflow-dashboard").unwrap(),
            &[],
            &vars,
            &log,
        )
        .unwrap();
        Function {
            runtime,
            _process: process,
        }
    }

    /// One whole invocation: its prelude and body.
    async fn call(&self, event: Value) -> (Value, String) {
        let mut answers = self.runtime.invoke(event);
        let mut http = StreamedHttp::default();
        while !http.done {
            http.read(&mut answers, WAIT).await;
            assert!(http.done, "no complete answer within {WAIT:?}: {http:?}");
        }
        (http.prelude().expect("a metadata prelude"), http.body())
    }
}

async fn sign_in(function: &Function, env: &TestEnv) -> String {
    let mut event = rest_api_event(
        "POST",
        "/api/dev/sign-in",
        &[],
        &[("content-type", "application/json")],
    );
    event["body"] = json!(json!({ "email": "owner@acme.test" }).to_string());
    let (prelude, body) = function.call(event).await;
    assert_eq!(prelude["statusCode"], 200, "{prelude} {body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let user = answer["user_id"].as_str().unwrap().parse().unwrap();
    add_member(env, "acme", user, "owner").await.unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn record(env: &TestEnv, event: &str, detail: &str) {
    sqlx::query(
        "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, outcome, detail)
         select tenant_id, ig_user_id, $1, 'comment', 'decision', 'matched', $2 from ig_accounts",
    )
    .bind(event)
    .bind(detail)
    .execute(env.store.pool())
    .await
    .unwrap();
}

/// Reads the open stream until `text` shows in its body (or the wait ends).
async fn until(
    http: &mut StreamedHttp,
    answers: &mut mpsc::UnboundedReceiver<igflow_tests::lambda_runtime::Answer>,
    text: &str,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !http.body().contains(text) && !http.done && tokio::time::Instant::now() < deadline {
        http.read(answers, Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_streams_from_lambda_and_resumes_where_it_ended() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let function = Function::start(&env).await;
    let token = sign_in(&function, &env).await;
    let bearer = format!("Bearer {token}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("accept", "text/event-stream"),
    ];

    // An ordinary JSON answer travels as a short stream.
    let (prelude, body) = function
        .call(rest_api_event("GET", "/api/me", &[], &headers))
        .await;
    assert_eq!(prelude["statusCode"], 200, "{prelude} {body}");
    assert!(body.contains("owner@acme.test"), "{body}");

    // The feed: the prelude and backlog go out at once, a new entry while the invocation
    // still runs, and the stream ends by itself after its lifetime.
    record(&env, "comment:before", "rule 0 matched keyword \"before\"").await;
    let mut answers = function
        .runtime
        .invoke(rest_api_event("GET", "/api/feed", &[], &headers));
    let mut http = StreamedHttp::default();
    until(&mut http, &mut answers, "keyword \\\"before\\\"").await;
    assert!(http.streaming, "the response was not streamed: {http:?}");
    assert_eq!(
        http.content_type.as_deref(),
        Some("application/vnd.awslambda.http-integration-response")
    );
    let prelude = http.prelude().expect("the prelude went out first");
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    assert_eq!(prelude["headers"]["content-type"], "text/event-stream");
    record(&env, "comment:live", "rule 0 matched keyword \"live\"").await;
    until(&mut http, &mut answers, "keyword \\\"live\\\"").await;
    assert!(
        http.body().contains("keyword \\\"live\\\"") && !http.done,
        "the new entry arrived while the stream was open: {http:?}"
    );
    while !http.done {
        http.read(&mut answers, WAIT).await;
    }

    // The app resumes with the newest change it saw: only what changed since then comes.
    let last_at = http
        .body()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| e["at"].as_str().map(str::to_owned))
        .max()
        .unwrap();
    record(&env, "comment:missed", "rule 0 matched keyword \"missed\"").await;
    let mut answers = function.runtime.invoke(rest_api_event(
        "GET",
        "/api/feed",
        &[("since", &last_at)],
        &headers,
    ));
    let mut resumed = StreamedHttp::default();
    until(&mut resumed, &mut answers, "keyword \\\"missed\\\"").await;
    let body = resumed.body();
    assert!(body.contains("keyword \\\"missed\\\""), "{body}");
    assert!(!body.contains("keyword \\\"before\\\""), "{body}");

    // A resume point that is not a timestamp: 400 saying what it must be.
    let (prelude, body) = function
        .call(rest_api_event(
            "GET",
            "/api/feed",
            &[("since", "yesterday")],
            &headers,
        ))
        .await;
    assert_eq!(prelude["statusCode"], 400, "{prelude} {body}");
    assert!(body.contains("since must be a timestamp"), "{body}");
}
