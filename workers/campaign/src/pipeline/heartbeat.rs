//! Keeping a lease alive while long work runs: SQS visibility, Redis claims.

use std::future::Future;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

/// Runs `work` to completion, awaiting `beat` every `every` in the meantime. The work is
/// polled first and all along, also while a beat is in flight: a slow beat (SQS or Redis
/// answering late) must never hold the work up, and beats missed meanwhile are not made up
/// in a burst.
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
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            _ = tick.tick() => {
                let beating = beat();
                tokio::select! {
                    biased;
                    out = &mut work => return out,
                    () = beating => {}
                }
            }
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

    #[tokio::test(start_paused = true)]
    async fn a_slow_beat_never_holds_the_work_up() {
        let started = tokio::time::Instant::now();
        let beats = AtomicU32::new(0);
        let out = with_heartbeat(
            async {
                tokio::time::sleep(Duration::from_millis(350)).await;
                7
            },
            Duration::from_millis(100),
            || async {
                beats.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(10)).await;
            },
        )
        .await;
        assert_eq!(out, 7);
        assert_eq!(started.elapsed(), Duration::from_millis(350));
        assert_eq!(
            beats.load(Ordering::Relaxed),
            1,
            "one beat, still in flight"
        );
    }
}
