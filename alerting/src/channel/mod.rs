//! Channels: where notifications go, and how a message becomes an HTTP request for each
//! kind (`webhook.rs`: Alertmanager's v4 body; `ntfy.rs`).

mod ntfy;
pub mod webhook;

use crate::http::Request;
use crate::notify::Item;

/// The kinds this version can send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Webhook,
    Ntfy,
}

/// Planned kinds, refused with a message until they are built.
const LATER: [&str; 5] = ["gotify", "discord", "slack", "telegram", "email"];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChannelError {
    #[error("channel kind {0} is not supported yet; supported kinds: webhook, ntfy")]
    NotYet(String),
    #[error("unknown channel kind {0}; supported kinds: webhook, ntfy")]
    UnknownKind(String),
    #[error("invalid url {0}: expected http://host[:port]/path or https://...")]
    InvalidUrl(String),
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Ntfy => "ntfy",
        }
    }

    pub fn parse(s: &str) -> Result<Kind, ChannelError> {
        match s {
            "webhook" => Ok(Kind::Webhook),
            "ntfy" => Ok(Kind::Ntfy),
            s if LATER.contains(&s) => Err(ChannelError::NotYet(s.to_owned())),
            s => Err(ChannelError::UnknownKind(s.to_owned())),
        }
    }
}

/// A configured channel. Its token and secret stay in the database: `Debug` and the
/// CLI show them redacted.
#[derive(Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    pub kind: Kind,
    pub url: String,
    /// Sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// Webhook only: the key of the HMAC-SHA256 signature header.
    pub secret: Option<String>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &redact_url(&self.url))
            .field("token", &self.token.as_deref().map(redact))
            .field("secret", &self.secret.as_deref().map(redact))
            .finish()
    }
}

/// A secret as the CLI shows it again: its last 4 characters at most, when long enough.
pub fn redact(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() >= 16 {
        format!("…{}", chars[chars.len() - 4..].iter().collect::<String>())
    } else {
        "****".into()
    }
}

/// A URL as the CLI shows it again: scheme and authority (without credentials), and
/// the path cut short, since an ntfy topic or a webhook path is often the secret.
pub fn redact_url(url: &str) -> String {
    let Ok(uri) = url.parse::<hyper::Uri>() else { return "(invalid url)".into() };
    let host = uri.host().unwrap_or("");
    let port = uri.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = uri.path();
    let shown: String = path.chars().take(5).collect();
    let more = if path.chars().count() > 5 { "…" } else { "" };
    format!("{}://{host}{port}{shown}{more}", uri.scheme_str().unwrap_or("http"))
}

impl Channel {
    /// A channel from the CLI's arguments, checked.
    pub fn new(
        name: &str,
        kind: &str,
        url: &str,
        token: Option<String>,
        secret: Option<String>,
    ) -> Result<Channel, ChannelError> {
        let kind = Kind::parse(kind)?;
        let valid = url
            .parse::<hyper::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty()));
        if !valid {
            return Err(ChannelError::InvalidUrl(url.to_owned()));
        }
        Ok(Channel { name: name.to_owned(), kind, url: url.to_owned(), token, secret })
    }

    /// The HTTP request that delivers `n` on this channel.
    pub fn request(&self, n: &Notification) -> Request {
        let mut request = match self.kind {
            Kind::Webhook => webhook::request(self, n),
            Kind::Ntfy => ntfy::request(self, n),
        };
        if let Some(token) = &self.token {
            request.headers.push(("authorization".into(), format!("Bearer {token}")));
        }
        request.headers.push(("x-pmon-event-id".into(), n.event_id.clone()));
        request
    }
}

/// One message to a channel: a host's items, or only a count of suppressed messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Unique per message (header `X-Pmon-Event-Id`): receivers can drop a retried copy.
    pub event_id: String,
    pub host: String,
    pub items: Vec<Item>,
    /// Messages to this channel about this host the rate limiter refused before this one.
    pub suppressed: u64,
    /// `channel test`: says so in its text.
    pub test: bool,
}

impl Notification {
    pub fn new(host: &str, items: Vec<Item>, suppressed: u64) -> Notification {
        Notification { event_id: new_event_id(), host: host.to_owned(), items, suppressed, test: false }
    }

    /// A one-line title: `[pve1] 2 firing, 1 resolved`.
    pub fn title(&self) -> String {
        use crate::notify::ItemKind;
        if self.test {
            return "proxmox-monitor test notification".into();
        }
        let count = |k| self.items.iter().filter(|i| i.kind == k).count();
        let mut parts = Vec::new();
        for (kind, word) in
            [(ItemKind::Firing, "firing"), (ItemKind::Flapping, "flapping"), (ItemKind::Resolved, "resolved")]
        {
            let n = count(kind);
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        if parts.is_empty() {
            parts.push(format!("{} notifications suppressed", self.suppressed));
        }
        format!("[{}] {}", self.host, parts.join(", "))
    }

    /// The "N more suppressed" line, if any.
    pub fn suppressed_line(&self) -> Option<String> {
        (self.suppressed > 0).then(|| {
            format!("{} more notification(s) about {} were suppressed by the rate limit", self.suppressed, self.host)
        })
    }
}

fn new_event_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_urls_are_checked() {
        assert_eq!(Kind::parse("ntfy"), Ok(Kind::Ntfy));
        let e = Kind::parse("slack").unwrap_err().to_string();
        assert_eq!(e, "channel kind slack is not supported yet; supported kinds: webhook, ntfy");
        assert!(matches!(Kind::parse("pigeon"), Err(ChannelError::UnknownKind(_))));
        assert!(Channel::new("a", "webhook", "ftp://x/y", None, None).is_err());
        assert!(Channel::new("a", "webhook", "https://hooks.example.com/abc", None, None).is_ok());
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Channel::new(
            "ops",
            "ntfy",
            "https://ntfy.sh/very-secret-topic",
            Some("tk_0123456789abcdefWXYZ".into()),
            Some("short".into()),
        )
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("very-secret-topic") && !debug.contains("0123456789"), "{debug}");
        assert!(debug.contains("…WXYZ") && debug.contains("****"), "{debug}");
        assert_eq!(redact_url("https://ntfy.sh/very-secret-topic"), "https://ntfy.sh/very…");
    }
}
