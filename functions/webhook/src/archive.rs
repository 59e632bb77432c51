//! The raw archive: every verified delivery, byte for byte, as one S3 object (layout in
//! `igflow_core::archive`), written alongside the enqueue. The queue decides Meta's answer;
//! a failed archive write is counted (`ArchiveFailures`, alarmed) and logged, never a reason to
//! refuse a delivery the queue took. Why one object per delivery: docs/architecture.md.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use axum::body::Bytes;
use igflow_core::archive::{ArchiveKey, META_DELIVERY_ID, META_RECEIVED_AT_MS, META_SIGNATURE};

use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
#[error(
    "{key} not written to bucket {bucket} ({detail}); the delivery was still enqueued, but a replay by time will not find it: check the bucket and the webhook's s3:PutObject"
)]
pub struct ArchiveError {
    pub key: String,
    pub bucket: String,
    pub detail: String,
}

pub struct DeliveryArchive {
    s3: aws_sdk_s3::Client,
    bucket: String,
    metrics: Arc<Metrics>,
}

impl DeliveryArchive {
    pub fn new(s3: aws_sdk_s3::Client, bucket: String, metrics: Arc<Metrics>) -> Self {
        Self {
            s3,
            bucket,
            metrics,
        }
    }

    /// Writes the delivery's body with its signature header and receive time as metadata.
    pub async fn keep(
        &self,
        body: Bytes,
        signature: Option<&str>,
        key: &ArchiveKey,
    ) -> Result<(), ArchiveError> {
        let name = key.to_string();
        let started = Instant::now();
        let mut put = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(&name)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .metadata(META_RECEIVED_AT_MS, key.received_at_ms.to_string())
            .metadata(META_DELIVERY_ID, &key.delivery_id);
        if let Some(signature) = signature {
            put = put.metadata(META_SIGNATURE, signature);
        }
        match put.send().await {
            Ok(_) => {
                self.metrics.archive_latency(started.elapsed());
                Ok(())
            }
            Err(e) => Err(ArchiveError {
                key: name,
                bucket: self.bucket.clone(),
                detail: DisplayErrorContext(&e).to_string(),
            }),
        }
    }
}
