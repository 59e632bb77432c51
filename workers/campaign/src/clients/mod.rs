//! The worker's connections to the systems it talks to: Postgres, Redis, Secrets Manager
//! and the Graph API.

pub mod cache;
pub mod dedupe;
pub mod graph;
pub mod graph_lifecycle;
pub mod ratelimit;
pub mod redis;
pub mod secrets;
pub mod store;
