//! Background work beside the event loop: the cache listener, unparking, retention, metrics,
//! summing the dashboard's activity summaries, deliveries to tenants' webhooks, and the
//! account lifecycle jobs (token refresh,
//! subscription audit, reconciliation, archive purge) under per-account leases.

pub mod archive_purge;
pub mod cache_listener;
pub mod lease;
pub mod lifecycle;
pub mod metrics;
pub mod outbound;
pub mod reconcile;
pub mod retention;
pub mod subscriptions;
pub mod summaries;
pub mod token_refresh;
pub mod unpark;
