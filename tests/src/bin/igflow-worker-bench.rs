//! The worker's throughput end to end (scripts/bench-worker.sh): the real `igflow-worker run`
//! process against real Postgres and Redis, each reached through a proxy that counts round
//! trips; an in-memory SQS (`sqs_stub`: moto serves about 130 messages/s); and the Graph test
//! server, answering at once or after `--graph-latency-ms`.
//!
//! The workload: comments spread over `--accounts` accounts, 30% asking for the price (a
//! keyword rule, one private reply each), 5% repeats of an earlier comment (dropped by
//! dedupe), 5% written by the account itself (filtered), the rest matching nothing. A warm-up
//! pass sends one price comment to every account (tokens, caches, connections); the figures are
//! the measured pass's, taken while the queue holds every event at once. Secrets Manager
//! (moto here) is reached through a counting proxy too: in production it is a remote service,
//! so its calls are printed rather than left to cost this machine's CPU unseen.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use clap::Parser;
use igflow_core::signature::VerifiedDelivery;
use igflow_core::splitter::split;
use igflow_tests::cpu;
use igflow_tests::faults::{Proc, TcpProxy};
use igflow_tests::graph_server::{CallKind, Faults};
use igflow_tests::harness::TestEnv;
use igflow_tests::meta::{CommentSpec, comment_delivery};
use igflow_tests::sqs_stub::SqsStub;

#[derive(Parser)]
struct Args {
    /// Events in the measured pass.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    #[arg(long, default_value_t = 1_000)]
    accounts: usize,
    /// How long the Graph test server takes to answer each call (Meta's typical is ~50 ms).
    #[arg(long, default_value_t = 0)]
    graph_latency_ms: u64,
    /// How long the SQS stub takes to answer each call.
    #[arg(long, default_value_t = 0)]
    sqs_latency_ms: u64,
    /// The worker's `IGFLOW_CONSUMERS`.
    #[arg(long, default_value_t = 4)]
    consumers: usize,
    /// The worker's `IGFLOW_MAX_IN_FLIGHT` (default: its own, 50 per consumer).
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// More worker settings, `NAME=value`, e.g. `RUST_LOG=warn`.
    #[arg(long = "worker-env", value_parser = setting)]
    worker_env: Vec<(String, String)>,
}

fn setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not NAME=value"))
}

/// What one event of the workload is.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Price,
    Other,
    Own,
    Repeat,
}

fn draw(rng: &mut fastrand::Rng) -> Kind {
    match rng.u32(0..100) {
        0..30 => Kind::Price,
        30..35 => Kind::Repeat,
        35..40 => Kind::Own,
        _ => Kind::Other,
    }
}

fn account_id(i: usize) -> String {
    format!("178414{i:011}")
}

/// `accounts` accounts of one tenant, each with one keyword campaign answering privately.
fn campaigns_yaml(accounts: usize) -> String {
    let mut yaml = String::from("version: 1\ntenant: { slug: bench, name: Bench }\naccounts:\n");
    for i in 0..accounts {
        let _ = write!(
            yaml,
            r#"  - ig_user_id: "{}"
    username: shop{i}
    login: instagram
    access_token: "IGAAbench-{i}"
    campaigns:
      - slug: prices
        name: Prices
        rules:
          - keywords: [price, cost]
        actions:
          private_reply: "Our prices: https://shop.example/prices"
"#,
            account_id(i)
        );
    }
    yaml
}

/// The queue messages of one pass, as the webhook would have enqueued them, and how many
/// private replies they should cause.
fn workload(pass: u64, events: usize, accounts: usize) -> anyhow::Result<(Vec<String>, usize)> {
    let mut rng = fastrand::Rng::with_seed(pass);
    let (mut bodies, mut replies): (Vec<String>, usize) = (Vec::with_capacity(events), 0);
    for k in 0..events {
        let kind = draw(&mut rng);
        // Meta redelivers what it thinks failed: an event from a little earlier.
        if kind == Kind::Repeat && !bodies.is_empty() {
            let back = rng.usize(1..=bodies.len().min(2_000));
            bodies.push(bodies[bodies.len() - back].clone());
            continue;
        }
        let account = account_id(rng.usize(0..accounts));
        let from = if kind == Kind::Own {
            account.clone()
        } else {
            format!("9{pass}{k:012}")
        };
        replies += usize::from(kind == Kind::Price);
        bodies.push(comment_message(pass, k, &account, &from, kind)?);
    }
    Ok((bodies, replies))
}

/// One price comment per account: every account's row, campaigns and token are loaded and
/// its first private reply sent before the measured pass, as in a fleet that has been running.
fn warm_up(accounts: usize) -> anyhow::Result<Vec<String>> {
    (0..accounts)
        .map(|i| comment_message(1, i, &account_id(i), &format!("91{i:012}"), Kind::Price))
        .collect()
}

/// The queue message of one comment, as the webhook would have enqueued it.
fn comment_message(
    pass: u64,
    k: usize,
    account: &str,
    from: &str,
    kind: Kind,
) -> anyhow::Result<String> {
    let text = if kind == Kind::Price {
        "what's the price?"
    } else {
        "love this colour"
    };
    let comment = CommentSpec::new(&format!("17{pass}{k:014}"), from, text);
    let delivery = comment_delivery(account, &[comment]);
    let received = i64::try_from(igflow_tests::meta::now_ms())?;
    let envelopes = split(
        VerifiedDelivery::vouched_by_operator(delivery.as_bytes()),
        received,
    )?;
    anyhow::ensure!(envelopes.len() == 1, "one comment, one message");
    Ok(envelopes[0].encode())
}

/// What the worker process and its services have done so far.
struct Sample {
    at: Instant,
    cpu_seconds: f64,
    /// Every Postgres and Redis process's CPU time, and the machine's busy and idle time.
    postgres_cpu: f64,
    redis_cpu: f64,
    machine: (f64, f64),
    postgres: u64,
    redis: u64,
    aws: u64,
    sqs: u64,
    deleted: u64,
    graph_calls: usize,
}

struct Bench {
    env: TestEnv,
    sqs: SqsStub,
    postgres: TcpProxy,
    redis: TcpProxy,
    aws: TcpProxy,
    worker: Proc,
}

impl Bench {
    fn sample(&self) -> anyhow::Result<Sample> {
        let queue = self.sqs.counts();
        Ok(Sample {
            at: Instant::now(),
            cpu_seconds: self.worker.cpu_seconds()?,
            postgres_cpu: cpu::program_seconds("postgres")?,
            redis_cpu: cpu::program_seconds("redis-server")?,
            machine: cpu::machine_seconds()?,
            postgres: self.postgres.round_trips(),
            redis: self.redis.round_trips(),
            aws: self.aws.round_trips(),
            sqs: queue.calls,
            deleted: queue.deleted,
            graph_calls: self.env.graph.calls().len(),
        })
    }

    /// Waits for the worker's first round of lifecycle jobs (each account's subscription
    /// audit and reconciliation, due for every account at start, an hour apart after that):
    /// measured with the events, it was two thirds of their pass's statements. Done once no
    /// job is held and the jobs done stop growing for two seconds; returns how many.
    async fn lifecycle_round(&self) -> anyhow::Result<i64> {
        let started = Instant::now();
        let (mut last, mut since) = (-1, Instant::now());
        loop {
            let (done, held): (i64, i64) = sqlx::query_as(
                "select count(*) filter (where next_at > now() and held_until <= now()),
                        count(*) filter (where held_until > now())
                 from job_leases",
            )
            .fetch_one(self.env.store.pool())
            .await?;
            if done != last || held > 0 {
                (last, since) = (done, Instant::now());
            } else if done > 0 && since.elapsed() >= Duration::from_secs(2) {
                return Ok(done);
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "the lifecycle round did not end in 10 minutes ({done} jobs done)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Puts `bodies` on the queue and waits until every message was deleted. Returns a
    /// sample from when the backlog first ran out (every message received at least once):
    /// what follows is the tail of copies deferred for seconds (a repeat that found its
    /// original in flight comes back after 5 s), which the whole pass's rate includes.
    async fn run(&self, bodies: Vec<String>) -> anyhow::Result<Sample> {
        let target = self.sqs.counts().sent + bodies.len() as u64;
        self.sqs.push(bodies);
        let started = Instant::now();
        let mut backlog_end = None;
        loop {
            let c = self.sqs.counts();
            if backlog_end.is_none() && c.visible == 0 {
                backlog_end = Some(self.sample()?);
            }
            if c.deleted >= target && c.visible + c.in_flight + c.delayed == 0 {
                return backlog_end.map_or_else(|| self.sample(), Ok);
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "not drained after 10 minutes: {c:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

async fn start(args: &Args) -> anyhow::Result<Bench> {
    let env = TestEnv::new().await?;
    env.graph.set_faults(Faults {
        latency: Duration::from_millis(args.graph_latency_ms),
        ..Faults::default()
    });
    env.apply(&campaigns_yaml(args.accounts)).await?;
    let sqs = SqsStub::start(Duration::from_millis(args.sqs_latency_ms)).await?;
    let (postgres, database_url) = TcpProxy::in_front_of(&env.database_url).await?;
    let (redis, redis_url) = TcpProxy::in_front_of(&env.services.redis_url).await?;
    let (aws, aws_url) = TcpProxy::in_front_of(&env.services.aws_endpoint).await?;
    let (consumers, in_flight) = (
        args.consumers.to_string(),
        args.max_in_flight
            .unwrap_or(args.consumers * 50)
            .to_string(),
    );
    let mut overrides = vec![
        ("AWS_ENDPOINT_URL", aws_url.as_str()),
        ("AWS_ENDPOINT_URL_SQS", sqs.endpoint.as_str()),
        ("IGFLOW_QUEUE_URL", sqs.queue_url.as_str()),
        ("DATABASE_URL", &database_url),
        ("REDIS_URL", &redis_url),
        ("IGFLOW_CONSUMERS", &consumers),
        ("IGFLOW_MAX_IN_FLIGHT", &in_flight),
        ("IGFLOW_VISIBILITY_SECONDS", "60"),
        ("IGFLOW_SEND_API_PER_SECOND", "100000"),
    ];
    overrides.extend(
        args.worker_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let worker = env.spawn_worker_process("bench", &overrides)?;
    Ok(Bench {
        env,
        sqs,
        postgres,
        redis,
        aws,
        worker,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bench = start(&args).await?;

    let warm_up = warm_up(args.accounts)?;
    let warm_up_events = warm_up.len();
    let warm_up_took = Instant::now();
    bench.run(warm_up).await?;
    println!(
        "warm-up: {warm_up_events} events over {} accounts in {:.1} s",
        args.accounts,
        warm_up_took.elapsed().as_secs_f64()
    );
    let waited = Instant::now();
    let jobs = bench.lifecycle_round().await?;
    println!(
        "lifecycle round: {jobs} account jobs done, {:.1} s more before the measured pass",
        waited.elapsed().as_secs_f64()
    );
    bench.sqs.take_latencies();
    let replies_before = bench
        .env
        .graph
        .accepted(|k| matches!(k, CallKind::PrivateReply { .. }))
        .len();

    let (bodies, expected) = workload(2, args.events, args.accounts)?;
    let n = bodies.len() as f64;
    let before = bench.sample()?;
    let backlog_end = bench.run(bodies).await?;
    let after = bench.sample()?;
    let replies = bench
        .env
        .graph
        .accepted(|k| matches!(k, CallKind::PrivateReply { .. }))
        .len()
        - replies_before;

    let seconds = after.at.duration_since(before.at).as_secs_f64();
    let mut latencies = bench.sqs.take_latencies();
    latencies.sort_unstable();
    println!(
        "measured: {n} events, {} accounts, graph latency {} ms, consumers {}, max in flight {}",
        args.accounts,
        args.graph_latency_ms,
        args.consumers,
        args.max_in_flight.unwrap_or(args.consumers * 50)
    );
    let backlog_seconds = backlog_end.at.duration_since(before.at).as_secs_f64();
    let settled_in_backlog = (backlog_end.deleted - before.deleted) as f64;
    println!(
        "  events/s:             {:.0} over the whole pass ({seconds:.1} s); {:.0} while the backlog lasted ({settled_in_backlog} settled in {backlog_seconds:.1} s)",
        n / seconds,
        settled_in_backlog / backlog_seconds
    );
    println!(
        "  graph calls/s:        {:.0}",
        (after.graph_calls - before.graph_calls) as f64 / seconds
    );
    println!(
        "  receive->delete:      p50 {:.1} ms, p99 {:.1} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    let per_1k = |before: f64, after: f64| (after - before) * 1000.0 / n;
    println!(
        "  worker CPU:           {:.3} s per 1,000 events",
        per_1k(before.cpu_seconds, after.cpu_seconds)
    );
    println!(
        "  services' CPU:        Postgres {:.3}, Redis {:.3} s per 1,000 events (every process of each on this machine)",
        per_1k(before.postgres_cpu, after.postgres_cpu),
        per_1k(before.redis_cpu, after.redis_cpu)
    );
    let (busy, idle) = (
        backlog_end.machine.0 - before.machine.0,
        backlog_end.machine.1 - before.machine.1,
    );
    println!(
        "  machine CPU:          {:.3} s per 1,000 events, {:.0}% idle while the backlog lasted",
        per_1k(before.machine.0, after.machine.0),
        100.0 * idle / (busy + idle)
    );
    println!(
        "  round trips/event:    Postgres {:.2}, Redis {:.2}, SQS calls {:.2}",
        (after.postgres - before.postgres) as f64 / n,
        (after.redis - before.redis) as f64 / n,
        (after.sqs - before.sqs) as f64 / n
    );
    println!(
        "  AWS round trips:      {} in all (Secrets Manager on moto; SQS is the stub)",
        after.aws - before.aws
    );
    println!(
        "  worker peak RSS:      {:.1} MiB",
        bench.worker.peak_rss_kib()? as f64 / 1024.0
    );
    println!("  private replies:      {replies} sent, {expected} expected");
    anyhow::ensure!(
        replies == expected,
        "{replies} private replies for {expected} price comments"
    );
    Ok(())
}
