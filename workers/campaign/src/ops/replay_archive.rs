//! `igflow-worker replay --from TIME --to TIME`: reads the deliveries the webhook archived
//! with a receive time in the window (`igflow_core::archive`) and enqueues them split exactly
//! as the webhook split them, with their original receive time. The dedupe drops every event
//! already handled, so only events whose handling was lost are acted on; running it twice is
//! safe. One listing page (up to 1,000 deliveries) is in memory at a time.

use aws_sdk_s3::error::DisplayErrorContext;
use futures_util::{StreamExt, TryStreamExt};
use igflow_core::archive::{ArchiveKey, TimeWindow};
use igflow_core::envelope::Envelope;
use igflow_core::runtime::queue::QueueSender;
use igflow_core::signature::VerifiedDelivery;
use igflow_core::splitter::split;
use tracing::Instrument;

use crate::ops::replay::{ReplayError, enqueue};

/// Objects read at once: S3 serves far more, the queue is the slower side.
const READS_IN_FLIGHT: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveReplayError {
    #[error(
        "listing {prefix} in bucket {bucket}: {detail}; check IGFLOW_ARCHIVE_BUCKET and s3:ListBucket, then run the same window again"
    )]
    List {
        bucket: String,
        prefix: String,
        detail: String,
    },
    #[error("reading {key} from bucket {bucket}: {detail}; run the same window again")]
    Read {
        bucket: String,
        key: String,
        detail: String,
    },
    #[error(
        "{key}: the body does not hash to the delivery id in its name, so it is not what the webhook wrote; move it out of the bucket and run the window again"
    )]
    Altered { key: String },
    #[error("{0}; run the same window again")]
    Queue(#[from] ReplayError),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WindowSummary {
    pub deliveries: usize,
    pub envelopes: usize,
    /// Archived deliveries that are not Meta payloads (the webhook answered them 400 and
    /// enqueued nothing): skipped, named for the operator.
    pub not_meta: Vec<String>,
}

/// The webhook's raw archive, read-only.
pub struct Archive {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl Archive {
    pub fn new(s3: aws_sdk_s3::Client, bucket: String) -> Self {
        Self { s3, bucket }
    }

    /// Replays every delivery received in `window`, oldest first.
    pub async fn replay(
        &self,
        window: TimeWindow,
        queue: &QueueSender,
    ) -> Result<WindowSummary, ArchiveReplayError> {
        let mut summary = WindowSummary::default();
        for prefix in window.hour_prefixes() {
            let span = tracing::info_span!("replay_hour", %prefix);
            self.replay_hour(&prefix, window, queue, &mut summary)
                .instrument(span)
                .await?;
        }
        Ok(summary)
    }

    async fn replay_hour(
        &self,
        prefix: &str,
        window: TimeWindow,
        queue: &QueueSender,
        summary: &mut WindowSummary,
    ) -> Result<(), ArchiveReplayError> {
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ArchiveReplayError::List {
                bucket: self.bucket.clone(),
                prefix: prefix.to_owned(),
                detail: DisplayErrorContext(&e).to_string(),
            })?;
            let keys: Vec<ArchiveKey> = page
                .contents()
                .iter()
                .filter_map(|o| o.key().and_then(ArchiveKey::parse))
                .filter(|k| window.contains(k))
                .collect();
            let bodies: Vec<(ArchiveKey, Vec<u8>)> = futures_util::stream::iter(keys)
                .map(|key| self.read(key))
                .buffered(READS_IN_FLIGHT)
                .try_collect()
                .await?;
            let mut envelopes: Vec<Envelope> = Vec::new();
            for (key, body) in &bodies {
                match split(
                    VerifiedDelivery::vouched_by_operator(body),
                    key.received_at_ms,
                ) {
                    Ok(split) => envelopes.extend(split),
                    Err(e) => {
                        let name = key.to_string();
                        tracing::warn!(key = %name, error = %e, "archived delivery is not a Meta payload; skipped");
                        summary.not_meta.push(name);
                    }
                }
            }
            enqueue(queue, &envelopes).await?;
            summary.deliveries += bodies.len();
            summary.envelopes += envelopes.len();
            tracing::info!(
                deliveries = bodies.len(),
                envelopes = envelopes.len(),
                "archived deliveries replayed"
            );
        }
        Ok(())
    }

    /// One archived body, checked against the delivery id in its name.
    async fn read(&self, key: ArchiveKey) -> Result<(ArchiveKey, Vec<u8>), ArchiveReplayError> {
        let name = key.to_string();
        let read_error = |detail: String| ArchiveReplayError::Read {
            bucket: self.bucket.clone(),
            key: name.clone(),
            detail,
        };
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&name)
            .send()
            .await
            .map_err(|e| read_error(DisplayErrorContext(&e).to_string()))?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| read_error(e.to_string()))?
            .to_vec();
        if VerifiedDelivery::vouched_by_operator(&body).delivery_id() != key.delivery_id {
            return Err(ArchiveReplayError::Altered { key: name });
        }
        Ok((key, body))
    }
}
