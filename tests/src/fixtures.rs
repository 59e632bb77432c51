//! The campaign set the end-to-end tests run against.

pub const ACCOUNT: &str = "17841400000000000";
pub const TOKEN: &str = "IGAAtest-token-0001";
pub const PRIVATE_REPLY: &str = "Hi! Our price list: https://shop.example/prices \u{1F4B8}";
pub const PUBLIC_REPLIES: [&str; 2] = ["Sent you a DM \u{1F4E9}", "Check your inbox!"];
pub const LAUNCH_MEDIA: &str = "18000000000000099";

/// A campaign file of the test tenant and its one account with `campaigns`: YAML list items
/// indented as under the account's `campaigns:`.
pub fn file_with(campaigns: &str) -> String {
    format!(
        r#"
version: 1
tenant: {{ slug: acme, name: Acme Shoes }}
accounts:
  - ig_user_id: "{ACCOUNT}"
    username: acme.shoes
    login: instagram
    access_token: "{TOKEN}"
    campaigns:
{campaigns}"#
    )
}

/// One account, two campaigns: prices on any media, and a launch campaign scoped to one
/// reel with a higher priority.
pub fn campaigns_yaml() -> String {
    file_with(&format!(
        r#"      - slug: price-list
        name: Price list
        priority: 1
        cooldown_seconds: 3600
        rules:
          - keywords: [price, cost, "how much", कीमत, விலை, prix]
            exclude: [priceless]
        actions:
          private_reply: "{PRIVATE_REPLY}"
          public_replies: ["{}", "{}"]
      - slug: launch
        name: Launch reel
        priority: 10
        media_ids: ["{LAUNCH_MEDIA}"]
        rules:
          - keywords: [link]
            match: contains
        actions:
          private_reply: "Here is the launch link: https://shop.example/launch"
"#,
        PUBLIC_REPLIES[0], PUBLIC_REPLIES[1]
    ))
}
