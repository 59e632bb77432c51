//! Measures the fleet-wide rate budgets against a real Redis: how many budget checks (the
//! reservation every Graph API call makes) one process makes per second, and the latency each
//! adds, with checks in flight together on one multiplexed (pipelined) connection. `scripts/bench-ratelimit.sh` runs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use igflow_core::ids::{EventId, IgUserId};
use igflow_tests::harness::{Services, tag};
use igflow_worker::clients::ratelimit::{Budgets, CallClass, Rate, RateLimiter};
use igflow_worker::clients::redis::{RedisKeys, connect};
use secrecy::SecretString;

#[derive(Parser)]
struct Args {
    /// Checks in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Checks per task.
    #[arg(long, default_value_t = 2_000)]
    per_task: usize,
    /// Accounts the checks are spread over.
    #[arg(long, default_value_t = 1_000)]
    accounts: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn run<F, Fut>(name: &str, args: &Args, check: F)
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let check = Arc::new(check);
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|t| {
            let check = Arc::clone(&check);
            let n = args.per_task;
            tokio::spawn(async move {
                let mut took = Vec::with_capacity(n);
                for i in 0..n {
                    let at = Instant::now();
                    check(t, i).await;
                    took.push(at.elapsed());
                }
                took
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    let elapsed = started.elapsed();
    all.sort();
    println!(
        "{name}: {} checks in {:.2} s = {:.0}/s; latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} in flight)",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        args.concurrency,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let redis = connect(&SecretString::from(Services::from_env().redis_url)).await?;
    // Budgets far above what the run sends: every check answers "now", as in normal traffic.
    let huge = Budgets {
        private_replies: Rate::per_second(10_000_000),
        send_api: Rate::per_second(10_000_000),
        automated_dms: Rate::per_second(10_000_000),
    };
    let limiter = RateLimiter::new(
        redis,
        RedisKeys::new(format!("igflow-bench:{}:", tag())),
        huge,
        Duration::from_secs(10),
    );
    let accounts: Arc<Vec<IgUserId>> = Arc::new(
        (0..args.accounts)
            .map(|i| IgUserId::parse(format!("1784140{i:010}")))
            .collect::<Result<_, _>>()?,
    );
    run(
        "budget check: one reservation over 3 budgets and usage pacing, one EVALSHA",
        &args,
        move |t, i| {
            let (l, a) = (Arc::clone(&limiter), Arc::clone(&accounts));
            async move {
                let account = &a[(t * 7919 + i) % a.len()];
                let event = EventId::parse(format!("comment:{t}-{i}")).expect("a valid id");
                let _ = l
                    .reserve(
                        &event,
                        "private_reply",
                        account,
                        CallClass::PrivateReply,
                        &huge,
                        None,
                    )
                    .await;
            }
        },
    )
    .await;
    Ok(())
}
