//! The webhook's raw archive (`igflow_core::archive`), from the worker's side.
//!
//! `igflow-worker replay --from TIME --to TIME` reads the deliveries archived with a receive
//! time in the window and enqueues them split exactly as the webhook split them, with their
//! original receive time. The dedupe drops every event already handled, so only events whose
//! handling was lost are acted on; running it twice is safe.
//!
//! A data deletion purges the account's deliveries (`Archive::purge`): their names say whose
//! events they carry; the few whose names do not (older names, unsplittable bodies, more
//! accounts than a name holds) are read to tell. A delivery that also carried other accounts'
//! events goes whole: the archive is for replay, the deletion is owed.
//!
//! One listing page (up to 1,000 deliveries) is in memory at a time.

use std::sync::Arc;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::operation::list_objects_v2::paginator::ListObjectsV2Paginator;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures_util::{StreamExt, TryStreamExt};
use igflow_core::archive::{ArchiveKey, PREFIX, TimeWindow, body_concerns};
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

/// A purge that could not finish; the job tries again later (deleting twice is harmless).
#[derive(Debug, thiserror::Error)]
#[error(
    "{call} on bucket {bucket} failed: {detail}; retried later (the worker needs s3:ListBucket, s3:GetObject and s3:DeleteObject under {PREFIX})"
)]
pub struct PurgeError {
    call: &'static str,
    bucket: String,
    detail: String,
}

/// What a purge did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    /// Deliveries listed.
    pub listed: usize,
    /// Deliveries read because their names did not say whose they are.
    pub read: usize,
    /// Deliveries deleted.
    pub deleted: usize,
}

/// The webhook's raw archive.
pub struct Archive {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl Archive {
    pub fn new(s3: aws_sdk_s3::Client, bucket: String) -> Self {
        Self { s3, bucket }
    }

    /// The archive in `bucket`, if one is configured.
    pub fn configured(aws: &aws_config::SdkConfig, bucket: Option<&str>) -> Option<Arc<Self>> {
        bucket.map(|bucket| {
            let s3 = igflow_core::runtime::s3_client(aws, igflow_core::runtime::AwsCalls::Worker);
            Arc::new(Self::new(s3, bucket.to_owned()))
        })
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
        let mut pages = self.listing(prefix).send();
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
        let body = self
            .body(&name)
            .await
            .map_err(|detail| ArchiveReplayError::Read {
                bucket: self.bucket.clone(),
                key: name.clone(),
                detail,
            })?;
        if VerifiedDelivery::vouched_by_operator(&body).delivery_id() != key.delivery_id {
            return Err(ArchiveReplayError::Altered { key: name });
        }
        Ok((key, body))
    }

    /// The objects under `prefix`, a page (up to 1,000) at a time.
    fn listing(&self, prefix: &str) -> ListObjectsV2Paginator {
        self.s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
    }

    /// An object's bytes; the error says why not.
    async fn body(&self, name: &str) -> Result<Vec<u8>, String> {
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(name)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        Ok(object
            .body
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_vec())
    }

    /// Deletes every archived delivery that carries the account's events.
    pub async fn purge(&self, account: &str) -> Result<Purged, PurgeError> {
        let mut done = Purged::default();
        let mut pages = self.listing(PREFIX).send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| self.purge_error("ListObjectsV2", &DisplayErrorContext(&e)))?;
            let mut doomed: Vec<String> = Vec::new();
            let mut unsure: Vec<String> = Vec::new();
            for name in page.contents().iter().filter_map(|o| o.key()) {
                done.listed += 1;
                match ArchiveKey::parse(name).and_then(|k| k.concerns(account)) {
                    Some(true) => doomed.push(name.to_owned()),
                    Some(false) => {}
                    None => unsure.push(name.to_owned()),
                }
            }
            done.read += unsure.len();
            let read: Vec<(String, Vec<u8>)> = futures_util::stream::iter(unsure)
                .map(|name| async move {
                    let body = self.body(&name).await;
                    body.map(|b| (name, b))
                })
                .buffered(READS_IN_FLIGHT)
                .try_collect()
                .await
                .map_err(|detail| self.purge_error("GetObject", &detail))?;
            doomed.extend(
                read.into_iter()
                    .filter(|(_, body)| body_concerns(body, account))
                    .map(|(name, _)| name),
            );
            self.delete(&doomed).await?;
            done.deleted += doomed.len();
        }
        Ok(done)
    }

    /// Deletes the objects (a listing page holds at most 1,000, DeleteObjects' limit).
    async fn delete(&self, names: &[String]) -> Result<(), PurgeError> {
        if names.is_empty() {
            return Ok(());
        }
        let objects = names
            .iter()
            .map(|n| ObjectIdentifier::builder().key(n).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.purge_error("DeleteObjects", &e))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| self.purge_error("DeleteObjects", &e))?;
        let out = self
            .s3
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| self.purge_error("DeleteObjects", &DisplayErrorContext(&e)))?;
        match out.errors().first() {
            None => Ok(()),
            Some(e) => Err(self.purge_error(
                "DeleteObjects",
                &format!(
                    "{} of {} not deleted, first {}: {}",
                    out.errors().len(),
                    names.len(),
                    e.key().unwrap_or("?"),
                    e.message().unwrap_or("no message")
                ),
            )),
        }
    }

    fn purge_error(&self, call: &'static str, detail: &dyn std::fmt::Display) -> PurgeError {
        PurgeError {
            call,
            bucket: self.bucket.clone(),
            detail: detail.to_string(),
        }
    }
}
