//! Telegram: the Bot API's `sendMessage` (https://core.telegram.org/bots/api#sendmessage),
//! POSTed as JSON to `{url}/bot<token>/sendMessage`. The channel's URL is the API's
//! (`https://api.telegram.org`, or a self-hosted Bot API server) with the chat in its
//! query, `?chat_id=-1001234567890` or `?chat_id=@channelname`; the token is the bot's,
//! from @BotFather, and stays out of the stored URL so that lists can redact it.

use serde_json::json;

use super::{json_request, truncate, Channel, Notification};
use crate::http::Request;

/// Telegram refuses a message over 4096 characters.
const TEXT_MAX: usize = 4096;

/// The `chat_id` in `url`'s query, if any.
pub(super) fn chat_id(url: &str) -> Option<String> {
    let uri = url.parse::<hyper::Uri>().ok()?;
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("chat_id="))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

pub(super) fn request(channel: &Channel, n: &Notification) -> Request {
    // `Channel::new` refused a URL without a chat id and a channel without a token.
    let chat_id = chat_id(&channel.url).unwrap_or_default();
    let token = channel.token.as_deref().unwrap_or_default();
    let base = channel.url.split('?').next().unwrap_or_default().trim_end_matches('/');
    let mut text = n.title();
    for line in n.lines() {
        text.push('\n');
        text.push_str(&line);
    }
    // Plain text (no parse_mode): nothing in an alert message needs escaping.
    let body = json!({"chat_id": chat_id, "text": truncate(&text, TEXT_MAX), "disable_web_page_preview": true});
    json_request(format!("{base}/bot{token}/sendMessage"), &body)
}
