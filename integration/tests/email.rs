//! Email channels (issue #13) against an SMTP sink on loopback: STARTTLS and TLS with a
//! self-signed certificate (openssl), AUTH, several recipients, what a mail says, retries
//! on 4xx and none on 5xx; and end to end, a degraded pool reaching the sink once, its
//! rule disabled for the pool (resolved without a mail) and enabled again (one more).

use std::time::Duration;

use alerting::alert::Identity;
use alerting::channel::{email, Channel, Notification};
use alerting::http::RetryPolicy;
use alerting::notify::{Item, ItemKind};
use integration::smtp_sink::{Mode, SmtpSink};
use integration::*;
use recorder::status::{Level, Rule};

use crate::alerting::{fake_zpool, set_pool};

const HOST: &str = "pve-mail";

fn policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        timeout: Duration::from_secs(5),
        backoff: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(1),
    }
}

fn firing_pool() -> Notification {
    let item = Item {
        id: 42,
        identity: Identity { host: "pve1".into(), rule: Rule::PoolState, subject: "tank".into() },
        kind: ItemKind::Firing,
        severity: Level::Critical,
        message: "pool tank is FAULTED".into(),
        started_ms: 1_700_000_000_000,
        ended_ms: None,
    };
    Notification::new("pve1", vec![item], 0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Sends `n` on an email channel to `url`, trusting the sink's certificate.
fn send(sink: &SmtpSink, url: &str, n: &Notification) -> alerting::http::Delivery {
    let channel = Channel::new("mail", "email", url, None, None).unwrap();
    let roots: Vec<_> = sink.root.iter().cloned().collect();
    runtime().block_on(email::send(&channel, n, &policy(), &roots))
}

#[test]
fn starttls_with_auth_reaches_every_recipient_with_host_rule_subject_and_severity() {
    let sink = SmtpSink::start(Mode::StartTls(SelfSigned::new()));
    let url = format!(
        "smtp://ops:s3cret-pass@127.0.0.1:{}?from=alerts@example.com&to=a@example.com,b@example.com",
        sink.addr.port()
    );
    let delivery = send(&sink, &url, &firing_pool());
    assert!(delivery.ok(), "{delivery:?}");
    assert_eq!((delivery.status, delivery.attempts), (Some(250), 1));
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.encrypted, "sent after STARTTLS");
    assert_eq!(mail.auth, Some(("ops".into(), "s3cret-pass".into())));
    assert_eq!(mail.from, "alerts@example.com");
    assert_eq!(mail.to, ["a@example.com", "b@example.com"]);
    assert!(mail.data.contains("Subject: [pve1] 1 firing (critical)"), "{}", mail.data);
    for line in
        ["host:     pve1", "rule:     pool_state", "subject:  tank", "severity: critical", "pool tank is FAULTED"]
    {
        assert!(mail.data.contains(line), "{line:?} missing from {}", mail.data);
    }
    assert!(mail.data.contains("X-Pmon-Event-Id:"), "{}", mail.data);
}

#[test]
fn implicit_tls_is_spoken_on_smtps_and_a_relay_without_auth_works() {
    let sink = SmtpSink::start(Mode::Tls(SelfSigned::new()));
    let url = format!("smtps://127.0.0.1:{}?from=alerts@example.com&to=ops@example.com", sink.addr.port());
    let delivery = send(&sink, &url, &firing_pool());
    assert!(delivery.ok(), "{delivery:?}");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].encrypted);
    assert_eq!(mails[0].auth, None);
}

#[test]
fn a_starttls_url_refuses_a_server_without_starttls() {
    let sink = SmtpSink::start(Mode::Plain);
    let url = format!("smtp://127.0.0.1:{}?from=alerts@example.com&to=ops@example.com", sink.addr.port());
    let delivery = send(&sink, &url, &firing_pool());
    assert!(!delivery.ok(), "never in clear without tls=none: {delivery:?}");
    assert_eq!(sink.transactions(), 0);
}

#[test]
fn a_4xx_is_retried_and_a_5xx_is_given_up_at_once() {
    let sink = SmtpSink::start(Mode::Plain);
    let url = format!("smtp://127.0.0.1:{}?from=alerts@example.com&to=ops@example.com&tls=none", sink.addr.port());

    sink.reply_with(&["451 4.3.0 try again later"]);
    let delivery = send(&sink, &url, &firing_pool());
    assert!(delivery.ok(), "{delivery:?}");
    assert_eq!(delivery.attempts, 2);
    assert_eq!((sink.transactions(), sink.mails().len()), (2, 1));

    sink.reply_with(&["550 5.1.1 no such mailbox"]);
    let delivery = send(&sink, &url, &firing_pool());
    assert!(!delivery.ok());
    assert_eq!((delivery.status, delivery.attempts), (Some(550), 1));
    let error = delivery.error.unwrap();
    assert!(error.contains("permanent, not retried") && error.contains("no such mailbox"), "{error}");
    assert_eq!((sink.transactions(), sink.mails().len()), (3, 1), "no second try");

    sink.reply_with(&["452 4.3.1 full", "452 4.3.1 full", "452 4.3.1 full"]);
    let delivery = send(&sink, &url, &firing_pool());
    assert_eq!((delivery.ok(), delivery.status, delivery.attempts), (false, Some(452), 3));
    assert!(delivery.error.unwrap().ends_with("after 3 attempt(s)"));
}

#[test]
fn a_degraded_pool_reaches_an_email_channel_once_and_channel_test_works() {
    let sink = SmtpSink::start(Mode::Plain);
    let timings = [("ALERT_GROUP_WAIT_SECONDS", "1"), ("ALERT_GROUP_INTERVAL_SECONDS", "2")];
    let server = Server::start_with(timings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    let token = server.add_host(HOST);
    let url = format!("smtp://127.0.0.1:{}?from=pmon@example.com&to=ops@example.com&tls=none", sink.addr.port());
    let out = server.cli(&["channel", "add", "mail", "--kind", "email", "--url", &url, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["kind"], "email");

    let out = server.cli(&["channel", "test", "mail"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("answered SMTP 250"));
    assert_eq!(sink.mails().len(), 1);
    assert!(sink.mails()[0].data.contains("This is a test notification"));

    let fake = FakeProxmox::new();
    fake_zpool(&fake);
    set_pool(&fake, true);
    let config = agent_config(server.dir.path(), &format!("mqtt://{}", server.mqtt), HOST, &token);
    let mut agent = spawn_agent(&config, &fake);
    wait_for("the alert mail", Duration::from_secs(30), || (sink.mails().len() >= 2).then_some(()));
    // Several medium cycles and alerting rounds past the group interval: nothing more.
    std::thread::sleep(Duration::from_secs(6));
    let mails = sink.mails();
    assert_eq!(mails.len(), 2, "exactly one alert mail: {mails:#?}");
    let data = &mails[1].data;
    assert!(data.contains(&format!("Subject: [{HOST}] 1 firing (warning)")), "{data}");
    assert!(data.contains("rule:     pool_state") && data.contains("subject:  tank"), "{data}");
    let logged: i64 = server.sql("SELECT count(*) FROM notifications WHERE channel = 'mail' AND outcome = 'sent'");
    assert_eq!(logged, 2);

    // Disabled for this pool while it is still degraded: resolved on the running server,
    // quietly (no "resolved" mail); enabled again, it fires again: one more mail.
    let state =
        || server.sql::<String>(&format!("SELECT state FROM alerts WHERE host_id = '{HOST}' AND rule = 'pool_state'"));
    let out = server.cli(&["rule", "disable", "pool_state", "--host", HOST, "--subject", "tank"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the quiet resolution", Duration::from_secs(20), || (state() == "resolved").then_some(()));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(sink.mails().len(), 2, "no mail for a disabled rule's resolution");
    let out = server.cli(&["rule", "enable", "pool_state", "--host", HOST, "--subject", "tank"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the firing again", Duration::from_secs(20), || (sink.mails().len() >= 3).then_some(()));
    terminate(&mut agent);
    assert!(sink.mails()[2].data.contains("1 firing (warning)"));
}
