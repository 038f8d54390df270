//! Email over SMTP (lettre, rustls): the channel's URL says where and to whom,
//! `smtp://user@host:587?from=alerts@example.com&to=ops@example.com,oncall@example.com`.
//!
//! `smtp://` speaks STARTTLS and refuses a server that does not offer it; `smtps://` is
//! TLS from the first byte (port 465); `?tls=none` sends in clear and is accepted only for
//! a loopback relay (a local Postfix, tests). The password never stays in the stored URL:
//! [`parse`] moves it to the channel's token, which is shown redacted like every secret.
//!
//! Retries follow SMTP's own classes: a 4xx answer, a refused connection or a timeout is
//! tried again with the client's backoff; a 5xx answer is permanent and given up at once.

use std::net::IpAddr;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls::pki_types::CertificateDer;

use super::{Channel, ChannelError, Kind, Notification};
use crate::http::{Delivery, RetryPolicy};
use crate::notify::ItemKind;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: plain connect, then STARTTLS, required.
    StartTls,
    /// `smtps://`: TLS from the start.
    Tls,
    /// `smtp://...?tls=none`: loopback only.
    None,
}

/// A parsed email channel URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: Option<String>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
}

const EXAMPLE: &str = "smtp://user:password@mail.example.com:587?from=alerts@example.com&to=ops@example.com";

fn invalid(url: &url::Url, why: &str) -> ChannelError {
    let mut shown = url.clone();
    // The error is printed and logged: never with the password.
    let _ = shown.set_password(None);
    ChannelError::InvalidEmailUrl { url: shown.to_string(), why: why.to_owned(), example: EXAMPLE }
}

/// Parses an email channel's URL into its target, the URL to store (without the
/// password) and the password, if the URL held one.
pub fn parse(raw: &str) -> Result<(Target, String, Option<String>), ChannelError> {
    let mut url = url::Url::parse(raw).map_err(|_| ChannelError::InvalidEmailUrl {
        url: "(unparsable)".into(),
        why: "not a URL".into(),
        example: EXAMPLE,
    })?;
    let decode = |s: &str| percent_decode(s).ok_or_else(|| invalid(&url, "user or password is not valid UTF-8"));
    let password = url.password().map(decode).transpose()?;
    let user = Some(decode(url.username())?).filter(|u| !u.is_empty());
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| invalid(&url, "no host"))?.to_owned();
    let mut security = match url.scheme() {
        "smtp" => Security::StartTls,
        "smtps" => Security::Tls,
        _ => return Err(invalid(&url, "the scheme is smtp:// (STARTTLS) or smtps:// (TLS)")),
    };
    let (mut from, mut to) = (None, Vec::new());
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "from" => from = Some(mailbox(&url, &value)?),
            "to" => {
                for address in value.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                    to.push(mailbox(&url, address)?);
                }
            }
            "tls" if value == "none" && security == Security::StartTls => security = Security::None,
            "tls" => return Err(invalid(&url, "tls takes only `none`, with smtp:// to a loopback relay")),
            _ => return Err(invalid(&url, &format!("unknown parameter {key}: the parameters are from, to and tls"))),
        }
    }
    let from = from.ok_or_else(|| invalid(&url, "no sender: add from=alerts@example.com"))?;
    if to.is_empty() {
        return Err(invalid(&url, "no recipient: add to=ops@example.com (several separated by commas)"));
    }
    if security == Security::None && !is_loopback(&host) {
        return Err(invalid(&url, "tls=none is only for a relay on loopback (localhost, 127.0.0.1, ::1)"));
    }
    if password.is_some() && user.is_none() {
        return Err(invalid(&url, "a password needs a user name: smtp://user:password@host"));
    }
    let port = url.port().unwrap_or(if security == Security::Tls { 465 } else { 587 });
    let _ = url.set_password(None);
    let target = Target { host, port, security, user, from, to };
    Ok((target, url.to_string(), password))
}

fn mailbox(url: &url::Url, address: &str) -> Result<Mailbox, ChannelError> {
    address.parse().map_err(|_| invalid(url, &format!("{address} is not an email address")))
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s).decode_utf8().ok().map(|text| text.into_owned())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// An email channel from the CLI's arguments: the password moves from the URL to the token.
pub(super) fn channel(
    name: &str,
    url: &str,
    token: Option<String>,
    secret: Option<String>,
) -> Result<Channel, ChannelError> {
    if secret.is_some() {
        let hint = "only webhook channels sign their bodies";
        return Err(ChannelError::Unused { kind: "email", option: "secret", hint });
    }
    let (target, stored, password) = parse(url)?;
    let token = match (password, token) {
        (Some(_), Some(_)) => return Err(ChannelError::PasswordTwice),
        (password, token) => password.or(token),
    };
    if target.user.is_some() && token.is_none() {
        let hint = "the SMTP password, or smtp://user:password@host in the url";
        return Err(ChannelError::MissingToken { kind: "email", hint });
    }
    Ok(Channel { name: name.to_owned(), kind: Kind::Email, url: stored, token, secret: None })
}

/// The subject line: the title and, while anything fires, its worst severity.
pub fn subject(n: &Notification) -> String {
    match n.worst() {
        Some(level) => format!("{} ({})", n.title(), level.as_str()),
        None => n.title(),
    }
}

/// The plain-text body: the summary lines, then each alert's details.
pub fn body(n: &Notification) -> String {
    let mut text = n.lines().join("\n");
    text.push_str("\n\n");
    for item in &n.items {
        let state = match item.kind {
            ItemKind::Firing => "firing",
            ItemKind::Flapping => "flapping",
            ItemKind::Resolved => "resolved",
        };
        let id = &item.identity;
        let subject = if id.subject.is_empty() { "(the host)" } else { id.subject.as_str() };
        text.push_str(&format!(
            "Alert {}: {state}\n  host:     {}\n  rule:     {}\n  subject:  {subject}\n  severity: {}\n  started:  {} UTC\n",
            item.id,
            id.host,
            id.rule.as_str(),
            item.severity.as_str(),
            super::webhook::rfc3339(item.started_ms),
        ));
        if let Some(ended) = item.ended_ms {
            text.push_str(&format!("  resolved: {} UTC\n", super::webhook::rfc3339(ended)));
        }
        text.push('\n');
    }
    text.push_str("-- \nproxmox-monitor: acknowledge with `proxmox-monitor alert ack ID` or on /admin/alerts.\n");
    text
}

fn message(target: &Target, n: &Notification) -> Result<Message, String> {
    let mut builder = Message::builder().from(target.from.clone()).subject(subject(n));
    for to in &target.to {
        builder = builder.to(to.clone());
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .header(EventId(n.event_id.clone()))
        .body(body(n))
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// `X-Pmon-Event-Id`, as on every HTTP kind: receivers can drop a retried copy.
#[derive(Clone)]
struct EventId(String);

impl lettre::message::header::Header for EventId {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("X-Pmon-Event-Id")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(EventId(s.to_owned()))
    }
    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

fn transport(
    target: &Target,
    password: Option<&str>,
    policy: &RetryPolicy,
    roots: &[CertificateDer<'static>],
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls = || {
        let mut params = TlsParameters::builder(target.host.clone());
        for root in roots {
            let cert = Certificate::from_der(root.to_vec()).map_err(|e| format!("bad root certificate: {e}"))?;
            params = params.add_root_certificate(cert);
        }
        params.build_rustls().map_err(|e| format!("TLS setup: {e}"))
    };
    let tls = match target.security {
        Security::StartTls => Tls::Required(tls()?),
        Security::Tls => Tls::Wrapper(tls()?),
        Security::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(target.host.trim_matches(['[', ']']))
        .port(target.port)
        .tls(tls)
        .timeout(Some(policy.timeout));
    if let (Some(user), Some(password)) = (&target.user, password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.to_owned()));
    }
    Ok(builder.build())
}

/// Sends `n` by email on `channel`, retrying a 4xx answer or a failed connection as
/// `policy` says; `roots` are trusted besides the system's (tests' self-signed servers).
pub async fn send(
    channel: &Channel,
    n: &Notification,
    policy: &RetryPolicy,
    roots: &[CertificateDer<'static>],
) -> Delivery {
    let prepared = parse(&channel.url).map_err(|e| e.to_string()).and_then(|(target, _, _)| {
        let message = message(&target, n)?;
        Ok((transport(&target, channel.token.as_deref(), policy, roots)?, message))
    });
    let (transport, message) = match prepared {
        Ok(p) => p,
        Err(e) => return Delivery { status: None, attempts: 0, error: Some(e) },
    };
    let mut backoff = policy.backoff;
    let mut attempts = 0;
    loop {
        attempts += 1;
        // lettre's timeout is per command; this bounds the whole conversation.
        let outcome = tokio::time::timeout(policy.timeout * 3, transport.send(message.clone())).await;
        let (status, error, retry) = match outcome {
            Ok(Ok(response)) => return Delivery { status: Some(response.code().into()), attempts, error: None },
            Ok(Err(e)) if e.is_permanent() => {
                let status = e.status().map(u16::from);
                return Delivery { status, attempts, error: Some(format!("{e}; permanent, not retried")) };
            }
            Ok(Err(e)) => (e.status().map(u16::from), e.to_string(), true),
            Err(_) => (None, format!("no answer within {:?}", policy.timeout * 3), true),
        };
        if !retry || attempts >= policy.attempts {
            return Delivery { status, attempts, error: Some(format!("{error} after {attempts} attempt(s)")) };
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::super::redact_url;
    use super::*;

    #[test]
    fn urls_are_parsed_and_passwords_leave_them() {
        let (t, stored, password) =
            parse("smtp://ops%40x.org:p%40ss@mail.example.com?from=alerts@example.com&to=a@b.org,%20c@d.org").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.security), ("mail.example.com", 587, Security::StartTls));
        assert_eq!(t.user.as_deref(), Some("ops@x.org"));
        assert_eq!(password.as_deref(), Some("p@ss"));
        assert_eq!(t.to.len(), 2);
        assert_eq!(t.to[1].email.to_string(), "c@d.org");
        assert!(!stored.contains("p%40ss") && stored.contains("ops%40x.org@mail.example.com"), "{stored}");
        let (t, _, _) = parse("smtps://mail.example.com?from=a@b.org&to=c@d.org").unwrap();
        assert_eq!((t.port, t.security), (465, Security::Tls));
        let (t, _, _) = parse("smtp://127.0.0.1:2525?from=a@b.org&to=c@d.org&tls=none").unwrap();
        assert_eq!((t.port, t.security), (2525, Security::None));
    }

    #[test]
    fn an_email_password_is_stored_as_the_token_and_shown_redacted() {
        let url = "smtp://ops:correct-horse-battery@mail.example.com:587?from=a@b.org&to=c@d.org";
        let c = Channel::new("mail", "email", url, None, None).unwrap();
        assert_eq!(c.token.as_deref(), Some("correct-horse-battery"));
        assert!(!c.url.contains("correct-horse"), "{}", c.url);
        let debug = format!("{c:?}");
        assert!(!debug.contains("correct-horse") && debug.contains("…tery"), "{debug}");
        assert_eq!(redact_url(&c.url), "smtp://mail.example.com:587/");
        assert_eq!(Channel::new("m", "email", url, Some("x".into()), None), Err(ChannelError::PasswordTwice));
        let no_password = "smtp://ops@mail.example.com?from=a@b.org&to=c@d.org";
        assert!(matches!(Channel::new("m", "email", no_password, None, None), Err(ChannelError::MissingToken { .. })));
        assert_eq!(
            Channel::new("m", "email", no_password, Some("pw".into()), None).unwrap().token.as_deref(),
            Some("pw")
        );
        let relay = "smtp://localhost:25?from=a@b.org&to=c@d.org&tls=none";
        assert_eq!(Channel::new("m", "email", relay, None, None).unwrap().token, None);
    }

    #[test]
    fn bad_urls_say_what_to_fix_without_the_password() {
        let why = |url: &str| parse(url).unwrap_err().to_string();
        let e = why("smtp://u:hunter2@mail.example.com?from=a@b.org&to=c@d.org&tls=none");
        assert!(e.contains("only for a relay on loopback") && !e.contains("hunter2"), "{e}");
        assert!(why("smtp://mail.example.com?to=c@d.org").contains("no sender"));
        assert!(why("smtp://mail.example.com?from=a@b.org").contains("no recipient"));
        assert!(why("smtp://mail.example.com?from=a@b.org&to=nobody").contains("nobody is not an email address"));
        assert!(why("http://mail.example.com?from=a@b.org&to=c@d.org").contains("smtp:// (STARTTLS)"));
        assert!(why("smtp://mail.example.com?from=a@b.org&to=c@d.org&cc=x").contains("unknown parameter cc"));
        assert!(why("smtps://mail.example.com?from=a@b.org&to=c@d.org&tls=none").contains("tls takes only"));
        let e = why("smtp://:hunter2@mail.example.com?from=a@b.org&to=c@d.org");
        assert!(e.contains("needs a user name") && !e.contains("hunter2"), "{e}");
    }
}
