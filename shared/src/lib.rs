//! igflow's domain: what Meta sends, what goes on the queue, which campaign fires and what it
//! does. Nothing in here performs I/O (the optional `runtime` feature holds the few process
//! set-up helpers both binaries share), so every rule can be tested in microseconds.

pub mod archive;
pub mod campaign;
pub mod campaign_file;
pub mod emf;
pub mod env;
pub mod envelope;
pub mod event;
pub mod failure;
pub mod graph_error;
pub mod ids;
pub mod matcher;
mod normalize;
pub mod plan;
pub mod signature;
pub mod signed_request;
pub mod splitter;
pub mod subscription;
pub mod template;
pub mod tester;
pub mod time;
pub mod window;

#[cfg(feature = "runtime")]
pub mod runtime;
