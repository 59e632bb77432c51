//! The dashboard in a real browser (Debian's Chromium driven by Playwright). The marketer's
//! journey: sign in, connect an account through the OAuth test server, create a campaign, test
//! a keyword, a signed comment reaches the local webhook, the private reply shows in the live
//! feed and the results count it. And signing in through Supabase Auth with supabase-js,
//! against the Supabase Auth test server. Screenshots of each page go to a scratch directory
//! under the target dir; `IGFLOW_UPDATE_SCREENSHOTS=1` also copies them into docs/screenshots/
//! (tracked), so an ordinary run leaves the tree clean.
//! Needs the built app and Chromium: `scripts/test-dashboard.sh` runs it.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::path::PathBuf;
use std::time::Duration;

use igflow_core::signature::sign;
use igflow_tests::dashboard::{Dashboard, add_member};
use igflow_tests::fixtures::{ACCOUNT, campaigns_yaml};
use igflow_tests::graph_server::CallKind;
use igflow_tests::harness::TestEnv;
use igflow_tests::meta::{CommentSpec, comment_delivery};

const NEW_ACCOUNT: &str = "17841400000000555";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn static_dir() -> String {
    root()
        .join("dashboard/web/dist")
        .to_string_lossy()
        .into_owned()
}

/// Runs `e2e/<script>.mjs` in node with `vars`, its screenshots in a scratch directory of its
/// own; with `IGFLOW_UPDATE_SCREENSHOTS=1`, a passing run's screenshots replace the tracked ones.
async fn journey(script: &str, vars: &[(&str, &str)]) {
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dashboard-screenshots")
        .join(script);
    // A failure screenshot of an earlier run must not be mistaken for this one's.
    let _ = std::fs::remove_dir_all(&shots);
    let run = tokio::process::Command::new("node")
        .arg(root().join(format!("dashboard/web/e2e/{script}.mjs")))
        .envs(vars.iter().copied())
        .env("SCREENSHOTS", &shots)
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the journey finishes within 3 minutes")
        .unwrap();
    eprintln!("screenshots: {}", shots.display());
    assert!(
        status.success(),
        "the browser journey {script} failed: {status}"
    );
    if std::env::var("IGFLOW_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        for shot in std::fs::read_dir(&shots).unwrap() {
            let shot = shot.unwrap().path();
            let tracked = root()
                .join("docs/screenshots")
                .join(shot.file_name().unwrap());
            std::fs::copy(&shot, tracked).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs dashboard/web built and Chromium: scripts/test-dashboard.sh"]
async fn a_marketer_connects_builds_tests_and_watches_a_campaign_work() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let webhook = env.start_webhook().await.unwrap();
    let worker = env.start_worker().await.unwrap();
    let api = Dashboard::start(&env, &[("IGFLOW_DASHBOARD_STATIC_DIR", &static_dir())])
        .await
        .unwrap();
    let email = "maria@acme.test";
    let user = igflow_dashboard::auth::dev_user_id(email);
    add_member(&env, "acme", user, "owner").await.unwrap();
    env.graph.oauth_user(NEW_ACCOUNT, "acme.outlet");
    // A token refresh Meta refused, as the worker's job records it: the accounts page says so.
    let shoes: uuid::Uuid = sqlx::query_scalar("select id from ig_accounts where ig_user_id = $1")
        .bind(ACCOUNT)
        .fetch_one(env.store.pool())
        .await
        .unwrap();
    env.worker_store
        .token_refresh_failed(shoes, "(#190) the session has been invalidated")
        .await
        .unwrap();

    let body = comment_delivery(
        NEW_ACCOUNT,
        &[CommentSpec::new(
            "17900000000000777",
            "5550001",
            "Any DEAL on these? 😍",
        )],
    );
    let signature = sign(&env.app_secret, body.as_bytes());
    journey(
        "journey",
        &[
            ("DASHBOARD_URL", &api.url),
            ("WEBHOOK_URL", &webhook.url),
            ("COMMENT_BODY", &body),
            ("COMMENT_SIGNATURE", &signature),
            ("SIGN_IN_EMAIL", email),
        ],
    )
    .await;
    let replies = env.graph.accepted(|k| {
        matches!(k, CallKind::PrivateReply { sender, comment_id } if sender == NEW_ACCOUNT && comment_id == "17900000000000777")
    });
    assert_eq!(
        replies.len(),
        1,
        "one private reply, from the connected account"
    );
    assert!(replies[0].text.contains("30% off"), "{}", replies[0].text);
    let variant: Option<i16> = sqlx::query_scalar(
        "select variant from activity where step = 'public_reply' and outcome = 'sent'",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert!(
        variant.is_some(),
        "the public-reply variant chosen is recorded"
    );
    assert_eq!(
        api.auth.invited(),
        ["sam@acme.test"],
        "the invitation went through Supabase Auth's admin API"
    );
    let (buttons, steps): (serde_json::Value, serde_json::Value) =
        sqlx::query_as("select buttons, steps from campaigns where slug = 'link-in-bio'")
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    assert_eq!(
        (buttons, steps),
        (
            serde_json::json!([{ "title": "See the deals", "step": "deals" }]),
            serde_json::json!([{ "name": "deals", "dm": "This week: 20% off with LAUNCH20",
                "buttons": [], "follow_gate": { "not_following": "Follow us first, then tap below",
                "retry_title": "I follow now", "max_retries": 3 },
                "only_if": { "known": "email" } }])
        ),
        "the flow made in the editor is the campaign's"
    );
    worker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs dashboard/web built and Chromium: scripts/test-dashboard.sh"]
async fn a_marketer_signs_in_and_out_through_supabase_auth() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let api = Dashboard::start(
        &env,
        &[
            ("IGFLOW_DASHBOARD_STATIC_DIR", &static_dir()),
            ("IGFLOW_DEV_SIGN_IN", ""),
        ],
    )
    .await
    .unwrap();
    let (email, password) = ("ana@acme.test", "correct horse battery staple");
    let user = api.auth.add_user(email, password);
    add_member(&env, "acme", user, "owner").await.unwrap();
    // Shorter than supabase-js's refresh margin (90 s): each read of the session refreshes it.
    api.auth.token_lifetime(60);
    // Mailed links land on the dashboard (the project's Site URL).
    api.auth.site_url(&api.url);
    let invitee = "lee@acme.test";
    journey(
        "supabase-sign-in",
        &[
            ("DASHBOARD_URL", &api.url),
            ("AUTH_URL", &api.auth.url),
            ("SIGN_IN_EMAIL", email),
            ("SIGN_IN_PASSWORD", password),
            ("INVITEE_EMAIL", invitee),
            ("INVITEE_PASSWORD", "a long new password"),
        ],
    )
    .await;
    let calls = api.auth.calls();
    for expected in [
        "token:refresh_token",
        "logout",
        "verify:invite",
        "verify:recovery",
        "update_user",
    ] {
        assert!(
            calls.iter().any(|c| c == expected),
            "supabase-js called {expected}: {calls:?}"
        );
    }
    assert_eq!(
        calls.iter().filter(|c| *c == "token:password").count(),
        3,
        "one refused and two accepted password sign-ins: {calls:?}"
    );
    assert_eq!(
        api.auth.mails(invitee).len(),
        2,
        "an invitation and a recovery"
    );
}
