//! Stage 1, decode: the queue message's body to an [`Envelope`]. Touches nothing.

use aws_sdk_sqs::types::Message;
use igflow_core::envelope::Envelope;

use crate::pipeline::{Dropped, Next};

/// The message's envelope, with its ids on the event span; a body that is not one is
/// poison, left for the DLQ.
pub fn decode(m: &Message) -> Result<Envelope, Next> {
    match Envelope::decode(m.body().unwrap_or_default()) {
        Ok(env) => {
            let span = tracing::Span::current();
            span.record("event_id", tracing::field::display(&env.event_id));
            span.record("account_id", tracing::field::display(&env.account_id));
            span.record("kind", env.kind.as_str());
            Ok(env)
        }
        Err(e) => {
            tracing::error!(error = %e, "poison message left for the DLQ");
            Err(Next::Drop(Dropped::Poison(e.to_string())))
        }
    }
}
