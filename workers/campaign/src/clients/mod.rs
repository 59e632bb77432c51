//! The worker's connections to the systems it talks to: Postgres, Redis, Secrets Manager,
//! the Graph API and Ollama. Each module knows one of them, and classifies its errors.

pub mod answer_cache;
pub mod cache;
pub mod dedupe;
pub mod graph;
pub mod graph_lifecycle;
pub mod ollama;
pub mod ratelimit;
pub mod redis;
pub mod secrets;
pub mod store;
