//! The operator's commands: the CLI and what it runs once (apply, simulate, dlq, replay
//! from a file or the archive, migrate).

pub mod apply;
pub mod archive;
pub mod cli;
pub mod dlq;
pub mod migrate;
pub mod replay;
pub mod simulate;
