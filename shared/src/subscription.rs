//! The webhook fields igflow acts on: subscribed when an account connects, and checked (and
//! subscribed again) by the worker's subscription audit.

pub const WEBHOOK_FIELDS: &[&str] = &[
    "comments",
    "messages",
    "message_reactions",
    "messaging_postbacks",
    "messaging_seen",
    "messaging_referral",
    "mentions",
];

/// The fields of [`WEBHOOK_FIELDS`] missing from `subscribed`, in that order.
pub fn missing<'a>(subscribed: &[impl AsRef<str>]) -> Vec<&'a str> {
    WEBHOOK_FIELDS
        .iter()
        .copied()
        .filter(|f| !subscribed.iter().any(|s| s.as_ref() == *f))
        .collect()
}

/// The `subscribed_fields` parameter Meta takes: the field names joined by commas.
pub fn parameter() -> String {
    WEBHOOK_FIELDS.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_keep_their_order() {
        assert!(missing(WEBHOOK_FIELDS).is_empty());
        assert_eq!(
            missing(&["messages", "comments"]),
            [
                "message_reactions",
                "messaging_postbacks",
                "messaging_seen",
                "messaging_referral",
                "mentions"
            ]
        );
        assert!(parameter().starts_with("comments,messages,"));
    }
}
