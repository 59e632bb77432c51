//! The marketer's journey in a real browser (Debian's Chromium driven by Playwright): sign
//! in, connect an account through the OAuth test server, create a campaign, test a keyword,
//! a signed comment reaches the local webhook, the private reply shows in the live feed and
//! the results count it. Screenshots of each page go to a scratch directory under the target
//! dir; `IGFLOW_UPDATE_SCREENSHOTS=1` also copies them into docs/screenshots/ (tracked), so an
//! ordinary run leaves the tree clean.
//! Needs the built app and Chromium: `scripts/test-dashboard.sh` runs it.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::path::PathBuf;
use std::time::Duration;

use igflow_core::signature::sign;
use igflow_tests::dashboard::{Dashboard, add_member};
use igflow_tests::fixtures::campaigns_yaml;
use igflow_tests::graph_server::CallKind;
use igflow_tests::harness::TestEnv;
use igflow_tests::meta::{CommentSpec, comment_delivery};

const NEW_ACCOUNT: &str = "17841400000000555";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs dashboard/web built and Chromium: scripts/test-dashboard.sh"]
async fn a_marketer_connects_builds_tests_and_watches_a_campaign_work() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    // A failure screenshot of an earlier run must not be mistaken for this one's.
    let _ = std::fs::remove_dir_all(&shots);
    let web = root.join("dashboard/web");
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    let webhook = env.start_webhook().await.unwrap();
    let worker = env.start_worker().await.unwrap();
    let api = Dashboard::start(
        &env,
        &[(
            "IGFLOW_DASHBOARD_STATIC_DIR",
            web.join("dist").to_str().unwrap(),
        )],
    )
    .await
    .unwrap();
    let email = "maria@acme.test";
    let user = igflow_dashboard::auth::dev_user_id(email);
    add_member(&env, "acme", user, "owner").await.unwrap();
    env.graph.oauth_user(NEW_ACCOUNT, "acme.outlet");

    let body = comment_delivery(
        NEW_ACCOUNT,
        &[CommentSpec::new(
            "17900000000000777",
            "5550001",
            "Any DEAL on these? 😍",
        )],
    );
    let signature = sign(&env.app_secret, body.as_bytes());
    let journey = tokio::process::Command::new("node")
        .arg(web.join("e2e/journey.mjs"))
        .env("DASHBOARD_URL", &api.url)
        .env("WEBHOOK_URL", &webhook.url)
        .env("COMMENT_BODY", &body)
        .env("COMMENT_SIGNATURE", &signature)
        .env("SIGN_IN_EMAIL", email)
        .env("SCREENSHOTS", &shots)
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(180), journey)
        .await
        .expect("the journey finishes within 3 minutes")
        .unwrap();
    eprintln!("screenshots: {}", shots.display());
    assert!(status.success(), "the browser journey failed: {status}");
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
    worker.stop().await.unwrap();
    if std::env::var("IGFLOW_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        for shot in std::fs::read_dir(&shots).unwrap() {
            let shot = shot.unwrap().path();
            std::fs::copy(
                &shot,
                root.join("docs/screenshots")
                    .join(shot.file_name().unwrap()),
            )
            .unwrap();
        }
    }
}
