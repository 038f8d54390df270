//! Discord: an execute-webhook POST to the channel's webhook URL with one embed (title,
//! the text as its description, a colour by severity) and no mentions
//! (https://discord.com/developers/docs/resources/webhook#execute-webhook).

use recorder::status::Level;
use serde_json::json;

use super::{json_request, truncate, Channel, Notification};
use crate::http::Request;

/// Discord refuses an embed whose title is over 256 characters or description over 4096.
const TITLE_MAX: usize = 256;
const DESCRIPTION_MAX: usize = 4096;

pub(super) fn request(channel: &Channel, n: &Notification) -> Request {
    let color = match n.worst() {
        Some(Level::Critical | Level::Offline) => 0xD0_3B_3B,
        Some(_) => 0xE0_A0_30,
        None => 0x3B_A5_5D,
    };
    let body = json!({
        "username": "proxmox-monitor",
        // An alert message quoting "@everyone" from a guest's name must not ping anyone.
        "allowed_mentions": {"parse": []},
        "embeds": [{
            "title": truncate(&n.title(), TITLE_MAX),
            "description": truncate(&n.lines().join("\n"), DESCRIPTION_MAX),
            "color": color,
        }],
    });
    json_request(channel.url.clone(), &body)
}
