//! Background work beside the event loop: unparking, retention, metrics.

pub mod metrics;
pub mod retention;
pub mod unpark;
