//! Gotify: a JSON message (title, message, priority 0–10) POSTed to `{url}/message` with
//! the application token in `X-Gotify-Key`
//! (https://gotify.net/docs/pushmsg; priorities: https://gotify.net/docs/msgextras).

use recorder::status::Level;
use serde_json::json;

use super::{json_request, Channel, Notification};
use crate::http::Request;

pub(super) fn request(channel: &Channel, n: &Notification) -> Request {
    // Gotify's Android client alerts loudly from 8 and shows a notification from 4.
    let priority = match n.worst() {
        Some(Level::Critical | Level::Offline) => 8,
        Some(_) => 5,
        None => 3,
    };
    let body = json!({"title": n.title(), "message": n.lines().join("\n"), "priority": priority});
    let mut request = json_request(format!("{}/message", channel.url.trim_end_matches('/')), &body);
    // `Channel::new` refuses a gotify channel without a token.
    request.headers.push(("x-gotify-key".into(), channel.token.clone().unwrap_or_default()));
    request
}
