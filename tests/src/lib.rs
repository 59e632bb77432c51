//! Test support for igflow: the Graph API test server, Meta-shaped deliveries and a harness
//! that runs the real webhook and worker against real Postgres, Redis and the SQS and Secrets
//! Manager APIs (moto). Also used by the local demo (`igflow-demo`).

pub mod faults;
pub mod fixtures;
pub mod graph_server;
pub mod harness;
pub mod locked;
pub mod meta;
pub mod ollama_server;
