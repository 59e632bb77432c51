//! Keeping a lease alive while long work runs: SQS visibility, Redis claims.

use std::future::Future;
use std::time::Duration;

/// Runs `work` to completion, awaiting `beat` every `every` in the meantime.
pub async fn with_heartbeat<T, B, F>(
    work: impl Future<Output = T>,
    every: Duration,
    mut beat: B,
) -> T
where
    B: FnMut() -> F,
    F: Future<Output = ()>,
{
    let every = every.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => beat().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn beats_while_the_work_runs_and_stops_with_it() {
        let beats = AtomicU32::new(0);
        let out = with_heartbeat(
            async {
                tokio::time::sleep(Duration::from_millis(350)).await;
                7
            },
            Duration::from_millis(100),
            || async {
                beats.fetch_add(1, Ordering::Relaxed);
            },
        )
        .await;
        assert_eq!((out, beats.load(Ordering::Relaxed)), (7, 3));
    }
}
