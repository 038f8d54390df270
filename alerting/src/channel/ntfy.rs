//! ntfy: a plain-text POST to the topic URL, with title, priority and tags in headers
//! (https://docs.ntfy.sh/publish/).

use recorder::status::Level;

use super::{Channel, Notification};
use crate::http::Request;

pub(super) fn request(channel: &Channel, n: &Notification) -> Request {
    let (priority, tags) = match n.worst() {
        Some(Level::Critical | Level::Offline) => ("5", "rotating_light"),
        Some(_) => ("4", "warning"),
        None if n.items.is_empty() => ("3", "information_source"),
        None => ("3", "white_check_mark"),
    };
    Request {
        url: channel.url.clone(),
        headers: vec![
            ("content-type".into(), "text/plain; charset=utf-8".into()),
            ("title".into(), n.title()),
            ("priority".into(), priority.into()),
            ("tags".into(), tags.into()),
        ],
        body: n.lines().join("\n").into_bytes(),
    }
}
