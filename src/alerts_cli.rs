//! The alerting commands: `channel`, `alert`, `silence`. Like `host`, they talk to the
//! database directly, so they work whether or not `serve` runs; a running `serve` reads
//! the change within its next round (a few seconds).

use alerting::channel::webhook::rfc3339;
use alerting::channel::{redact, redact_url, Channel};
use alerting::silence::Silence;
use alerting::store;
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum ChannelCommand {
    /// Add a channel: webhook (Alertmanager v4 JSON), ntfy, gotify, discord, slack, telegram or email.
    Add {
        name: String,
        /// webhook, ntfy, gotify, discord, slack, telegram or email.
        #[arg(long)]
        kind: String,
        /// webhook: its URL; ntfy: the topic URL (https://ntfy.sh/TOPIC); gotify: the
        /// server (https://push.example.com); discord, slack: the webhook URL; telegram:
        /// 'https://api.telegram.org/?chat_id=CHAT_ID' (a chat id or @channelname); email:
        /// 'smtp://user:password@host:587?from=alerts@example.com&to=ops@example.com,b@example.com'
        /// (STARTTLS; smtps://host:465 for TLS; &tls=none only for a loopback relay).
        #[arg(long)]
        url: String,
        /// webhook, ntfy: sent as `Authorization: Bearer TOKEN`; gotify: the application
        /// token (required); telegram: the bot token from @BotFather (required);
        /// discord, slack: none (the URL is the secret); email: the SMTP password, if not in
        /// the URL (keeps it out of the URL). Stored server-side, listed redacted.
        #[arg(long)]
        token: Option<String>,
        /// Webhook: sign each body with HMAC-SHA256 in `X-Pmon-Signature: sha256=HEX`.
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Send a test notification now and print the receiver's answer.
    Test {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List channels (secrets redacted) with their last delivery.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a channel.
    Remove {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum AlertCommand {
    /// Firing and pending alerts, and those resolved in the last 24 hours.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an alert: no more repeats until it resolves or gets worse.
    Ack {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum SilenceCommand {
    /// Silence a host's alerts (optionally one rule, one subject) for a while.
    Add {
        #[arg(long)]
        host: String,
        /// A rule name such as pool_state, host_offline, storage_full.
        #[arg(long)]
        rule: Option<String>,
        /// The pool, storage or guest (vm/101, ct/105).
        #[arg(long)]
        subject: Option<String>,
        /// How long: 90s, 30m, 2h, 7d.
        #[arg(long = "for")]
        duration: String,
        #[arg(long)]
        comment: String,
        #[arg(long)]
        json: bool,
    },
    /// The silences that have not ended yet.
    List {
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Remove {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

fn channel_json(c: &Channel) -> serde_json::Value {
    json!({
        "name": c.name,
        "kind": c.kind.as_str(),
        "url": redact_url(&c.url),
        "token": c.token.as_deref().map(redact),
        "secret": c.secret.as_deref().map(redact),
    })
}

pub fn channel(cmd: ChannelCommand) -> anyhow::Result<()> {
    let conn = crate::open_db()?;
    match cmd {
        ChannelCommand::Add { name, kind, url, token, secret, json } => {
            let channel = Channel::new(&name, &kind, &url, token, secret)?;
            store::add_channel(&conn, &channel, wire::now_ms())?;
            if json {
                println!("{}", channel_json(&channel));
            } else {
                println!("channel {name} ({}) added; try it with `proxmox-monitor channel test {name}`", kind);
            }
        }
        ChannelCommand::Test { name, json } => {
            let channel = store::channel(&conn, &name)?;
            let runtime = crate::runtime()?;
            let (n, delivery) =
                runtime.block_on(alerting::task::test_channel(&channel, alerting::http::RetryPolicy::default()));
            store::log(&conn, &alerting::task::log_entry(&channel, &n, &delivery))?;
            if json {
                println!(
                    "{}",
                    json!({"channel": name, "ok": delivery.ok(), "status": delivery.status,
                           "attempts": delivery.attempts, "error": delivery.error, "event_id": n.event_id})
                );
            } else {
                match (&delivery.error, delivery.status) {
                    (None, Some(status)) => {
                        println!("channel {name}: test sent, receiver answered {} {status}", channel.kind.protocol())
                    }
                    (Some(e), _) => println!("channel {name}: test failed: {e}"),
                    (None, None) => println!("channel {name}: test sent"),
                }
            }
            if !delivery.ok() {
                anyhow::bail!("the test notification on {name} was not accepted");
            }
        }
        ChannelCommand::List { json } => {
            let channels = store::channels(&conn)?;
            let outcomes = store::last_outcomes(&conn)?;
            let last = |name: &str| outcomes.iter().find(|o| o.channel == name);
            if json {
                let rows: Vec<_> = channels
                    .iter()
                    .map(|c| {
                        let mut v = channel_json(c);
                        if let Some(d) = last(&c.name) {
                            v["last_delivery"] =
                                json!({"ts": d.ts_ms / 1000, "outcome": d.outcome, "status": d.http_status});
                        }
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else if channels.is_empty() {
                println!("No channels yet. Add one with `proxmox-monitor channel add NAME --kind ntfy --url https://ntfy.sh/TOPIC`.");
            } else {
                println!("{:<16} {:<8} {:<40} LAST DELIVERY", "NAME", "KIND", "URL");
                for c in &channels {
                    let delivery = last(&c.name).map_or_else(
                        || "never".to_owned(),
                        |d| {
                            let protocol = c.kind.protocol();
                            let status = d.http_status.map(|s| format!(" {protocol} {s}")).unwrap_or_default();
                            format!("{}{status} {}s ago", d.outcome, (wire::now_ms() - d.ts_ms) / 1000)
                        },
                    );
                    println!("{:<16} {:<8} {:<40} {delivery}", c.name, c.kind.as_str(), redact_url(&c.url));
                }
            }
        }
        ChannelCommand::Remove { name, json } => {
            store::remove_channel(&conn, &name)?;
            if json {
                println!("{}", json!({"removed": name}));
            } else {
                println!("channel {name} removed");
            }
        }
    }
    Ok(())
}

pub fn alert(cmd: AlertCommand) -> anyhow::Result<()> {
    let conn = crate::open_db()?;
    let now = wire::now_ms();
    match cmd {
        AlertCommand::List { json } => {
            let alerts = store::list_alerts(&conn, now, 86_400_000)?;
            if json {
                let rows: Vec<_> = alerts
                    .iter()
                    .map(|a| {
                        json!({
                            "id": a.id,
                            "host_id": a.identity.host,
                            "rule": a.identity.rule,
                            "subject": (!a.identity.subject.is_empty()).then_some(&a.identity.subject),
                            "state": a.state,
                            "severity": a.severity,
                            "value": a.value,
                            "message": a.message,
                            "started": a.started_ms / 1000,
                            "changed": a.changed_ms / 1000,
                            "acked": a.acked,
                            "notified": a.notified_ms.map(|t| t / 1000),
                            "flapping": a.flapping,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else if alerts.is_empty() {
                println!("No alerts.");
            } else {
                println!("{:>5} {:<9} {:<9} {:<20} MESSAGE", "ID", "STATE", "SEVERITY", "HOST");
                for a in &alerts {
                    let mut flags = String::new();
                    if a.acked {
                        flags.push_str(" [acked]");
                    }
                    if a.flapping {
                        flags.push_str(" [flapping]");
                    }
                    println!(
                        "{:>5} {:<9} {:<9} {:<20} {}{flags}",
                        a.id,
                        a.state.as_str(),
                        a.severity.as_str(),
                        a.identity.host,
                        a.message
                    );
                }
            }
        }
        AlertCommand::Ack { id, json } => {
            let a = store::ack(&conn, id)?;
            if json {
                println!("{}", json!({"id": id, "acked": true, "host_id": a.identity.host, "rule": a.identity.rule}));
            } else {
                println!("alert {id} ({}) acknowledged: no repeats until it resolves or gets worse", a.message);
            }
        }
    }
    Ok(())
}

pub fn silence(cmd: SilenceCommand) -> anyhow::Result<()> {
    let conn = crate::open_db()?;
    let now = wire::now_ms();
    match cmd {
        SilenceCommand::Add { host, rule, subject, duration, comment, json } => {
            let Some(for_ms) = alerting::silence::parse_duration(&duration) else {
                anyhow::bail!("invalid duration {duration}: use e.g. 90s, 30m, 2h, 7d");
            };
            if !recorder::hosts::host_ids(&conn)?.iter().any(|h| h.as_str() == host) {
                anyhow::bail!("no host named {host}; `host list` shows the registered ones");
            }
            let ends = now + for_ms;
            let id = store::add_silence(&conn, &host, rule.as_deref(), subject.as_deref(), ends, &comment, now)?;
            if json {
                println!("{}", silence_json(&Silence { id, host, rule, subject, ends_ms: ends, comment }));
            } else {
                println!("silence {id} added for {host} until {} (UTC)", rfc3339(ends));
            }
        }
        SilenceCommand::List { json } => {
            let silences = store::silences(&conn, now)?;
            if json {
                let rows: Vec<_> = silences.iter().map(silence_json).collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else if silences.is_empty() {
                println!("No active silences.");
            } else {
                println!("{:>5} {:<20} {:<16} {:<16} {:<20} COMMENT", "ID", "HOST", "RULE", "SUBJECT", "ENDS (UTC)");
                for s in &silences {
                    println!(
                        "{:>5} {:<20} {:<16} {:<16} {:<20} {}",
                        s.id,
                        s.host,
                        s.rule.as_deref().unwrap_or("*"),
                        s.subject.as_deref().unwrap_or("*"),
                        rfc3339(s.ends_ms),
                        s.comment
                    );
                }
            }
        }
        SilenceCommand::Remove { id, json } => {
            store::remove_silence(&conn, id)?;
            if json {
                println!("{}", json!({"removed": id}));
            } else {
                println!("silence {id} removed");
            }
        }
    }
    Ok(())
}

fn silence_json(s: &Silence) -> serde_json::Value {
    json!({"id": s.id, "host_id": s.host, "rule": s.rule, "subject": s.subject, "ends": s.ends_ms / 1000,
           "comment": s.comment})
}
