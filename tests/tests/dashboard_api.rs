//! The dashboard API over HTTP: isolation between tenants decided by Row Level Security,
//! roles, every kind of bad token refused, campaigns checked by the files' validator, the
//! keyword tester, connecting an account through OAuth, and the live feed.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::time::Duration;

use igflow_tests::dashboard::{
    Dashboard, EC_KID, ISSUER, JWT_SECRET, add_member, claims, es256, hs256,
};
use igflow_tests::fixtures::{ACCOUNT, TOKEN, campaigns_yaml};
use igflow_tests::harness::TestEnv;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

const OTHER_ACCOUNT: &str = "17841400000000777";

/// Two tenants, acme (with an owner, an editor and a viewer) and rival (with an owner), each
/// with one account and two file campaigns.
struct World {
    env: TestEnv,
    api: Dashboard,
    acme: Uuid,
    rival: Uuid,
    owner: String,
    editor: String,
    viewer: String,
    rival_owner: String,
}

async fn world() -> World {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();
    env.apply(
        &campaigns_yaml()
            .replace("slug: acme", "slug: rival")
            .replace(ACCOUNT, OTHER_ACCOUNT)
            .replace(TOKEN, "IGAA-rival-token"),
    )
    .await
    .unwrap();
    let api = Dashboard::start(&env, &[]).await.unwrap();
    let mut tokens = Vec::new();
    let mut tenants = Vec::new();
    for (email, slug, role) in [
        ("owner@acme.test", "acme", "owner"),
        ("editor@acme.test", "acme", "editor"),
        ("viewer@acme.test", "acme", "viewer"),
        ("owner@rival.test", "rival", "owner"),
    ] {
        let (user, token) = api.sign_in(email).await.unwrap();
        tenants.push(add_member(&env, slug, user, role).await.unwrap());
        tokens.push(token);
    }
    let mut tokens = tokens.into_iter();
    let mut next = || tokens.next().unwrap();
    World {
        acme: tenants[0],
        rival: tenants[3],
        owner: next(),
        editor: next(),
        viewer: next(),
        rival_owner: next(),
        env,
        api,
    }
}

fn a_campaign(slug: &str, keyword: &str) -> Value {
    json!({
        "slug": slug, "name": "Black Friday", "trigger": "comment", "status": "active",
        "priority": 50, "cooldown_seconds": 0, "shadow": false, "media_ids": [], "next_post": false,
        "payloads": [], "refs": [],
        "ad_ids": [], "starts_at": null, "ends_at": null,
        "rules": [{ "keywords": [keyword], "match": "whole_word", "require": "any", "exclude": [],
                    "fold_accents": true, "stretch": false }],
        "intents": [],
        "actions": { "private_reply": "Hi {username}! 30% off: https://shop.example/bf",
                     "public_replies": ["Check your DMs"], "dm": null, "quick_replies": [],
                     "buttons": [], "public_reply_when": "private_reply_sent" },
        "steps": [],
    })
}

impl World {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.api
            .call(method, path, Some(token), body)
            .await
            .unwrap()
    }

    /// An editor creates `campaign` on the account.
    async fn create_campaign(&self, account_id: &str, campaign: &Value) -> (u16, Value) {
        let body = json!({ "account_id": account_id, "campaign": campaign });
        self.call(Method::POST, "/api/campaigns", &self.editor, Some(body))
            .await
    }

    async fn invite(&self, members: &str, email: &str, token: &str) -> (u16, Value) {
        let body = json!({ "email": email, "role": "editor" });
        self.call(Method::POST, members, token, Some(body)).await
    }

    async fn first_account(&self, token: &str) -> Value {
        let (status, accounts) = self.call(Method::GET, "/api/accounts", token, None).await;
        assert_eq!(status, 200, "{accounts}");
        assert_eq!(accounts.as_array().unwrap().len(), 1, "{accounts}");
        accounts[0].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_one_tenant_gets_404_for_everything_of_another() {
    let w = world().await;
    let rival_account = w.first_account(&w.rival_owner).await;
    let (_, rival_campaigns) = w
        .call(Method::GET, "/api/campaigns", &w.rival_owner, None)
        .await;
    let rival_campaign = rival_campaigns[0]["id"].as_str().unwrap().to_owned();
    let rival_account_id = rival_account["id"].as_str().unwrap().to_owned();
    let account = w.first_account(&w.owner).await;
    assert_eq!(account["ig_user_id"], ACCOUNT);
    let (_, mine) = w.call(Method::GET, "/api/campaigns", &w.owner, None).await;
    assert_eq!(mine.as_array().unwrap().len(), 2);
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|c| c["managed_by"] == "file")
    );

    let rival = w.rival;
    let rival_member = Uuid::new_v4();
    let c = &rival_campaign;
    let a = &rival_account_id;
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/campaigns/{c}"), None),
        (
            Method::PUT,
            format!("/api/campaigns/{c}"),
            Some(json!({ "campaign": a_campaign("x", "x") })),
        ),
        (
            Method::POST,
            format!("/api/campaigns/{c}/status"),
            Some(json!({ "status": "paused" })),
        ),
        (Method::GET, format!("/api/campaigns/{c}/results"), None),
        (
            Method::POST,
            "/api/campaigns".into(),
            Some(json!({ "account_id": a, "campaign": a_campaign("x", "x") })),
        ),
        (
            Method::POST,
            "/api/tester".into(),
            Some(json!({ "account_id": a, "text": "price?" })),
        ),
        (
            Method::POST,
            format!("/api/accounts/{a}/status"),
            Some(json!({ "status": "paused" })),
        ),
        (
            Method::POST,
            "/api/accounts/connect".into(),
            Some(json!({ "tenant_id": rival })),
        ),
        (Method::GET, format!("/api/tenants/{rival}/members"), None),
        (
            Method::POST,
            format!("/api/tenants/{rival}/members"),
            Some(json!({ "email": "x@y.z", "role": "owner" })),
        ),
        (
            Method::PUT,
            format!("/api/tenants/{rival}/members/{rival_member}"),
            Some(json!({ "role": "owner" })),
        ),
        (
            Method::DELETE,
            format!("/api/tenants/{rival}/members/{rival_member}"),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let (status, answer) = w.call(method.clone(), &path, &w.owner, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    // The rival's contact: invisible, so unchangeable.
    let contact: Uuid = sqlx::query_scalar(
        "insert into contacts (account_id, igsid, username) select id, '999', 'fan' from ig_accounts
         where ig_user_id = $1 returning id",
    )
    .bind(OTHER_ACCOUNT)
    .fetch_one(w.env.store.pool())
    .await
    .unwrap();
    let (status, _) = w
        .call(
            Method::POST,
            &format!("/api/contacts/{contact}"),
            &w.owner,
            Some(json!({ "opted_out": true })),
        )
        .await;
    assert_eq!(status, 404);
    let (_, listed) = w
        .call(Method::GET, "/api/contacts?all=true", &w.owner, None)
        .await;
    assert_eq!(listed, json!([]));
    let opted_out: bool = sqlx::query_scalar("select opted_out from contacts where id = $1")
        .bind(contact)
        .fetch_one(w.env.store.pool())
        .await
        .unwrap();
    assert!(!opted_out, "nothing of the rival changed");
    let (_, me) = w.call(Method::GET, "/api/me", &w.owner, None).await;
    assert_eq!(me["workspaces"].as_array().unwrap().len(), 1);
    assert_eq!(me["workspaces"][0]["id"], json!(w.acme));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaigns_are_checked_by_field_file_ones_are_read_only_and_viewers_only_read() {
    let w = world().await;
    let account = w.first_account(&w.editor).await;
    let account_id = account["id"].as_str().unwrap();

    let mut bad = a_campaign("Black Friday", "deal");
    bad["rules"][0]["keywords"] = json!([]);
    bad["actions"]["private_reply"] = json!("x".repeat(1001));
    let (status, answer) = w.create_campaign(account_id, &bad).await;
    assert_eq!(status, 422, "{answer}");
    let fields: Vec<&str> = answer["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["slug", "rules[0].keywords", "actions.private_reply"],
        "{answer}"
    );
    let (status, answer) = w
        .create_campaign(account_id, &a_campaign("price-list", "deal"))
        .await;
    assert_eq!(
        (status, answer["fields"][0]["field"].as_str()),
        (422, Some("slug")),
        "{answer}"
    );

    let (status, created) = w
        .create_campaign(account_id, &a_campaign("black-friday", "deal"))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["managed_by"], "dashboard");
    assert_eq!(
        created["campaign"],
        a_campaign("black-friday", "deal"),
        "read back as written"
    );
    let id = created["id"].as_str().unwrap();

    // An edit changes every column it names and reads back as written.
    let mut edited = a_campaign("black-friday", "deal");
    edited["name"] = json!("Black Friday weekend");
    edited["priority"] = json!(70);
    edited["cooldown_seconds"] = json!(3600);
    edited["media_ids"] = json!(["18000000000000001"]);
    edited["ends_at"] = json!("2026-12-01T00:00:00Z");
    edited["actions"]["public_reply_when"] = json!("always");
    edited["shadow"] = json!(true);
    let (status, updated) = w
        .call(
            Method::PUT,
            &format!("/api/campaigns/{id}"),
            &w.editor,
            Some(json!({ "campaign": edited })),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["campaign"], edited, "read back as edited");
    // Another trigger, with what only it uses.
    let mut referral = a_campaign("black-friday", "deal");
    referral["trigger"] = json!("referral");
    referral["rules"] = json!([]);
    referral["refs"] = json!(["bio", "story-link"]);
    referral["ad_ids"] = json!(["120210000000000001"]);
    referral["actions"] = json!({ "private_reply": null, "public_replies": [],
                                  "dm": "Welcome!", "quick_replies": [],
                                  "buttons": [{ "title": "Show me", "step": "more" }],
                                  "public_reply_when": "private_reply_sent" });
    referral["steps"] = json!([
        { "name": "more", "dm": ["More A", "More B"], "buttons": [],
          "only_if": { "known": "email" }, "otherwise": "ask" },
        { "name": "ask", "dm": "Your email first?", "buttons": [] },
    ]);
    let (status, updated) = w
        .call(
            Method::PUT,
            &format!("/api/campaigns/{id}"),
            &w.editor,
            Some(json!({ "campaign": referral })),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["campaign"], referral,
        "a referral campaign reads back as edited"
    );
    let (status, _) = w
        .call(
            Method::PUT,
            &format!("/api/campaigns/{id}"),
            &w.editor,
            Some(json!({ "campaign": a_campaign("black-friday", "deal") })),
        )
        .await;
    assert_eq!(status, 200);

    // The tester decides as the worker does: the new campaign's keyword, texts written out.
    let (status, tested) = w
        .call(
            Method::POST,
            "/api/tester",
            &w.viewer,
            Some(json!({ "account_id": account_id, "text": "Any DEAL today?" })),
        )
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["fired"]["campaign_slug"], "black-friday");
    assert_eq!(tested["fired"]["keyword"], "deal");
    let (status, refused) = w
        .call(
            Method::POST,
            "/api/tester",
            &w.viewer,
            Some(json!({ "account_id": account_id, "trigger": "postback" })),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("a postback to test needs a payload"),
        "{refused}"
    );
    assert_eq!(
        tested["fired"]["actions"][0]["text"],
        "Hi a.follower! 30% off: https://shop.example/bf"
    );

    let (status, paused) = w
        .call(
            Method::POST,
            &format!("/api/campaigns/{id}/status"),
            &w.editor,
            Some(json!({ "status": "paused" })),
        )
        .await;
    assert_eq!(
        (status, paused["campaign"]["status"].as_str()),
        (200, Some("paused"))
    );
    let (_, tested) = w
        .call(
            Method::POST,
            "/api/tester",
            &w.editor,
            Some(json!({ "account_id": account_id, "text": "deal" })),
        )
        .await;
    assert_eq!(
        tested["fired"],
        Value::Null,
        "a paused campaign does not fire"
    );

    // Viewers read, never write.
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/api/campaigns/{id}"),
            json!({ "campaign": a_campaign("black-friday", "sale") }),
        ),
        (
            Method::POST,
            format!("/api/campaigns/{id}/status"),
            json!({ "status": "active" }),
        ),
        (
            Method::POST,
            "/api/campaigns".into(),
            json!({ "account_id": account_id, "campaign": a_campaign("viewer-made", "x") }),
        ),
        (
            Method::POST,
            format!("/api/accounts/{account_id}/status"),
            json!({ "status": "paused" }),
        ),
        (
            Method::POST,
            format!("/api/tenants/{}/members", w.acme),
            json!({ "email": "new@acme.test", "role": "owner" }),
        ),
    ] {
        let (status, answer) = w.call(method.clone(), &path, &w.viewer, Some(body)).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
    // A file campaign is read-only for everyone in the dashboard, and says where it is from.
    let (_, all) = w.call(Method::GET, "/api/campaigns", &w.owner, None).await;
    let file = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["campaign"]["slug"] == "price-list")
        .unwrap();
    assert_eq!(file["source"], "test.yaml");
    let (status, answer) = w
        .call(
            Method::POST,
            &format!("/api/campaigns/{}/status", file["id"].as_str().unwrap()),
            &w.owner,
            Some(json!({ "status": "paused" })),
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("campaign file test.yaml"),
        "{answer}"
    );
    // And the next apply leaves the dashboard's campaign alone.
    w.env.apply(&campaigns_yaml()).await.unwrap();
    let (status, still) = w
        .call(
            Method::GET,
            &format!("/api/campaigns/{id}"),
            &w.viewer,
            None,
        )
        .await;
    assert_eq!(
        (status, still["campaign"]["status"].as_str()),
        (200, Some("paused"))
    );

    // Members: owners invite, change roles, remove; the last owner stays.
    let acme = w.acme;
    let (status, invited) = w
        .call(
            Method::POST,
            &format!("/api/tenants/{acme}/members"),
            &w.owner,
            Some(json!({ "email": "New@Acme.test", "role": "viewer" })),
        )
        .await;
    assert_eq!(
        (status, invited["email"].as_str()),
        (201, Some("new@acme.test")),
        "{invited}"
    );
    let new = invited["user_id"].as_str().unwrap();
    let (status, _) = w
        .call(
            Method::PUT,
            &format!("/api/tenants/{acme}/members/{new}"),
            &w.owner,
            Some(json!({ "role": "editor" })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = w
        .call(
            Method::DELETE,
            &format!("/api/tenants/{acme}/members/{new}"),
            &w.owner,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (me, _) = w.api.sign_in("owner@acme.test").await.unwrap();
    let (status, answer) = w
        .call(
            Method::PUT,
            &format!("/api/tenants/{acme}/members/{me}"),
            &w.owner,
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("without an owner"),
        "{answer}"
    );
}

/// What a tester asked about a comment on `media` fired, by slug.
async fn fired_on(w: &World, account_id: &str, media: &str) -> Value {
    let body = json!({ "account_id": account_id, "text": "drop?", "media_id": media });
    let (status, tested) = w
        .call(Method::POST, "/api/tester", &w.editor, Some(body))
        .await;
    assert_eq!(status, 200, "{tested}");
    tested["fired"]["campaign_slug"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_post_campaign_shows_the_post_it_found_and_keeps_it_through_edits() {
    let w = world().await;
    let account = w.first_account(&w.editor).await;
    let account_id = account["id"].as_str().unwrap();
    let mut drop = a_campaign("drop", "drop");
    drop["next_post"] = json!(true);
    drop["media_ids"] = json!(["18000000000000011"]);
    let (status, refused) = w.create_campaign(account_id, &drop).await;
    assert_eq!(
        (status, refused["fields"][0]["field"].as_str()),
        (422, Some("next_post")),
        "{refused}"
    );
    drop["media_ids"] = json!([]);
    let (status, created) = w.create_campaign(account_id, &drop).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["campaign"], drop, "read back as written");
    assert_eq!(created["next_post_media"], Value::Null, "waiting");
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        fired_on(&w, account_id, "18000000000000012").await,
        Value::Null
    );

    // A worker found the post (as `Store::bind_next_post` does).
    sqlx::query("update campaigns set next_post_media = '18000000000000012' where slug = 'drop'")
        .execute(w.env.store.pool())
        .await
        .unwrap();
    let (_, found) = w
        .call(
            Method::GET,
            &format!("/api/campaigns/{id}"),
            &w.viewer,
            None,
        )
        .await;
    assert_eq!(found["next_post_media"], "18000000000000012", "{found}");
    assert_eq!(fired_on(&w, account_id, "18000000000000012").await, "drop");
    assert_eq!(
        fired_on(&w, account_id, "18000000000000013").await,
        Value::Null
    );

    // An edit keeps the post found; turning next_post off forgets it.
    drop["name"] = json!("The drop");
    let path = format!("/api/campaigns/{id}");
    let put = |campaign: &Value| json!({ "campaign": campaign });
    let (status, kept) = w
        .call(Method::PUT, &path, &w.editor, Some(put(&drop)))
        .await;
    assert_eq!(
        (status, &kept["next_post_media"]),
        (200, &json!("18000000000000012"))
    );
    drop["next_post"] = json!(false);
    let (status, off) = w
        .call(Method::PUT, &path, &w.editor, Some(put(&drop)))
        .await;
    assert_eq!(
        (status, &off["next_post_media"]),
        (200, &Value::Null),
        "{off}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_wrongly_signed_and_other_project_tokens_are_refused() {
    let w = world().await;
    let (owner, _) = w.api.sign_in("owner@acme.test").await.unwrap();
    let good = claims(owner, ISSUER, 3600);
    // Both of the project's ways to sign are accepted.
    for token in [hs256(&good, JWT_SECRET), es256(&good, EC_KID)] {
        let (status, me) = w
            .api
            .call(Method::GET, "/api/me", Some(&token), None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["workspaces"][0]["role"], "owner");
    }
    let valid = hs256(&good, JWT_SECRET);
    let (head, rest) = valid.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let forged_payload = {
        use base64::Engine;
        let mut c = good.clone();
        c["sub"] = json!(Uuid::new_v4());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string())
    };
    let mut service = good.clone();
    service["role"] = json!("service_role");
    let cases = [
        ("no token", None),
        ("garbage", Some("not-a-jwt".to_owned())),
        (
            "forged payload",
            Some(format!("{head}.{forged_payload}.{signature}")),
        ),
        (
            "expired",
            Some(hs256(&claims(owner, ISSUER, -3600), JWT_SECRET)),
        ),
        (
            "wrong secret",
            Some(hs256(&good, "another-secret-of-32-bytes-or-more!!")),
        ),
        (
            "other project (issuer)",
            Some(hs256(
                &claims(owner, "https://other.supabase.co/auth/v1", 3600),
                JWT_SECRET,
            )),
        ),
        (
            "other project (key)",
            Some(es256(&good, "other-project-key")),
        ),
        (
            "other project (issuer, asymmetric)",
            Some(es256(
                &claims(owner, "https://other.supabase.co/auth/v1", 3600),
                EC_KID,
            )),
        ),
        ("not a user's token", Some(hs256(&service, JWT_SECRET))),
        (
            "unsigned",
            Some(format!(
                "eyJhbGciOiJub25lIn0.{}.",
                rest.split_once('.').unwrap().0
            )),
        ),
    ];
    for (what, token) in cases {
        let (status, answer) = w
            .api
            .call(Method::GET, "/api/campaigns", token.as_deref(), None)
            .await
            .unwrap();
        assert_eq!(status, 401, "{what}: {answer}");
        let text = answer.to_string();
        assert!(
            !text.contains(token.as_deref().unwrap_or("@@")),
            "{what}: the token is never echoed"
        );
    }
    // The development sign-in exists only when it is switched on.
    let off = Dashboard::start(&w.env, &[("IGFLOW_DEV_SIGN_IN", "")])
        .await
        .unwrap();
    assert!(off.sign_in("owner@acme.test").await.is_err());
    let (status, _) = off
        .call(Method::GET, "/api/me", Some(&valid), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "real tokens still work");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_connects_an_account_through_instagrams_oauth() {
    let w = world().await;
    w.env.graph.oauth_user("17841400000000555", "new.shop");
    let (status, answer) = w
        .call(
            Method::POST,
            "/api/accounts/connect",
            &w.editor,
            Some(json!({ "tenant_id": w.acme })),
        )
        .await;
    assert_eq!(status, 403, "editors do not connect accounts: {answer}");
    let (status, answer) = w
        .call(
            Method::POST,
            "/api/accounts/connect",
            &w.owner,
            Some(json!({ "tenant_id": w.acme })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let dialog = answer["url"].as_str().unwrap();
    assert!(
        dialog.contains("scope=instagram_business_basic"),
        "{dialog}"
    );
    // Meta's dialog: the user consents and is sent back with a code.
    let consent = w.api.http.get(dialog).send().await.unwrap();
    assert_eq!(consent.status(), 303);
    let back = consent.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.starts_with(&format!("{}/oauth/callback?code=", w.api.url)),
        "{back}"
    );
    let done = w.api.http.get(&back).send().await.unwrap();
    let page = done.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(page, "/#/accounts?connected=new.shop");

    let (_, accounts) = w.call(Method::GET, "/api/accounts", &w.viewer, None).await;
    let connected = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["username"] == "new.shop")
        .unwrap()
        .clone();
    assert_eq!(connected["ig_user_id"], "17841400000000555");
    assert_eq!(connected["status"], "active");
    assert!(
        connected["token_expires_at"]
            .as_str()
            .unwrap()
            .starts_with("20"),
        "{connected}"
    );
    assert_eq!(connected["webhook_fields"].as_array().unwrap().len(), 7);
    assert_eq!(
        w.env.graph.subscribed_fields("17841400000000555"),
        igflow_core::subscription::WEBHOOK_FIELDS
    );
    let secret: String = sqlx::query_scalar(
        "select token_secret_ref from ig_accounts where ig_user_id = '17841400000000555'",
    )
    .fetch_one(w.env.store.pool())
    .await
    .unwrap();
    use secrecy::ExposeSecret;
    assert!(
        w.env
            .tokens()
            .get(Uuid::new_v4(), &secret)
            .await
            .unwrap()
            .expose_secret()
            .starts_with("IGAAlong")
    );

    // The code is single-use, and a state igflow did not sign is refused.
    let again = w.api.http.get(&back).send().await.unwrap();
    let page = again.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        page.contains("error=") && page.contains("has+been+used"),
        "{page}"
    );
    let forged = back.replace("state=", "state=x");
    let page = w.api.http.get(&forged).send().await.unwrap().headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(page.contains("not+issued+by+igflow"), "{page}");
    // An account already in another workspace is not taken over.
    w.env.graph.oauth_user(OTHER_ACCOUNT, "rival.shop");
    let (_, answer) = w
        .call(
            Method::POST,
            "/api/accounts/connect",
            &w.owner,
            Some(json!({ "tenant_id": w.acme })),
        )
        .await;
    let back = w
        .api
        .http
        .get(answer["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let page = w.api.http.get(&back).send().await.unwrap().headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(page.contains("another+workspace"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_feed_pushes_new_activity_to_members_only() {
    let w = world().await;
    let open = |token: String| {
        let http = w.api.http.clone();
        let url = format!("{}/api/feed", w.api.url);
        async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response
        }
    };
    let record = |ig_user_id: &'static str, event: &'static str| {
        let pool = w.env.store.pool().clone();
        async move {
            sqlx::query(
                "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, outcome, detail)
                 select tenant_id, ig_user_id, $2, 'comment', 'decision', 'matched', 'rule 0 matched keyword \"price\"'
                 from ig_accounts where ig_user_id = $1",
            )
            .bind(ig_user_id)
            .bind(event)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    // Nobody watches yet: the writers queue nothing for the feed (and notify nothing).
    record(ACCOUNT, "comment:unwatched").await;
    let queued: i64 = sqlx::query_scalar("select count(*) from activity_feed")
        .fetch_one(w.env.store.pool())
        .await
        .unwrap();
    assert_eq!(queued, 0);

    let mut acme = open(w.owner.clone()).await;
    let mut rival = open(w.rival_owner.clone()).await;
    record(OTHER_ACCOUNT, "comment:rival-1").await;
    record(ACCOUNT, "comment:acme-1").await;
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("matched keyword") {
            let chunk = acme.chunk().await.unwrap().unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .expect("the acme owner sees the new entry");
    assert!(
        seen.contains("event: activity") && seen.contains("matched keyword"),
        "{seen}"
    );
    assert!(!seen.contains(OTHER_ACCOUNT), "{seen}");
    let mut rival_seen = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(Some(chunk)) = rival.chunk().await {
            rival_seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(rival_seen.contains(OTHER_ACCOUNT), "{rival_seen}");
    assert!(!rival_seen.contains(ACCOUNT), "{rival_seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_invite_through_supabase_auths_admin_api() {
    let w = world().await;
    let members = format!("/api/tenants/{}/members", w.acme);

    // A new address: Supabase sends the invitation, the member gets Auth's user id.
    let (status, member) = w.invite(&members, "Lee@Acme.test", &w.owner).await;
    assert_eq!(status, 201, "{member}");
    let lee = w.api.auth.user_id("lee@acme.test").unwrap();
    assert_eq!(member["user_id"], json!(lee), "{member}");
    assert_eq!(w.api.auth.invited(), ["lee@acme.test"]);

    // An address with an account already: no e-mail, the account is found by address.
    let kim = w.api.auth.add_user("kim@acme.test", "a password");
    let (status, member) = w.invite(&members, "kim@acme.test", &w.owner).await;
    assert_eq!((status, &member["user_id"]), (201, &json!(kim)), "{member}");
    assert_eq!(w.api.auth.invited(), ["lee@acme.test"]);

    // An editor cannot invite, and no e-mail goes out.
    let (status, _) = w.invite(&members, "eve@acme.test", &w.editor).await;
    assert_eq!(status, 403);
    assert!(!w.api.auth.calls().contains(&"invite:eve@acme.test".into()));

    // Supabase's e-mail rate limit: 429 saying so, and nobody is added.
    w.api.auth.invite_budget(0);
    let (status, answer) = w.invite(&members, "max@acme.test", &w.owner).await;
    assert_eq!(status, 429, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("rate limit"),
        "{answer}"
    );
    let (_, list) = w.call(Method::GET, &members, &w.owner, None).await;
    assert!(!list.to_string().contains("max@acme.test"), "{list}");

    // Without the service-role secret (and no development sign-in): 503 naming the setting.
    // With a secret holding another key: Supabase refuses it, the answer says what to check.
    let wrong = format!("{}supabase-wrong-key", w.env.secrets_prefix);
    aws_sdk_secretsmanager::Client::new(&w.env.aws)
        .create_secret()
        .name(&wrong)
        .secret_string("not-the-service-role-key")
        .send()
        .await
        .unwrap();
    for (secret, says) in [
        ("", "IGFLOW_SUPABASE_SERVICE_ROLE_SECRET"),
        (wrong.as_str(), "refused the service-role key"),
    ] {
        let api = Dashboard::start(
            &w.env,
            &[
                ("IGFLOW_SUPABASE_SERVICE_ROLE_SECRET", secret),
                ("IGFLOW_DEV_SIGN_IN", ""),
            ],
        )
        .await
        .unwrap();
        let body = json!({ "email": "max@acme.test", "role": "viewer" });
        let (status, answer) = api
            .call(Method::POST, &members, Some(&w.owner), Some(body))
            .await
            .unwrap();
        assert_eq!(status, 503, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
}

/// The results as the API answers them for `[from, to)`.
async fn results(w: &World, campaign: Uuid, from: &str, to: &str) -> Value {
    let path = format!("/api/campaigns/{campaign}/results?from={from}&to={to}");
    let (status, answer) = w.call(Method::GET, &path, &w.viewer, None).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_read_per_day_summaries_that_stay_exact_through_updates_and_deletes() {
    let w = world().await;
    let pool = w.env.store.pool();
    let (campaign, tenant, account): (Uuid, Uuid, String) = sqlx::query_as(
        "select c.id, c.tenant_id, a.ig_user_id from campaigns c join ig_accounts a on a.id = c.account_id
         where c.tenant_id = $1 order by c.slug limit 1",
    )
    .bind(w.acme)
    .fetch_one(pool)
    .await
    .unwrap();
    // The five days before today, comments at 06:00 and 18:00 UTC: per comment a matched decision, an
    // unmatched one, a private reply (pending, then sent or failed) and a public reply.
    sqlx::query(
        "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, campaign_id,
                               outcome, detail, variant, created_at)
         select $1, $2, 'c' || d || h || s, 'comment', s,
                case when s = 'nomatch' then null else $3 end,
                case s when 'decision' then 'matched' when 'nomatch' then 'no_match'
                       when 'private_reply' then 'pending' else 'sent' end,
                null, case when s = 'public_reply' then (d % 2)::smallint end,
                date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'
                  - make_interval(days => d) + make_interval(hours => h)
         from generate_series(1, 5) d, unnest(array[6, 18]) h,
              unnest(array['decision', 'nomatch', 'private_reply', 'public_reply']) s",
    )
    .bind(tenant)
    .bind(&account)
    .bind(campaign)
    .execute(pool)
    .await
    .unwrap();
    // 'nomatch' stands for another event's decision: make it one.
    sqlx::query(
        "update activity set step = 'decision', event_id = event_id || 'n' where step = 'nomatch'",
    )
    .execute(pool)
    .await
    .unwrap();
    // Three taps on the campaign's buttons yesterday evening, and one no campaign answered.
    sqlx::query(
        "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, campaign_id,
                               outcome, created_at)
         select $1, $2, 'postback:tap' || i, 'postback', 'decision',
                case when i < 4 then $3 end, case when i < 4 then 'matched' else 'no_match' end,
                date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'
                  - interval '1 day' + interval '18 hours'
         from generate_series(1, 4) i",
    )
    .bind(tenant)
    .bind(&account)
    .bind(campaign)
    .execute(pool)
    .await
    .unwrap();
    // The worker's outcomes, one statement per row as it records them.
    let replies: Vec<i64> = sqlx::query_scalar(
        "select id from activity where step = 'private_reply' order by created_at",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (i, id) in replies.iter().enumerate() {
        let (outcome, detail) = if i % 3 == 0 {
            ("failed", Some("the messaging window closed"))
        } else {
            ("sent", None)
        };
        sqlx::query("update activity set outcome = $2, detail = $3 where id = $1")
            .bind(id)
            .bind(outcome)
            .bind(detail)
            .execute(pool)
            .await
            .unwrap();
        // Not counted: leases change nothing in the summaries.
        sqlx::query("update activity set lease_until = now() where id = $1")
            .bind(id)
            .execute(pool)
            .await
            .unwrap();
    }
    // An action in flight (of a campaign since deleted, so the results below leave it out),
    // claimed then marked pending as the worker does before its call: the summaries count it
    // only once it settles.
    sqlx::query(
        "insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, outcome)
         values ($1, $2, 'in-flight', 'comment', 'private_reply', 'claimed')",
    )
    .bind(tenant)
    .bind(&account)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("update activity set outcome = 'pending' where event_id = 'in-flight'")
        .execute(pool)
        .await
        .unwrap();
    // Retention deletes the oldest day.
    sqlx::query(
        "delete from activity where created_at < date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' - interval '4 days'",
    )
        .execute(pool)
        .await
        .unwrap();

    // The summaries equal a count of the rows as they are now: as the triggers' deltas, and
    // once the workers' compaction has summed them into one row per key.
    let drift = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from (
               (select tenant_id, ig_user_id, campaign_id, (created_at at time zone 'UTC')::date, event_kind,
                       step, outcome, variant, count(*) from activity
                where tenant_id is not null and outcome not in ('claimed', 'pending') group by 1, 2, 3, 4, 5, 6, 7, 8
                except all
                select tenant_id, ig_user_id, campaign_id, day, event_kind, step, outcome, variant, sum(n)::int8
                from activity_daily group by 1, 2, 3, 4, 5, 6, 7, 8 having sum(n) <> 0)
               union all
               (select tenant_id, ig_user_id, campaign_id, day, event_kind, step, outcome, variant, sum(n)::int8
                from activity_daily group by 1, 2, 3, 4, 5, 6, 7, 8 having sum(n) <> 0
                except all
                select tenant_id, ig_user_id, campaign_id, (created_at at time zone 'UTC')::date, event_kind,
                       step, outcome, variant, count(*) from activity
                where tenant_id is not null and outcome not in ('claimed', 'pending') group by 1, 2, 3, 4, 5, 6, 7, 8)) x",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    };
    assert_eq!(
        drift().await,
        0,
        "activity_daily's deltas drifted from activity"
    );
    let in_flight: i64 = sqlx::query_scalar(
        "select count(*) from activity_daily where outcome in ('claimed', 'pending')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(in_flight, 0, "in-flight actions are not summarized");
    let replaced = w.env.store.compact_activity_daily().await.unwrap();
    assert!(replaced > 0, "there were deltas to sum");
    let (deltas, keys, rows): (i64, i64, i64) = sqlx::query_as(
        "select count(*) filter (where not compacted),
                count(distinct (tenant_id, ig_user_id, campaign_id, day, event_kind, step, outcome,
                                variant, reason, quick_reply)),
                count(*)
         from activity_daily",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((deltas, rows), (0, keys), "one compacted row per key");
    assert_eq!(
        drift().await,
        0,
        "activity_daily drifted from activity once compacted"
    );

    // Whole days from the summaries, partial ones from the rows: a period from 12:00 four
    // days ago to now holds 7 comments (18:00 four days ago, then two a day).
    let now = jiff::Timestamp::now().to_string();
    let from = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(4 * 24))
        .strftime("%Y-%m-%dT12:00:00Z")
        .to_string();
    let answer = results(&w, campaign, &from, &now).await;
    let comments = 7;
    assert_eq!(answer["bucket"], "day", "{answer}");
    assert_eq!(
        answer["funnel"],
        json!({ "seen": 2 * comments, "matched": comments,
                "private_replies_sent": answer["funnel"]["private_replies_sent"],
                "public_replies_sent": comments, "dms_sent": 0, "buttons_tapped": 3 }),
        "{answer}"
    );
    let failed = answer["failures"][0]["count"].as_i64().unwrap();
    assert_eq!(
        answer["funnel"]["private_replies_sent"].as_i64().unwrap() + failed,
        comments,
        "{answer}"
    );
    assert_eq!(
        answer["failures"][0]["reason"],
        "the messaging window closed"
    );
    let variants: i64 = answer["variants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["step"] == "public_reply")
        .map(|v| v["count"].as_i64().unwrap())
        .sum();
    assert_eq!(variants, comments, "{answer}");
    let series = answer["series"].as_array().unwrap();
    assert_eq!(series.len(), 4, "four days: {answer}");
    assert_eq!(
        series[0]["matched"], 1,
        "only 18:00 of the first day: {answer}"
    );
    assert_eq!(series[1]["matched"], 2, "{answer}");

    // An hourly period reads rows only, and agrees.
    let hourly = results(
        &w,
        campaign,
        &(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(30)).to_string(),
        &now,
    )
    .await;
    assert_eq!(hourly["bucket"], "hour", "{hourly}");
    let matched: i64 = hourly["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["matched"].as_i64().unwrap())
        .sum();
    assert_eq!(
        matched,
        hourly["funnel"]["matched"].as_i64().unwrap(),
        "{hourly}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_url_and_app_secret_are_read_from_secrets_manager_at_start() {
    use igflow_dashboard::config::{DashboardConfig, LoadError};
    use secrecy::ExposeSecret;

    let env = TestEnv::new().await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&env.aws);
    let (db, app) = (
        format!("{}database-url", env.secrets_prefix),
        format!("{}instagram-app-secret", env.secrets_prefix),
    );
    for (name, value) in [
        (&db, env.admin_database_url.as_str()),
        (&app, "from-secrets-manager\n"),
    ] {
        secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let vars = |db_secret: &str| {
        igflow_core::env::Env::from_map(
            [
                ("IGFLOW_JWT_ISSUER", ISSUER),
                ("IGFLOW_JWT_SECRET", JWT_SECRET),
                ("IGFLOW_DATABASE_URL_SECRET_ID", db_secret),
                ("IGFLOW_IG_APP_ID", "990000000000001"),
                ("IGFLOW_IG_APP_SECRET_ID", app.as_str()),
                (
                    "IGFLOW_OAUTH_REDIRECT_URL",
                    "https://dash.example/oauth/callback",
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        )
    };
    let config = DashboardConfig::load(vars(&db), &secrets).await.unwrap();
    assert_eq!(
        config.store.database_url.expose_secret(),
        env.admin_database_url
    );
    assert_eq!(
        config.oauth.unwrap().app_secret.expose_secret(),
        "from-secrets-manager"
    );
    // A secret that is not there: the error names the setting and what to check.
    let missing = DashboardConfig::load(vars("igflow-test/no-such-secret"), &secrets)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &missing,
            LoadError::Secret {
                var: "DATABASE_URL",
                ..
            }
        ),
        "{missing}"
    );
    assert!(missing.to_string().contains("GetSecretValue"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_jobs_failures_show_on_the_account_until_they_succeed() {
    let w = world().await;
    let account = w.first_account(&w.viewer).await;
    assert!(account["token_refresh_error"].is_null(), "{account}");
    assert!(account["subscription_error"].is_null(), "{account}");
    let id: Uuid = account["id"].as_str().unwrap().parse().unwrap();

    // What the worker's jobs write when Meta refuses them.
    let refused = "(#190) Error validating access token: the session has been invalidated";
    w.env
        .worker_store
        .token_refresh_failed(id, refused)
        .await
        .unwrap();
    let denied = "(#200) Requires instagram_business_manage_messages permission";
    w.env
        .worker_store
        .subscription_checked(id, None, Some(denied))
        .await
        .unwrap();
    let account = w.first_account(&w.viewer).await;
    assert_eq!(account["token_refresh_error"], refused, "{account}");
    assert_eq!(account["subscription_error"], denied, "{account}");
    for at in ["token_refresh_failed_at", "subscription_checked_at"] {
        assert!(
            account[at].as_str().is_some_and(|t| t.ends_with('Z')),
            "{at}: {account}"
        );
    }

    // The next audit subscribes the account again: the error goes.
    let fields: Vec<String> = igflow_core::subscription::WEBHOOK_FIELDS
        .iter()
        .map(|f| (*f).to_owned())
        .collect();
    w.env
        .worker_store
        .subscription_checked(id, Some(&fields), None)
        .await
        .unwrap();
    let account = w.first_account(&w.viewer).await;
    assert!(account["subscription_error"].is_null(), "{account}");
    assert_eq!(account["token_refresh_error"], refused, "{account}");
}
