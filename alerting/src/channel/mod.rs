//! Channels: where notifications go, and how a message becomes an HTTP request for each
//! kind, one file per kind (`webhook.rs`: Alertmanager's v4 body; `ntfy.rs`, `gotify.rs`,
//! `discord.rs`, `slack.rs`, `telegram.rs`: the same text from [`Notification::lines`]).
//! Email is the one kind that is not HTTP: `email.rs` sends over SMTP.

mod discord;
pub mod email;
mod gotify;
mod ntfy;
mod slack;
mod telegram;
pub mod webhook;

use recorder::status::Level;

use crate::http::Request;
use crate::notify::{Item, ItemKind};

/// The kinds this version can send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Webhook,
    Ntfy,
    Gotify,
    Discord,
    Slack,
    Telegram,
    /// SMTP, not HTTP: see [`email`].
    Email,
}

/// For error messages and `--help`.
pub const SUPPORTED: &str = "webhook, ntfy, gotify, discord, slack, telegram, email";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChannelError {
    #[error("unknown channel kind {0}; supported kinds: webhook, ntfy, gotify, discord, slack, telegram, email")]
    UnknownKind(String),
    /// Never carries the password: [`email::parse`] takes it out first.
    #[error("invalid email url {url}: {why}; expected e.g. {example}")]
    InvalidEmailUrl { url: String, why: String, example: &'static str },
    #[error("the SMTP password is given twice: keep it either in the url or in --token")]
    PasswordTwice,
    #[error("invalid url {0}: expected http://host[:port]/path or https://...")]
    InvalidUrl(String),
    /// The kind authenticates with `--token`; the message says where to get one.
    #[error("a {kind} channel needs --token: {hint}")]
    MissingToken { kind: &'static str, hint: &'static str },
    #[error(
        "a telegram channel needs the chat id in its url: --url 'https://api.telegram.org/?chat_id=CHAT_ID' \
         (a user or group id such as -1001234567890, or @channelname)"
    )]
    MissingChatId,
    /// Discord and Slack webhook URLs carry their own secret; a token would be sent nowhere.
    #[error("a {kind} channel takes no --{option}: {hint}")]
    Unused { kind: &'static str, option: &'static str, hint: &'static str },
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Ntfy => "ntfy",
            Kind::Gotify => "gotify",
            Kind::Discord => "discord",
            Kind::Slack => "slack",
            Kind::Telegram => "telegram",
            Kind::Email => "email",
        }
    }

    /// What a delivery's status code is: `HTTP 204`, `SMTP 250`.
    pub fn protocol(self) -> &'static str {
        if self == Kind::Email {
            "SMTP"
        } else {
            "HTTP"
        }
    }

    pub fn parse(s: &str) -> Result<Kind, ChannelError> {
        match s {
            "webhook" => Ok(Kind::Webhook),
            "ntfy" => Ok(Kind::Ntfy),
            "gotify" => Ok(Kind::Gotify),
            "discord" => Ok(Kind::Discord),
            "slack" => Ok(Kind::Slack),
            "telegram" => Ok(Kind::Telegram),
            "email" => Ok(Kind::Email),
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
    /// Webhook and ntfy: sent as `Authorization: Bearer`. Gotify: the application token
    /// (`X-Gotify-Key`). Telegram: the bot token, in the request path. Email: the SMTP
    /// password (taken out of the URL when given there).
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
        if kind == Kind::Email {
            return email::channel(name, url, token, secret);
        }
        let valid = url
            .parse::<hyper::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty()));
        if !valid {
            return Err(ChannelError::InvalidUrl(url.to_owned()));
        }
        let kind_name = kind.as_str();
        match kind {
            Kind::Webhook | Kind::Ntfy => {}
            Kind::Gotify | Kind::Telegram if token.is_none() => {
                let hint = if kind == Kind::Gotify {
                    "the application token from Gotify's web UI (Apps, Create Application)"
                } else {
                    "the bot token @BotFather gave (123456789:AA...)"
                };
                return Err(ChannelError::MissingToken { kind: kind_name, hint });
            }
            Kind::Discord | Kind::Slack if token.is_some() => {
                let hint = "the webhook url is its secret";
                return Err(ChannelError::Unused { kind: kind_name, option: "token", hint });
            }
            Kind::Gotify | Kind::Telegram | Kind::Discord | Kind::Slack | Kind::Email => {}
        }
        if kind == Kind::Telegram && telegram::chat_id(url).is_none() {
            return Err(ChannelError::MissingChatId);
        }
        if secret.is_some() && !matches!(kind, Kind::Webhook | Kind::Ntfy) {
            let hint = "only webhook channels sign their bodies";
            return Err(ChannelError::Unused { kind: kind_name, option: "secret", hint });
        }
        Ok(Channel { name: name.to_owned(), kind, url: url.to_owned(), token, secret })
    }

    /// The HTTP request that delivers `n` on this channel. An email channel is never sent
    /// over HTTP (`task::send` sends it by SMTP); its request is the mail's text, so that
    /// this stays total.
    pub fn request(&self, n: &Notification) -> Request {
        let mut request = match self.kind {
            Kind::Webhook => webhook::request(self, n),
            Kind::Ntfy => ntfy::request(self, n),
            Kind::Gotify => gotify::request(self, n),
            Kind::Discord => discord::request(self, n),
            Kind::Slack => slack::request(self, n),
            Kind::Telegram => telegram::request(self, n),
            Kind::Email => Request {
                url: self.url.clone(),
                headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                body: email::body(n).into_bytes(),
            },
        };
        // The other kinds carry their token where their API wants it.
        if let (Some(token), Kind::Webhook | Kind::Ntfy) = (&self.token, self.kind) {
            request.headers.push(("authorization".into(), format!("Bearer {token}")));
        }
        request.headers.push(("x-pmon-event-id".into(), n.event_id.clone()));
        request
    }
}

/// A JSON request to `url`, as the chat kinds send.
fn json_request(url: String, body: &serde_json::Value) -> Request {
    Request {
        url,
        headers: vec![("content-type".into(), "application/json".into())],
        // Serializing a `Value` cannot fail: its keys are strings.
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

/// `text` cut to at most `max` characters, ending with `…` when cut: every chat service
/// refuses a message over its limit, and a cut message beats none.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
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

    /// The message's text, one line per alert (`WARNING: pool rpool is DEGRADED (alert 7)`),
    /// then the test notice and the "N more suppressed" line: what every kind but the
    /// webhook sends under its title.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
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
        if self.test {
            lines.push("This is a test notification from proxmox-monitor.".into());
        }
        lines.extend(self.suppressed_line());
        lines
    }

    /// The worst severity still firing or flapping; None when everything resolved, or for
    /// a summary or a test.
    pub fn worst(&self) -> Option<Level> {
        self.items.iter().filter(|i| i.kind != ItemKind::Resolved).map(|i| i.severity).max()
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
        assert_eq!(Kind::parse("email"), Ok(Kind::Email));
        let e = Kind::parse("pigeon").unwrap_err().to_string();
        assert!(e.ends_with(SUPPORTED), "{e}");
        assert!(Channel::new("a", "webhook", "ftp://x/y", None, None).is_err());
        assert!(Channel::new("a", "webhook", "https://hooks.example.com/abc", None, None).is_ok());
    }

    #[test]
    fn each_kind_gets_what_it_needs() {
        let new = |kind, url, token: Option<&str>, secret: Option<&str>| {
            Channel::new("a", kind, url, token.map(Into::into), secret.map(Into::into))
        };
        let e = new("gotify", "https://push.example.com", None, None).unwrap_err();
        assert!(e.to_string().starts_with("a gotify channel needs --token: the application token"), "{e}");
        assert!(matches!(
            new("telegram", "https://api.telegram.org?chat_id=1", None, None),
            Err(ChannelError::MissingToken { .. })
        ));
        assert_eq!(new("telegram", "https://api.telegram.org", Some("1:a"), None), Err(ChannelError::MissingChatId));
        assert_eq!(
            new("telegram", "https://api.telegram.org/?chat_id=", Some("1:a"), None),
            Err(ChannelError::MissingChatId)
        );
        assert_eq!(telegram::chat_id("https://api.telegram.org?chat_id=@ops"), Some("@ops".into()));
        assert!(new("telegram", "https://api.telegram.org?x=1&chat_id=-100", Some("1:a"), None).is_ok());
        let e = new("slack", "https://hooks.slack.com/services/T/B/x", Some("t"), None).unwrap_err();
        assert_eq!(e.to_string(), "a slack channel takes no --token: the webhook url is its secret");
        assert!(matches!(
            new("discord", "https://discord.com/api/webhooks/1/x", None, Some("s")),
            Err(ChannelError::Unused { .. })
        ));
        assert!(new("discord", "https://discord.com/api/webhooks/1/x", None, None).is_ok());
    }

    #[test]
    fn chat_texts_are_escaped_and_kept_within_limits() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        let channel = Channel::new("a", "slack", "https://hooks.slack.com/services/T/B/x", None, None).unwrap();
        let mut n = Notification::new("pve1", vec![], 0);
        n.test = true;
        n.host = "<!channel> & co".into();
        n.suppressed = 1;
        let body: serde_json::Value = serde_json::from_slice(&channel.request(&n).body).unwrap();
        let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(section.contains("about &lt;!channel&gt; &amp; co"), "{section}");
    }

    #[test]
    fn tokens_stay_out_of_debug_output() {
        let token = "123456789:AAHsecretsecretsecret";
        let t =
            Channel::new("tg", "telegram", "https://api.telegram.org/?chat_id=-100", Some(token.into()), None).unwrap();
        let g = Channel::new("g", "gotify", "https://push.example.com", Some(token.into()), None).unwrap();
        let n = Notification::new("pve1", vec![], 1);
        for debug in
            [format!("{t:?}"), format!("{:?}", t.request(&n)), format!("{g:?}"), format!("{:?}", g.request(&n))]
        {
            assert!(!debug.contains("secretsecret") && !debug.contains("23456789"), "{debug}");
        }
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
