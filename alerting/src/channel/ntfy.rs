//! ntfy: a plain-text POST to the topic URL, with title, priority and tags in headers
//! (https://docs.ntfy.sh/publish/).

use recorder::status::Level;

use super::{Channel, Notification};
use crate::http::Request;
use crate::notify::ItemKind;

pub(super) fn request(channel: &Channel, n: &Notification) -> Request {
    let mut lines: Vec<String> = n
        .items
        .iter()
        .map(|i| {
            let mark = match i.kind {
                ItemKind::Firing => i.severity.as_str().to_uppercase(),
                ItemKind::Flapping => "FLAPPING".into(),
                ItemKind::Resolved => "RESOLVED".into(),
            };
            format!("{mark}: {} (alert {})", i.message, i.id)
        })
        .collect();
    if n.test {
        lines.push("This is a test notification from proxmox-monitor.".into());
    }
    lines.extend(n.suppressed_line());
    let worst = n.items.iter().filter(|i| i.kind != ItemKind::Resolved).map(|i| i.severity).max();
    let (priority, tags) = match worst {
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
        body: lines.join("\n").into_bytes(),
    }
}
