//! Slack: an incoming-webhook POST with `text` (the notification's fallback) and blocks, a
//! header and the text as one mrkdwn section (https://api.slack.com/messaging/webhooks;
//! limits: https://api.slack.com/reference/block-kit/blocks).

use serde_json::json;

use super::{json_request, truncate, Channel, Notification};
use crate::http::Request;

/// A header block's text is at most 150 characters, a section's 3000.
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3000;

pub(super) fn request(channel: &Channel, n: &Notification) -> Request {
    let title = n.title();
    let text = n.lines().join("\n");
    let body = json!({
        "text": title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&title, HEADER_MAX)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&escape(&text), SECTION_MAX)}},
        ],
    });
    json_request(channel.url.clone(), &body)
}

/// Slack reads `&`, `<` and `>` in mrkdwn as markup (links, mentions); an alert message
/// shows them as written.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
