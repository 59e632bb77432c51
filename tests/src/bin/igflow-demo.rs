//! Runs the fleet locally and shows what it does: the real `igflow-webhook` and
//! `igflow-worker` binaries against local Postgres, Redis and moto, with the Graph API test
//! server standing in for Meta. Sends a few signed comment deliveries, a story mention and a
//! DM from the link in bio, and prints, per event, which campaign fired and which replies
//! and DMs went out. `scripts/demo.sh` runs it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use igflow_core::signature::sign;
use igflow_tests::graph_server::{CallKind, GraphTestServer};
use igflow_tests::harness::{Services, create_queues, eventually, tag};
use igflow_tests::meta::{CommentSpec, comment_delivery, echo_delivery, person_delivery};
use igflow_worker::clients::secrets::Tokens;
use igflow_worker::config::SecretsConfig;
use secrecy::SecretString;
use sqlx::{AssertSqlSafe, Executor};
use tokio::process::{Child, Command};

const ACCOUNT: &str = "17841400000000000";
const LAUNCH_REEL: &str = "18000000000000099";
const APP_SECRET: &str = "demo-app-secret";
const VERIFY_TOKEN: &str = "demo-verify-token";
const DATABASE: &str = "igflow_demo";
const WEBHOOK_SECRET: &str = "igflow-demo/webhook";
/// Who signs in to the demo dashboard (the development sign-in), as the demo tenant's owner.
const DASHBOARD_USER: &str = "demo@igflow.local";
const DASHBOARD_ISSUER: &str = "http://127.0.0.1/igflow-demo/auth/v1";
const DASHBOARD_APP_ID: &str = "990000000000001";

#[derive(Parser)]
#[command(about = "Run igflow locally with demo data and show what happens")]
struct Args {
    /// Directory holding the igflow-webhook and igflow-worker binaries.
    #[arg(long)]
    bin_dir: PathBuf,
    /// The campaign file to apply.
    #[arg(long, default_value = "campaigns/demo.yaml")]
    campaigns: PathBuf,
    /// Port of the webhook (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Print the summary and stop, instead of keeping the fleet running.
    #[arg(long)]
    exit: bool,
}

struct Sample {
    comment: CommentSpec,
    note: &'static str,
}

fn samples() -> Vec<Sample> {
    let mut launch = CommentSpec::new("17900000000000104", "6104", "Drop the link!! 🔥");
    launch.media_id = LAUNCH_REEL.into();
    let mut own = CommentSpec::new("17900000000000106", ACCOUNT, "Prices in our bio 👆");
    own.username = "acme.shoes".into();
    vec![
        Sample {
            comment: CommentSpec::new("17900000000000101", "6101", "Price??? 😍"),
            note: "English, emoji",
        },
        Sample {
            comment: CommentSpec::new("17900000000000102", "6102", "इसकी कीमत क्या है?"),
            note: "Hindi",
        },
        Sample {
            comment: CommentSpec::new("17900000000000103", "6103", "priceless vibes"),
            note: "excluded word",
        },
        Sample {
            comment: launch,
            note: "launch reel, higher priority",
        },
        Sample {
            comment: CommentSpec::new("17900000000000105", "6105", "link?"),
            note: "link, but not on the launch reel",
        },
        Sample {
            comment: own,
            note: "the account's own comment",
        },
    ]
}

/// What people do in DMs: (event id, who, what it shows, the `messaging` item's fields).
fn conversations() -> Vec<(&'static str, &'static str, &'static str, serde_json::Value)> {
    vec![
        (
            "message:aWdfZAG1demo-mention",
            "6107",
            "@6107 mentions the account in their story",
            serde_json::json!({ "message": { "mid": "aWdfZAG1demo-mention", "attachments": [
                { "type": "story_mention", "payload": { "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1" } }
            ] } }),
        ),
        (
            "message:aWdfZAG1demo-bio",
            "6108",
            "@6108 writes \"hi!\" after tapping the link in bio (ig.me/m/acme.shoes?ref=bio)",
            serde_json::json!({ "message": { "mid": "aWdfZAG1demo-bio", "text": "hi!",
                "referral": { "ref": "bio", "source": "IG.ME", "type": "OPEN_THREAD" } } }),
        ),
    ]
}

fn child(
    bin: &PathBuf,
    args: &[&str],
    envs: &[(&str, String)],
    log: &str,
) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log).with_context(|| format!("creating {log}"))?;
    Command::new(bin)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

async fn run_to_end(
    bin: &PathBuf,
    args: &[&str],
    envs: &[(&str, String)],
) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} {args:?} failed:\n{}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let services = Services::from_env();
    let worker_bin = args.bin_dir.join("igflow-worker");
    let webhook_bin = args.bin_dir.join("igflow-webhook");
    let dashboard_bin = args.bin_dir.join("igflow-dashboard");
    std::fs::create_dir_all(".local")?;

    // A fresh demo database, queues, Redis prefix and Graph API stand-in on every run.
    let admin = sqlx::PgPool::connect(&services.database_url)
        .await
        .context("connecting to Postgres")?;
    admin
        .execute(AssertSqlSafe(format!(
            "drop database if exists {DATABASE} with (force)"
        )))
        .await?;
    admin
        .execute(AssertSqlSafe(format!("create database {DATABASE}")))
        .await?;
    let database_url = services.database_url_for(DATABASE);
    let aws = services.aws().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    // A queue of its own per run: nothing left over from an earlier run, and no PurgeQueue,
    // which SQS allows once a minute (a second demo run right after the first failed on it).
    let run = tag();
    let (queue_url, dlq_url) = create_queues(
        &sqs,
        &format!("igflow-demo-events-{run}"),
        Duration::from_secs(60),
    )
    .await?;
    let graph = GraphTestServer::start(0).await?;
    // The webhook reads its keys from Secrets Manager, as in AWS.
    let keys = serde_json::json!({ "app_secrets": [APP_SECRET], "verify_token": VERIFY_TOKEN });
    let secrets = Tokens::new(
        aws_sdk_secretsmanager::Client::new(&aws),
        SecretsConfig {
            prefix: "igflow-demo/".into(),
            cache_ttl: Duration::ZERO,
        },
    );
    secrets
        .put(WEBHOOK_SECRET, &SecretString::from(keys.to_string()))
        .await?;
    let port = match args.port {
        0 => std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port(),
        p => p,
    };
    let mut env = vec![
        ("REDIS_URL", services.redis_url.clone()),
        ("IGFLOW_REDIS_PREFIX", format!("igflow-demo:{run}:")),
        ("IGFLOW_SECRETS_PREFIX", "igflow-demo/".into()),
        ("IGFLOW_QUEUE_URL", queue_url.clone()),
        ("IGFLOW_DLQ_URL", dlq_url.clone()),
        ("IGFLOW_GRAPH_API_URL", graph.url.clone()),
        ("IGFLOW_WEBHOOK_ADDR", format!("127.0.0.1:{port}")),
        ("IGFLOW_WEBHOOK_SECRET_ID", WEBHOOK_SECRET.into()),
        ("IGFLOW_WAIT_SECONDS", "2".into()),
        ("AWS_ENDPOINT_URL", services.aws_endpoint.clone()),
    ];

    // `migrate` and `apply` connect as the tables' owner; the fleet as the worker's role.
    let mut admin_env = env.clone();
    admin_env.push(("IGFLOW_ADMIN_DATABASE_URL", database_url.clone()));
    println!("== igflow demo ==");
    run_to_end(&worker_bin, &["migrate"], &admin_env).await?;
    println!("database {DATABASE} migrated");
    let campaigns = args.campaigns.to_string_lossy().into_owned();
    println!(
        "{}",
        run_to_end(&worker_bin, &["apply", &campaigns], &admin_env).await?
    );
    env.push(("DATABASE_URL", services.worker_url(&database_url).await?));
    // The dashboard connects as the tables' owner, which may `set role authenticated` as
    // Supabase's authenticator does; its dev sign-in makes the demo user the tenant's owner.
    let dashboard_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dashboard = format!("http://127.0.0.1:{dashboard_port}");
    sqlx::query(
        "insert into memberships (tenant_id, user_id, role, email) select id, $1, 'owner', $2 from tenants",
    )
    .bind(igflow_dashboard::auth::dev_user_id(DASHBOARD_USER))
    .bind(DASHBOARD_USER)
    .execute(&sqlx::PgPool::connect(&database_url).await?)
    .await?;
    graph.oauth_app(
        DASHBOARD_APP_ID,
        APP_SECRET,
        &format!("{dashboard}/oauth/callback"),
    );
    graph.oauth_user("17841400000000555", "acme.outlet");
    let mut dashboard_env = env.clone();
    dashboard_env.extend([
        ("DATABASE_URL", database_url.clone()),
        (
            "IGFLOW_DASHBOARD_ADDR",
            format!("127.0.0.1:{dashboard_port}"),
        ),
        ("IGFLOW_DASHBOARD_STATIC_DIR", "dashboard/web/dist".into()),
        ("IGFLOW_JWT_ISSUER", DASHBOARD_ISSUER.into()),
        (
            "IGFLOW_JWT_SECRET",
            format!("{APP_SECRET}-dashboard-signing-key"),
        ),
        ("IGFLOW_DEV_SIGN_IN", "true".into()),
        ("IGFLOW_IG_APP_ID", DASHBOARD_APP_ID.into()),
        ("IGFLOW_IG_APP_SECRET", APP_SECRET.into()),
        (
            "IGFLOW_OAUTH_REDIRECT_URL",
            format!("{dashboard}/oauth/callback"),
        ),
        (
            "IGFLOW_INSTAGRAM_DIALOG_URL",
            format!("{}/oauth/authorize", graph.url),
        ),
        ("IGFLOW_INSTAGRAM_API_URL", graph.url.clone()),
    ]);
    let mut children = vec![
        child(&webhook_bin, &[], &env, ".local/webhook.log")?,
        child(&worker_bin, &["run"], &env, ".local/worker.log")?,
        child(&dashboard_bin, &[], &dashboard_env, ".local/dashboard.log")?,
    ];
    let webhook = format!("http://127.0.0.1:{port}/webhook");
    let http = reqwest::Client::new();
    let challenge = async || -> anyhow::Result<bool> {
        let query = [
            ("hub.mode", "subscribe"),
            ("hub.challenge", "1158201444"),
            ("hub.verify_token", VERIFY_TOKEN),
        ];
        let Ok(response) = http.get(&webhook).query(&query).send().await else {
            return Ok(false);
        };
        Ok(response.status() == 200 && response.text().await.unwrap_or_default() == "1158201444")
    };
    eventually(
        "the webhook to answer Meta's handshake",
        Duration::from_secs(20),
        challenge,
    )
    .await?;
    println!("webhook up at {webhook} (handshake answered); worker consuming {queue_url}");
    println!(
        "Graph API test server at {} (stands in for graph.instagram.com)\n",
        graph.url
    );

    // Meta-encoded, signed deliveries: all comments in one POST, plus a DM echo.
    let samples = samples();
    let comments: Vec<CommentSpec> = samples.iter().map(|s| s.comment.clone()).collect();
    let secret = SecretString::from(APP_SECRET.to_owned());
    let mut deliveries = vec![
        comment_delivery(ACCOUNT, &comments),
        echo_delivery(
            ACCOUNT,
            "6101",
            "aWdfZAG1demo-echo",
            "Hi! Here is our price list",
        ),
    ];
    deliveries.extend(
        conversations()
            .into_iter()
            .map(|(_, who, _, fields)| person_delivery(ACCOUNT, who, fields)),
    );
    for body in &deliveries {
        let status = http
            .post(&webhook)
            .header("X-Hub-Signature-256", sign(&secret, body.as_bytes()))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?
            .status();
        println!("POST /webhook ({} bytes, signed) -> {status}", body.len());
    }
    let forged = http
        .post(&webhook)
        .header(
            "X-Hub-Signature-256",
            sign(
                &SecretString::from("wrong".to_owned()),
                deliveries[0].as_bytes(),
            ),
        )
        .body(deliveries[0].clone())
        .send()
        .await?
        .status();
    println!("POST /webhook with a forged signature -> {forged} (nothing enqueued)\n");

    let store = sqlx::PgPool::connect(&database_url).await?;
    let expected = i64::try_from(samples.len() + 1 + conversations().len())?;
    eventually(
        "the worker to decide every event",
        Duration::from_secs(60),
        || async {
            let decided: i64 =
                sqlx::query_scalar("select count(*) from activity where step = 'decision'")
                    .fetch_one(&store)
                    .await?;
            let pending: i64 = sqlx::query_scalar(
                "select count(*) from activity where outcome in ('claimed', 'pending', 'retry')",
            )
            .fetch_one(&store)
            .await?;
            Ok(decided >= expected && pending == 0)
        },
    )
    .await?;
    print_summary(&store, &samples, &graph).await?;

    if args.exit {
        for c in &mut children {
            c.kill().await?;
        }
        return Ok(());
    }
    println!(
        "\nThe fleet keeps running (logs: .local/webhook.log, .local/worker.log). Send your own comment:"
    );
    println!(
        r#"  body='{{"object":"instagram","entry":[{{"id":"{ACCOUNT}","time":1732200000,"changes":[{{"field":"comments","value":{{"id":"17900000000000999","from":{{"id":"6999","username":"you"}},"text":"how much?","media":{{"id":"1"}}}}}}]}}]}}'
  curl -s -X POST {webhook} -H "X-Hub-Signature-256: sha256=$(printf %s "$body" | openssl dgst -sha256 -hmac {APP_SECRET} -r | cut -d' ' -f1)" -d "$body"
  psql {database_url} -c 'select event_id, step, outcome, detail from activity order by id'"#
    );
    println!(
        "\nDashboard: {dashboard}/ (log: .local/dashboard.log). Sign in with any address; {DASHBOARD_USER} owns the demo tenant.\n\
         Connect an account there: the Graph API test server plays Instagram's dialog and consents as @acme.outlet."
    );
    println!("Ctrl-C stops everything.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ActivityRow {
    event_id: String,
    step: String,
    outcome: String,
    detail: Option<String>,
    campaign: Option<String>,
}

async fn print_summary(
    store: &sqlx::PgPool,
    samples: &[Sample],
    graph: &GraphTestServer,
) -> anyhow::Result<()> {
    let rows: Vec<ActivityRow> = sqlx::query_as(
        "select a.event_id, a.step, a.outcome, a.detail, c.slug as campaign
         from activity a left join campaigns c on c.id = a.campaign_id order by a.id",
    )
    .fetch_all(store)
    .await?;
    let mut by_event: BTreeMap<String, Vec<ActivityRow>> = BTreeMap::new();
    for row in rows {
        by_event.entry(row.event_id.clone()).or_default().push(row);
    }
    let calls = graph.calls();
    println!("== What happened ==");
    let mut events: Vec<(String, String)> = samples
        .iter()
        .map(|s| {
            (
                format!("comment:{}", s.comment.comment_id),
                format!(
                    "@{} \"{}\" ({})",
                    s.comment.username, s.comment.text, s.note
                ),
            )
        })
        .collect();
    events.push((
        "message:aWdfZAG1demo-echo".into(),
        "echo of a DM the account sent".into(),
    ));
    let people: BTreeMap<&str, &str> = conversations()
        .into_iter()
        .map(|(event, who, _, _)| (event, who))
        .collect();
    events.extend(
        conversations()
            .into_iter()
            .map(|(event, _, label, _)| (event.to_owned(), label.to_owned())),
    );
    for (event_id, label) in events {
        println!("{label}");
        for row in by_event.get(&event_id).into_iter().flatten() {
            let ActivityRow {
                step,
                outcome,
                detail,
                campaign,
                ..
            } = row;
            if step == "decision" {
                let why = detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                match campaign {
                    Some(c) => println!("    -> campaign {c} {outcome}{why}"),
                    None => println!("    -> {outcome}{why}"),
                }
                continue;
            }
            let comment_id = event_id.trim_start_matches("comment:");
            let text = calls
                .iter()
                .find(|c| match &c.kind {
                    CallKind::PrivateReply { comment_id: id, .. } => {
                        step == "private_reply" && id == comment_id
                    }
                    CallKind::PublicReply { comment_id: id } => {
                        step == "public_reply" && id == comment_id
                    }
                    CallKind::Message { recipient, .. } => {
                        step == "dm" && people.get(event_id.as_str()) == Some(&recipient.as_str())
                    }
                })
                .map(|c| c.text.clone())
                .unwrap_or_default();
            println!("    {step}: {outcome} \"{text}\"");
        }
    }
    println!(
        "\nGraph API calls: {} ({} private replies, {} public replies, {} DMs)",
        calls.len(),
        calls
            .iter()
            .filter(|c| matches!(c.kind, CallKind::PrivateReply { .. }))
            .count(),
        calls
            .iter()
            .filter(|c| matches!(c.kind, CallKind::PublicReply { .. }))
            .count(),
        calls
            .iter()
            .filter(|c| matches!(c.kind, CallKind::Message { .. }))
            .count()
    );
    Ok(())
}
