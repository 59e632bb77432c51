//! Runs the real webhook and worker in-process against real services, each test isolated by
//! its own database, Redis key prefix, queues, secret names and ports.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_sdk_sqs::config::{Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use igflow_core::campaign_file::{CampaignFile, TokenSource};
use igflow_core::env::Env;
use igflow_core::runtime;
use igflow_core::signature::sign;
use igflow_webhook::{AppState, DeliveryArchive, KeySource, Metrics, SqsSink, load_keys};
use igflow_worker::Worker;
use igflow_worker::clients::secrets::Tokens;
use igflow_worker::clients::store::Store;
use igflow_worker::config::{RunConfig, SecretsConfig};
use igflow_worker::jobs::lifecycle::Lifecycle;
use igflow_worker::ops::apply::{ApplyError, ApplySummary, apply};
use igflow_worker::pipeline::consumer::Step;
use igflow_worker::stats::Stats;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Executor};
use tokio_util::sync::CancellationToken;

use crate::faults::{Proc, workspace_bin};
use crate::graph_server::{CallKind, GraphTestServer};
use igflow_worker::ops::dlq::Dlq;

/// The SDK pointed at `endpoint` with dummy credentials and `calls`' timeouts.
pub async fn aws_at(endpoint: &str, calls: runtime::AwsCalls) -> aws_config::SdkConfig {
    runtime::aws_loader(calls)
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "igflow-tests"))
        .load()
        .await
}

/// Test databases older than this are left over from aborted runs and are dropped.
const STALE_DATABASE_SECS: u64 = 3600;
/// How often a message is received before SQS moves it to the DLQ, in tests.
pub const MAX_RECEIVE_COUNT: u32 = 5;

/// Where the local services are (`scripts/services.sh` exports these).
#[derive(Debug, Clone)]
pub struct Services {
    pub database_url: String,
    pub redis_url: String,
    /// A Redis Cluster (`redis-cluster://...`), as scripts/services.sh starts it.
    pub redis_cluster_url: String,
    pub aws_endpoint: String,
}

impl Services {
    pub fn from_env() -> Self {
        let var = |k: &str, default: &str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            database_url: var(
                "DATABASE_URL",
                "postgres://postgres:postgres@127.0.0.1:5432/postgres",
            ),
            redis_url: var("REDIS_URL", "redis://127.0.0.1:6379"),
            redis_cluster_url: var(
                "IGFLOW_REDIS_CLUSTER_URL",
                "redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001&node=127.0.0.1:7002",
            ),
            aws_endpoint: var("AWS_ENDPOINT_URL", "http://127.0.0.1:5055"),
        }
    }

    /// The SDK pointed at the emulator, with dummy credentials and the worker's timeouts
    /// (moto on a busy test machine is slower than SQS).
    pub async fn aws(&self) -> aws_config::SdkConfig {
        aws_at(&self.aws_endpoint, runtime::AwsCalls::Worker).await
    }

    /// The same server with another database.
    pub fn database_url_for(&self, db: &str) -> String {
        match self.database_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{db}"),
            None => format!("{}/{db}", self.database_url),
        }
    }

    /// The worker's URL for the (migrated) database at `admin_url`: the same server and
    /// database as the worker's login role, which this creates the first time.
    pub async fn worker_url(&self, admin_url: &str) -> anyhow::Result<String> {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(admin_url)
            .await?;
        sqlx::raw_sql(CREATE_WORKER_LOGIN).execute(&admin).await?;
        admin.close().await;
        let mut url = reqwest::Url::parse(admin_url)?;
        let (user, password) = WORKER_LOGIN;
        url.set_username(user)
            .and_then(|()| url.set_password(Some(password)))
            .map_err(|()| anyhow::anyhow!("{admin_url} cannot carry a user"))?;
        Ok(url.to_string())
    }

    /// Creates a fresh, migrated database and returns its store.
    pub async fn fresh_database(&self, prefix: &str) -> anyhow::Result<(Store, String)> {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.database_url)
            .await
            .with_context(|| "connecting to Postgres (run scripts/services.sh)".to_owned())?;
        let now = unix_secs();
        let stale: Vec<String> =
            sqlx::query_scalar("select datname from pg_database where datname like $1")
                .bind(format!("{prefix}%"))
                .fetch_all(&admin)
                .await?;
        for name in stale {
            let created = name
                .strip_prefix(prefix)
                .and_then(|r| r.split('_').next())
                .and_then(|t| t.parse::<u64>().ok());
            if created.is_some_and(|t| now.saturating_sub(t) > STALE_DATABASE_SECS) {
                let _ = admin
                    .execute(AssertSqlSafe(format!("drop database if exists \"{name}\"")))
                    .await;
            }
        }
        let name = format!("{prefix}{now}_{:08x}", fastrand::u32(..));
        admin
            .execute(AssertSqlSafe(format!("create database \"{name}\"")))
            .await?;
        let url = self.database_url_for(&name);
        let store = Store::from_pool(
            PgPoolOptions::new()
                .max_connections(8)
                .connect(&url)
                .await?,
        );
        sqlx::raw_sql(SUPABASE_DEFAULTS)
            .execute(store.pool())
            .await
            .context("simulating Supabase's roles and default privileges")?;
        store.migrate().await?;
        Ok((store, url))
    }
}

/// What a Supabase project's database has before igflow's first migration: its API roles, and
/// default privileges granting them everything on whatever the migrations create in `public`
/// (as Supabase's own setup does), so that tests see what Supabase would expose. Roles are
/// cluster-wide and databases are set up in parallel: a concurrent creator shows up as
/// duplicate_object, or as unique_violation while its transaction is open.
const SUPABASE_DEFAULTS: &str = r#"
do $$
declare
    r text;
begin
    foreach r in array array['anon', 'authenticated', 'service_role'] loop
        if not exists (select 1 from pg_roles where rolname = r) then
            begin
                execute format('create role %I nologin', r);
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
end
$$;
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
"#;

/// The login role the worker connects as in tests and the demo: a member of `igflow_worker`,
/// as a deployment's worker login is (`shared/roles/worker.sql`). A password, as a fresh
/// Debian cluster wants one over TCP.
const WORKER_LOGIN: (&str, &str) = ("igflow_worker_login", "igflow-worker-local");
const CREATE_WORKER_LOGIN: &str = r#"
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'igflow_worker_login') then
        begin
            create role igflow_worker_login login password 'igflow-worker-local' in role igflow_worker;
        exception when duplicate_object or unique_violation then
            null;
        end;
    end if;
end
$$;
"#;

/// Logs go through the test harness's capture, so they show only for failing tests.
fn init_test_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random lowercase tag that keeps names apart between tests.
pub fn tag() -> String {
    format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff)
}

/// Creates `{name}` with a redrive policy to `{name}-dlq`; returns both URLs.
pub async fn create_queues(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility: Duration,
) -> anyhow::Result<(String, String)> {
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await?
        .queue_url
        .context("no DLQ url")?;
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("no DLQ arn")?;
    let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT.to_string() });
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.as_secs().to_string(),
        )
        .send()
        .await?
        .queue_url
        .context("no queue url")?;
    Ok((queue_url, dlq_url))
}

/// Messages in a queue: (visible, in flight).
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<(u64, u64)> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    let get = |k: &QueueAttributeName| attrs.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((
        get(&QueueAttributeName::ApproximateNumberOfMessages),
        get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    ))
}

/// Tests that measure time (pacing, latency, windows) take this first, so that within one
/// test binary they run one at a time instead of competing for the machine's two cores; the
/// other tests still run beside them.
pub async fn timed() -> tokio::sync::MutexGuard<'static, ()> {
    static TIMED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TIMED.lock().await
}

/// Polls `check` every 50 ms until it holds, or fails after `timeout` naming `what`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One isolated copy of the fleet's surroundings.
pub struct TestEnv {
    pub services: Services,
    /// The tables' owner (what `migrate` and `apply` use): for setting up and checking.
    pub store: Store,
    /// The worker's own role (`igflow_worker`): what every worker in a test runs as.
    pub worker_store: Store,
    /// The worker's URL (DATABASE_URL of worker processes).
    pub database_url: String,
    /// The owner's URL (IGFLOW_ADMIN_DATABASE_URL).
    pub admin_database_url: String,
    pub aws: aws_config::SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
    pub graph: GraphTestServer,
    pub redis_prefix: String,
    pub secrets_prefix: String,
    pub app_secret: SecretString,
    pub verify_token: SecretString,
    http: reqwest::Client,
}

/// The end state of a fault test.
#[derive(Debug, Default, Clone)]
pub struct Accounting {
    pub events: usize,
    /// Both replies accepted exactly once.
    pub acted: usize,
    /// An action recorded as failed, dropped or skipped for good, with its reason.
    pub permanent: usize,
    pub in_dlq: usize,
    /// Comments answered more than once: must stay empty.
    pub doubled: Vec<String>,
    /// Comments none of the above: must end empty.
    pub missing: Vec<String>,
    /// Every call the Graph test server saw, refused ones included.
    pub attempts: usize,
    pub dlq_messages: usize,
    /// Actions still marked uncertain.
    pub uncertain: i64,
}

/// Body limit of the tests' webhook (production's default is 4 MiB).
pub const WEBHOOK_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A webhook serving on a local port.
pub struct Webhook {
    /// Its `/webhook` URL.
    pub url: String,
    /// `http://host:port`, for the other routes (`/meta/deauthorize`, ...).
    pub base: String,
    pub metrics: Arc<Metrics>,
}

pub struct RunningWorker {
    pub stats: Arc<Stats>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    /// Stops receiving, lets the batches in hand finish, and waits for that.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await?;
        Ok(())
    }

    /// Waits until the worker has finished `n` messages (handled or dropped as duplicates).
    pub async fn wait_finished(&self, n: u64, timeout: Duration) -> anyhow::Result<()> {
        let stats = Arc::clone(&self.stats);
        eventually(&format!("{n} messages finished"), timeout, move || {
            let s = stats.snapshot();
            async move { Ok(s.handled + s.duplicates >= n) }
        })
        .await
    }
}

/// An in-process worker driven one batch at a time ([`Worker::process_next`]), without its
/// background jobs: a test works exactly the messages it waits for instead of polling.
pub struct SteppedWorker {
    worker: Worker,
}

impl SteppedWorker {
    /// One batch: how its messages ended.
    pub async fn step(&self) -> anyhow::Result<Step> {
        self.worker.process_next().await.map_err(anyhow::Error::msg)
    }

    /// What the worker counted so far.
    pub fn stats(&self) -> igflow_worker::stats::Snapshot {
        self.worker.stats().snapshot()
    }

    /// Works batches until `n` messages have finished (handled, or dropped as duplicates),
    /// failing after `timeout`; what the batches did, summed.
    pub async fn finish(&self, n: usize, timeout: Duration) -> anyhow::Result<Step> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut done = Step::default();
        while done.finished() < n {
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("{n} messages not finished after {timeout:?}: {done:?}");
            }
            done += self.step().await?;
        }
        Ok(done)
    }
}

/// [`fleet`] with a [`SteppedWorker`].
pub async fn stepped_fleet(campaigns: &str) -> (TestEnv, String, SteppedWorker) {
    let (env, webhook) = surroundings(campaigns).await;
    let worker = env.stepped_worker().await.expect("worker builds");
    (env, webhook, worker)
}

/// A fresh environment with `campaigns` applied, and its webhook's URL.
async fn surroundings(campaigns: &str) -> (TestEnv, String) {
    let env = TestEnv::new()
        .await
        .expect("test environment (run scripts/services.sh)");
    env.apply(campaigns).await.expect("campaigns apply");
    let webhook = env.start_webhook().await.expect("webhook starts").url;
    (env, webhook)
}

/// The whole path for one test: a fresh environment with `campaigns` applied, its webhook's
/// URL and a running in-process worker.
pub async fn fleet(campaigns: &str) -> (TestEnv, String, RunningWorker) {
    let (env, webhook) = surroundings(campaigns).await;
    let worker = env.start_worker().await.expect("worker starts");
    (env, webhook, worker)
}

impl TestEnv {
    pub async fn new() -> anyhow::Result<Self> {
        init_test_tracing();
        let services = Services::from_env();
        let (store, admin_database_url) = services.fresh_database("igflow_t_").await?;
        let database_url = services.worker_url(&admin_database_url).await?;
        let worker_store = Store::from_pool(
            PgPoolOptions::new()
                .max_connections(8)
                .connect(&database_url)
                .await?,
        );
        let aws = services.aws().await;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let t = tag();
        let (queue_url, dlq_url) =
            create_queues(&sqs, &format!("igflow-test-{t}"), Duration::from_secs(30))
                .await
                .context("creating queues in moto (run scripts/services.sh)")?;
        Ok(Self {
            services,
            store,
            worker_store,
            database_url,
            admin_database_url,
            aws,
            sqs,
            queue_url,
            dlq_url,
            graph: GraphTestServer::start(0).await?,
            redis_prefix: format!("igflow-test:{t}:"),
            secrets_prefix: format!("igflow-test/{t}/"),
            app_secret: SecretString::from(format!("app-secret-{t}")),
            verify_token: SecretString::from(format!("verify-{t}")),
            http: reqwest::Client::new(),
        })
    }

    pub fn tokens(&self) -> Tokens {
        Tokens::new(
            aws_sdk_secretsmanager::Client::new(&self.aws),
            SecretsConfig {
                prefix: self.secrets_prefix.clone(),
                cache_ttl: Duration::from_secs(60),
            },
        )
    }

    /// Applies a campaign file as `igflow-worker apply` does.
    pub async fn apply(&self, yaml: &str) -> Result<ApplySummary, ApplyError> {
        let file = CampaignFile::parse(yaml).map_err(|e| ApplyError::Invalid(e.problems))?;
        // Meta knows which account a token acts for: so does the Graph test server.
        for account in &file.accounts {
            if let Some(TokenSource::Inline(token)) = account.token_source() {
                self.graph
                    .token_belongs_to(token.expose_secret(), account.ig_user_id.as_str());
            }
        }
        apply(
            &file,
            "test.yaml",
            &self.store,
            &self.tokens(),
            &Env::from_map(HashMap::new()),
        )
        .await
    }

    /// The Secrets Manager secret the webhook reads its keys from.
    pub fn webhook_secret_id(&self) -> String {
        format!("{}webhook", self.secrets_prefix)
    }

    /// Creates or replaces the webhook's secret with these app secrets and the verify token.
    pub async fn put_webhook_secret(&self, app_secrets: &[&SecretString]) -> anyhow::Result<()> {
        let doc = serde_json::json!({
            "app_secrets": app_secrets.iter().map(|s| s.expose_secret()).collect::<Vec<_>>(),
            "verify_token": self.verify_token.expose_secret(),
        });
        let secret = SecretString::from(doc.to_string());
        self.tokens()
            .put(&self.webhook_secret_id(), &secret)
            .await?;
        Ok(())
    }

    /// The webhook's Router and metrics, with its keys read from Secrets Manager (refreshed
    /// every second) and SQS as its sink: the production wiring, without
    /// `IGFLOW_DELETION_STATUS_URL` (its default).
    pub async fn webhook_app(&self) -> anyhow::Result<(axum::Router, Arc<Metrics>)> {
        self.webhook_app_with(None).await
    }

    /// [`TestEnv::webhook_app`] with the data deletion status page set (or not).
    pub async fn webhook_app_with(
        &self,
        deletion_status_url: Option<&str>,
    ) -> anyhow::Result<(axum::Router, Arc<Metrics>)> {
        let (state, metrics) = self.webhook_state(deletion_status_url).await?;
        Ok((igflow_webhook::app(state, WEBHOOK_MAX_BODY_BYTES), metrics))
    }

    /// Creates an S3 bucket for the raw archive, named after the test.
    pub async fn create_archive_bucket(&self) -> anyhow::Result<String> {
        let bucket = format!("igflow-test-{}", tag());
        runtime::s3_client(&self.aws, runtime::AwsCalls::Worker)
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .context("creating a bucket in moto (run scripts/services.sh)")?;
        Ok(bucket)
    }

    /// Serves the webhook keeping every verified delivery in `bucket`, as deployed.
    pub async fn start_archiving_webhook(&self, bucket: &str) -> anyhow::Result<Webhook> {
        let (state, metrics) = self.webhook_state(None).await?;
        let archive = DeliveryArchive::new(
            runtime::s3_client(&self.aws, runtime::AwsCalls::Archive),
            bucket.to_owned(),
            Arc::clone(&metrics),
        );
        let app = igflow_webhook::app(
            state.with_archive(Some(Arc::new(archive))),
            WEBHOOK_MAX_BODY_BYTES,
        );
        let base = crate::serve_local(app, 0).await?;
        Ok(Webhook {
            url: format!("{base}/webhook"),
            base,
            metrics,
        })
    }

    async fn webhook_state(
        &self,
        deletion_status_url: Option<&str>,
    ) -> anyhow::Result<(AppState, Arc<Metrics>)> {
        self.put_webhook_secret(&[&self.app_secret]).await?;
        let source = KeySource::SecretsManager {
            secret_id: self.webhook_secret_id(),
            refresh: Duration::from_secs(1),
        };
        let keys = load_keys(&source, &self.aws).await?;
        let metrics = Arc::new(Metrics::default());
        let sink = Arc::new(SqsSink::new(
            self.sqs.clone(),
            self.queue_url.clone(),
            self.dlq_url.clone(),
            Arc::clone(&metrics),
        ));
        let state = AppState::new(keys, sink, Arc::clone(&metrics), false)
            .with_deletion_status_url(deletion_status_url.map(str::to_owned));
        Ok((state, metrics))
    }

    /// Serves the webhook on a free port.
    pub async fn start_webhook(&self) -> anyhow::Result<Webhook> {
        self.start_webhook_with(None).await
    }

    /// Serves the webhook on a free port, with the data deletion status page set (or not).
    pub async fn start_webhook_with(
        &self,
        deletion_status_url: Option<&str>,
    ) -> anyhow::Result<Webhook> {
        let (app, metrics) = self.webhook_app_with(deletion_status_url).await?;
        let base = crate::serve_local(app, 0).await?;
        Ok(Webhook {
            url: format!("{base}/webhook"),
            base,
            metrics,
        })
    }

    /// The worker's environment, as a deployment would set it.
    pub fn worker_env(&self) -> HashMap<String, String> {
        HashMap::from([
            ("REDIS_URL".into(), self.services.redis_url.clone()),
            ("IGFLOW_REDIS_PREFIX".into(), self.redis_prefix.clone()),
            ("IGFLOW_QUEUE_URL".into(), self.queue_url.clone()),
            ("IGFLOW_GRAPH_API_URL".into(), self.graph.url.clone()),
            ("IGFLOW_SECRETS_PREFIX".into(), self.secrets_prefix.clone()),
            ("IGFLOW_CONSUMERS".into(), "2".into()),
            ("IGFLOW_WAIT_SECONDS".into(), "1".into()),
            // Short, so that copies left for a busy event come back within a test.
            ("IGFLOW_VISIBILITY_SECONDS".into(), "5".into()),
            ("IGFLOW_GRAPH_TIMEOUT_MS".into(), "2000".into()),
            // Meta's hourly DM budgets would stretch the fault tests over hours; the rate
            // tests set their own.
            ("IGFLOW_PRIVATE_REPLIES_PER_HOUR".into(), "10000000".into()),
            ("IGFLOW_AUTOMATED_DMS_PER_HOUR".into(), "10000000".into()),
            ("IGFLOW_SEND_API_PER_SECOND".into(), "1000".into()),
        ])
    }

    pub async fn start_worker(&self) -> anyhow::Result<RunningWorker> {
        self.start_worker_with(&[], self.worker_store.clone()).await
    }

    /// The account lifecycle jobs as a worker runs them, outside a worker, with reconciliation
    /// unhurried by its grace time and read spacing, and these settings.
    pub async fn lifecycle(&self, overrides: &[(&str, &str)]) -> anyhow::Result<Lifecycle> {
        let mut vars = self.worker_env();
        vars.insert("IGFLOW_RECONCILE_GRACE_SECONDS".into(), "0".into());
        vars.insert("IGFLOW_RECONCILE_READS_PER_HOUR".into(), "3600000".into());
        vars.extend(overrides.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        let config = RunConfig::from_env(&Env::from_map(vars))?;
        Ok(Lifecycle::connect(config, self.worker_store.clone(), &self.aws).await?)
    }

    /// An in-process worker that a test drives one batch at a time.
    pub async fn stepped_worker(&self) -> anyhow::Result<SteppedWorker> {
        let config = RunConfig::from_env(&Env::from_map(self.worker_env()))?;
        let worker = Worker::build(config, self.worker_store.clone(), &self.aws).await?;
        Ok(SteppedWorker { worker })
    }

    /// An in-process worker with some settings overridden and its own store (for example
    /// one that reaches Postgres through a proxy).
    pub async fn start_worker_with(
        &self,
        overrides: &[(&str, &str)],
        store: Store,
    ) -> anyhow::Result<RunningWorker> {
        let mut env = self.worker_env();
        env.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = RunConfig::from_env(&Env::from_map(env))?;
        let worker = Worker::build(config, store, &self.aws).await?;
        let stats = worker.stats();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(worker.run(shutdown.clone()));
        Ok(RunningWorker {
            stats,
            shutdown,
            handle,
        })
    }

    /// POSTs `body` to the webhook signed with the app secret, as Meta does.
    pub async fn post_signed(
        &self,
        webhook: &str,
        body: &str,
    ) -> anyhow::Result<reqwest::StatusCode> {
        let signature = sign(&self.app_secret, body.as_bytes());
        self.post_with(webhook, body, Some(&signature)).await
    }

    /// POSTs `body` with the given `X-Hub-Signature-256` value (or none).
    pub async fn post_with(
        &self,
        webhook: &str,
        body: &str,
        signature: Option<&str>,
    ) -> anyhow::Result<reqwest::StatusCode> {
        let mut request = self
            .http
            .post(webhook)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(s) = signature {
            request = request.header("X-Hub-Signature-256", s);
        }
        Ok(request.send().await?.status())
    }

    /// POSTs a form body (`signed_request=...`) as Meta posts its app callbacks; returns the
    /// status and the JSON answer (`null` when the answer is not JSON).
    pub async fn post_form(
        &self,
        url: &str,
        form_body: &str,
    ) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
        let response = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body.to_owned())
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// The environment of an `igflow-worker run` process against this test's services.
    pub fn worker_process_env(&self, overrides: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env = self.worker_env();
        env.extend([
            ("DATABASE_URL".into(), self.database_url.clone()),
            (
                "AWS_ENDPOINT_URL".into(),
                self.services.aws_endpoint.clone(),
            ),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("RUST_LOG".into(), "info".into()),
        ]);
        env.extend(
            overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env
    }

    /// Runs an `igflow-worker` command to its end (the binary must be built): whether it
    /// succeeded, and its output.
    pub async fn worker_command(
        &self,
        args: &[&str],
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<(bool, String)> {
        let out = tokio::process::Command::new(workspace_bin("igflow-worker")?)
            .args(args)
            .envs(self.worker_process_env(overrides))
            .output()
            .await?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    }

    /// Starts `igflow-worker run` as its own process (logs in the system temp directory).
    pub fn spawn_worker_process(
        &self,
        name: &str,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Proc> {
        let dir = std::env::temp_dir().join("igflow-tests");
        std::fs::create_dir_all(&dir)?;
        let log = dir.join(format!("{}{name}.log", self.redis_prefix.replace(':', "-")));
        Proc::spawn(
            &workspace_bin("igflow-worker")?,
            &["run"],
            &self.worker_process_env(overrides),
            &log,
        )
    }

    /// Where every comment ended: acted on at the Graph test server, recorded as failed for
    /// good, or in the DLQ; and which were acted on more than once.
    pub async fn accounting(&self, comment_ids: &[String]) -> anyhow::Result<Accounting> {
        let calls = self.graph.calls();
        let dlq = Dlq::connect(
            self.sqs.clone(),
            self.queue_url.clone(),
            self.worker_store.clone(),
        )
        .await?;
        let letters = dlq.peek(10_000).await?;
        dlq.release(&letters).await?;
        let in_dlq: std::collections::HashSet<String> =
            letters.iter().filter_map(|l| l.event_id.clone()).collect();
        let failed: Vec<String> = sqlx::query_scalar(
            "select distinct event_id from activity
             where step <> 'decision' and outcome in ('failed', 'dropped', 'skipped') and detail is not null",
        )
        .fetch_all(self.store.pool())
        .await?;
        let mut a = Accounting {
            events: comment_ids.len(),
            ..Accounting::default()
        };
        for id in comment_ids {
            let accepted = |private: bool| {
                calls
                    .iter()
                    .filter(|c| c.status == 200)
                    .filter(|c| match &c.kind {
                        CallKind::PrivateReply { comment_id, .. } => private && comment_id == id,
                        CallKind::PublicReply { comment_id } => !private && comment_id == id,
                        CallKind::Message { .. } => false,
                    })
                    .count()
            };
            let (private, public) = (accepted(true), accepted(false));
            let event = format!("comment:{id}");
            if private > 1 || public > 1 {
                a.doubled.push(id.clone());
            }
            if private == 1 && public == 1 {
                a.acted += 1;
            } else if failed.contains(&event) {
                a.permanent += 1;
            } else if in_dlq.contains(&event) {
                a.in_dlq += 1;
            } else {
                a.missing.push(id.clone());
            }
        }
        a.attempts = calls.len();
        a.dlq_messages = letters.len();
        a.uncertain =
            sqlx::query_scalar("select count(*) from activity where outcome = 'uncertain'")
                .fetch_one(self.store.pool())
                .await?;
        Ok(a)
    }

    /// Waits until every comment is accounted for (see [`TestEnv::accounting`]).
    pub async fn settled(
        &self,
        comment_ids: &[String],
        timeout: Duration,
    ) -> anyhow::Result<Accounting> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let a = self.accounting(comment_ids).await?;
            if a.missing.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(a);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// (visible, in flight) of the events queue.
    pub async fn queue_depth(&self) -> anyhow::Result<(u64, u64)> {
        queue_depth(&self.sqs, &self.queue_url).await
    }

    /// A client on the test's Redis.
    pub async fn redis(&self) -> anyhow::Result<fred::prelude::Client> {
        use fred::prelude::{ClientLike, Config};
        let redis = fred::prelude::Client::new(
            Config::from_url(&self.services.redis_url)?,
            None,
            None,
            None,
        );
        redis.init().await?;
        Ok(redis)
    }

    /// The keys of this test's fleet matching `pattern` under its prefix (`slot:*`).
    pub async fn redis_keys(
        &self,
        redis: &fred::prelude::Client,
        pattern: &str,
    ) -> anyhow::Result<Vec<String>> {
        use fred::prelude::ClientLike;
        let pattern = format!("{}{pattern}", self.redis_prefix);
        Ok(redis.custom(fred::cmd!("KEYS"), vec![pattern]).await?)
    }

    /// Activity rows as (event_id, step, outcome), in insertion order.
    pub async fn activity(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        Ok(
            sqlx::query_as("select event_id, step, outcome from activity order by id")
                .fetch_all(self.store.pool())
                .await?,
        )
    }
}
