//! The engine and the notifier on an injected clock (milliseconds passed as arguments),
//! persistence across a restart, and deliveries to loopback receivers.

use std::collections::HashSet;

use recorder::status::{Finding, Level, Rule};
use wire::{Medium, Pool};

use crate::alert::{Identity, State};
use crate::engine::Engine;
use crate::notify::{ItemKind, Outgoing};
use crate::overrides_tests::payload;
use crate::settings::Settings;
use crate::silence::Silence;

const S: i64 = 1_000;
const MIN: i64 = 60 * S;
const HOUR: i64 = 60 * MIN;

fn finding(rule: Rule, subject: Option<&str>, level: Level, value: Option<f64>) -> Finding {
    Finding {
        rule,
        subject: subject.map(Into::into),
        level,
        value,
        message: format!("{rule} {} {level:?} {value:?}", subject.unwrap_or("")),
    }
}

fn degraded() -> Finding {
    finding(Rule::PoolState, Some("rpool"), Level::Warning, None)
}

fn offline() -> Finding {
    finding(Rule::HostOffline, None, Level::Offline, None)
}

fn id(rule: Rule, subject: &str) -> Identity {
    Identity { host: "pve1".into(), rule, subject: subject.into() }
}

fn kinds(out: &[Outgoing]) -> Vec<(Rule, ItemKind)> {
    out.iter().flat_map(|o| o.items.iter().map(|i| (i.identity.rule, i.kind))).collect()
}

/// Applies `findings` to pve1 and flushes, at `now`.
fn step(e: &mut Engine, findings: &[Finding], now: i64) -> Vec<(Rule, ItemKind)> {
    e.apply("pve1", findings, None, now);
    kinds(&e.flush(now))
}

#[test]
fn a_condition_true_at_first_sight_fires_after_group_wait_and_resolves_once() {
    let mut e = Engine::new(Settings::default(), vec![]);
    assert_eq!(step(&mut e, &[degraded()], 0), []);
    assert_eq!(e.get(&id(Rule::PoolState, "rpool")).unwrap().state, State::Firing);
    assert_eq!(step(&mut e, &[degraded()], 29_999), [], "group wait");
    assert_eq!(step(&mut e, &[degraded()], 30 * S), [(Rule::PoolState, ItemKind::Firing)]);
    assert_eq!(step(&mut e, &[degraded()], 31 * S), []);
    assert_eq!(step(&mut e, &[], MIN), [], "the resolution waits for the group interval");
    assert_eq!(e.get(&id(Rule::PoolState, "rpool")).unwrap().state, State::Resolved);
    assert_eq!(step(&mut e, &[], 30 * S + 5 * MIN - 1), []);
    assert_eq!(step(&mut e, &[], 30 * S + 5 * MIN), [(Rule::PoolState, ItemKind::Resolved)]);
    for t in 1..20 {
        assert_eq!(step(&mut e, &[], 30 * S + 5 * MIN + t * HOUR), [], "resolved is sent once");
    }
}

#[test]
fn a_host_clears_only_its_own_alerts_even_when_another_hosts_name_extends_it() {
    // The engine reads a host's alerts as a range of its map (by host first): pve1's
    // range must end before pve10's and start after pve0's.
    let mut e = Engine::new(Settings::default(), vec![]);
    for host in ["pve0", "pve1", "pve10"] {
        e.apply(host, &[degraded()], None, 0);
    }
    e.apply("pve1", &[], None, MIN);
    let state = |host: &str| e.get(&Identity { host: host.into(), ..id(Rule::PoolState, "rpool") }).unwrap().state;
    assert_eq!(state("pve1"), State::Resolved);
    assert_eq!((state("pve0"), state("pve10")), (State::Firing, State::Firing));
}

#[test]
fn what_resolves_within_group_wait_is_never_sent() {
    let mut e = Engine::new(Settings::default(), vec![]);
    step(&mut e, &[degraded()], 0);
    assert_eq!(step(&mut e, &[], 10 * S), []);
    assert_eq!(step(&mut e, &[], HOUR), []);
}

#[test]
fn offline_waits_its_grace_period_and_inhibits_the_hosts_other_alerts() {
    let mut e = Engine::new(Settings::default(), vec![]);
    let offline_id = id(Rule::HostOffline, "");
    // A restart: offline for a minute, back within the grace period. Nothing is sent.
    step(&mut e, &[offline()], 0);
    assert_eq!(e.get(&offline_id).unwrap().state, State::Pending);
    assert_eq!(step(&mut e, &[offline()], 2 * MIN - 1), []);
    assert_eq!(step(&mut e, &[], 2 * MIN), []);
    assert_eq!(step(&mut e, &[], HOUR), []);

    // A degraded pool, notified; then the host goes away for good.
    let t0 = 2 * HOUR;
    step(&mut e, &[degraded()], t0);
    assert_eq!(step(&mut e, &[degraded()], t0 + 30 * S), [(Rule::PoolState, ItemKind::Firing)]);
    step(&mut e, &[offline()], t0 + MIN);
    assert_eq!(
        e.get(&id(Rule::PoolState, "rpool")).unwrap().state,
        State::Firing,
        "frozen while offline, not resolved"
    );
    assert_eq!(step(&mut e, &[offline()], t0 + 3 * MIN), []);
    assert_eq!(e.get(&offline_id).unwrap().state, State::Firing);
    // The group is open: the offline alert goes out at the group interval, alone.
    assert_eq!(step(&mut e, &[offline()], t0 + 30 * S + 5 * MIN), [(Rule::HostOffline, ItemKind::Firing)]);
    // Hours later the pool alert's repeat is inhibited; only the offline alert repeats.
    let repeats = step(&mut e, &[offline()], t0 + 30 * S + 5 * MIN + 4 * HOUR);
    assert_eq!(repeats, [(Rule::HostOffline, ItemKind::Firing)]);
}

#[test]
fn repeats_every_4_hours_or_1_hour_when_critical_until_acknowledged() {
    let mut e = Engine::new(Settings::default(), vec![]);
    let cap = |v: f64| {
        finding(Rule::PoolCapacity, Some("rpool"), if v >= 90.0 { Level::Critical } else { Level::Warning }, Some(v))
    };
    step(&mut e, &[cap(85.0)], 0);
    assert_eq!(step(&mut e, &[cap(85.0)], 30 * S), [(Rule::PoolCapacity, ItemKind::Firing)]);
    assert_eq!(step(&mut e, &[cap(85.0)], 30 * S + 4 * HOUR - 1), []);
    assert_eq!(step(&mut e, &[cap(85.0)], 30 * S + 4 * HOUR), [(Rule::PoolCapacity, ItemKind::Firing)]);
    // Acknowledged: no repeats.
    let alert_id = e.get(&id(Rule::PoolCapacity, "rpool")).unwrap().id;
    let mut ids = HashSet::new();
    ids.insert(alert_id);
    e.set_acked(&ids);
    let t1 = 30 * S + 4 * HOUR;
    assert_eq!(step(&mut e, &[cap(86.0)], t1 + 8 * HOUR), []);
    // Worse: the acknowledgement is taken back and it is sent at once (group open).
    assert_eq!(step(&mut e, &[cap(92.0)], t1 + 9 * HOUR), [(Rule::PoolCapacity, ItemKind::Firing)]);
    assert!(!e.get(&id(Rule::PoolCapacity, "rpool")).unwrap().acked);
    assert_eq!(step(&mut e, &[cap(92.0)], t1 + 10 * HOUR - 1), []);
    assert_eq!(
        step(&mut e, &[cap(92.0)], t1 + 10 * HOUR),
        [(Rule::PoolCapacity, ItemKind::Firing)],
        "1 h when critical"
    );
}

#[test]
fn pool_errors_renotify_only_when_they_grow_again() {
    let mut e = Engine::new(Settings::default(), vec![]);
    let errors = |n: f64, level| finding(Rule::PoolErrors, Some("rpool"), level, Some(n));
    step(&mut e, &[errors(3.0, Level::Critical)], 0);
    assert_eq!(step(&mut e, &[errors(3.0, Level::Warning)], 30 * S), [(Rule::PoolErrors, ItemKind::Firing)]);
    assert_eq!(step(&mut e, &[errors(3.0, Level::Warning)], 10 * MIN), [], "not grown");
    assert_eq!(step(&mut e, &[errors(5.0, Level::Critical)], 11 * MIN), [(Rule::PoolErrors, ItemKind::Firing)]);
    assert_eq!(step(&mut e, &[errors(5.0, Level::Warning)], 20 * MIN), []);
}

#[test]
fn capacity_clears_only_past_the_hysteresis_margin() {
    let mut e = Engine::new(Settings::default(), vec![]);
    let medium = |cap: f64| Medium {
        pools: Some(vec![Pool { name: "rpool".into(), state: "ONLINE".into(), cap_pct: Some(cap), ..Pool::default() }]),
        ..Medium::default()
    };
    let findings_at = |cap: f64| recorder::state::HostState {
        host_id: "pve1".into(),
        online: true,
        medium: Some(payload("pve1", 0, medium(cap)).into()),
        ..Default::default()
    };
    let alert = |e: &Engine| e.get(&id(Rule::PoolCapacity, "rpool")).map(|a| (a.state, a.severity));
    e.evaluate(&findings_at(81.0), 0);
    assert_eq!(alert(&e), Some((State::Firing, Level::Warning)));
    e.evaluate(&findings_at(77.0), MIN);
    assert_eq!(alert(&e), Some((State::Firing, Level::Warning)), "below 80 but above 75");
    e.evaluate(&findings_at(74.9), 2 * MIN);
    assert_eq!(alert(&e), Some((State::Resolved, Level::Warning)));
    e.evaluate(&findings_at(78.0), 3 * MIN);
    assert_eq!(alert(&e), Some((State::Resolved, Level::Warning)), "does not trigger below 80");
}

#[test]
fn a_hot_cpu_clears_only_past_the_hysteresis_margin() {
    let mut e = Engine::new(Settings::default(), vec![]);
    let state_at = |c: f64| recorder::state::HostState {
        host_id: "pve1".into(),
        online: true,
        fast: Some(
            payload(
                "pve1",
                0,
                wire::Fast {
                    temps: Some(vec![wire::Temp {
                        name: "cpu0".into(),
                        kind: wire::TempKind::Cpu,
                        celsius: c,
                        cores_max: None,
                    }]),
                    ..wire::Fast::default()
                },
            )
            .into(),
        ),
        ..Default::default()
    };
    let alert = |e: &Engine| e.get(&id(Rule::CpuTemperature, "cpu0")).map(|a| a.state);
    e.evaluate(&state_at(91.0), 0);
    assert_eq!(alert(&e), Some(State::Firing));
    e.evaluate(&state_at(86.0), MIN);
    assert_eq!(alert(&e), Some(State::Firing), "below 90 but not below 85");
    e.evaluate(&state_at(84.5), 2 * MIN);
    assert_eq!(alert(&e), Some(State::Resolved));
}

#[test]
fn flapping_sends_one_notice_then_nothing_until_stable() {
    let mut e = Engine::new(Settings::default(), vec![]);
    let mut sent = Vec::new();
    // Degraded and back every 2 minutes for an hour.
    let mut t = 0;
    while t < HOUR {
        let findings = if (t / (2 * MIN)) % 2 == 0 { vec![degraded()] } else { vec![] };
        sent.extend(step(&mut e, &findings, t));
        t += 10 * S;
    }
    let flapping = sent.iter().filter(|k| k.1 == ItemKind::Flapping).count();
    assert_eq!(flapping, 1, "{sent:?}");
    // Fired (sent at 30 s); resolved at 2 min, fired again at 4 min before that resolution
    // was due (no news: receivers still hold it as firing); resolved at 6 min (sent, the
    // group interval is over); fired at 8 min (sent after the group wait); the 6th change
    // (resolved at 10 min) makes it flapping.
    let kinds: Vec<ItemKind> = sent.iter().map(|k| k.1).collect();
    assert_eq!(kinds, [ItemKind::Firing, ItemKind::Resolved, ItemKind::Firing, ItemKind::Flapping]);
    assert!(e.get(&id(Rule::PoolState, "rpool")).unwrap().flapping);
    // Stable (degraded) for 30 minutes: its state is sent once.
    let mut after = Vec::new();
    let mut t = HOUR;
    while t < 3 * HOUR {
        after.extend(step(&mut e, &[degraded()], t));
        t += 10 * S;
    }
    assert_eq!(after, [(Rule::PoolState, ItemKind::Firing)]);
}

#[test]
fn silenced_alerts_wait_for_the_end_of_the_silence() {
    let mut e = Engine::new(Settings::default(), vec![]);
    e.set_silences(vec![Silence {
        id: 1,
        host: "pve1".into(),
        rule: Some("pool_state".into()),
        subject: None,
        ends_ms: HOUR,
        comment: "disk swap".into(),
    }]);
    step(&mut e, &[degraded()], 0);
    assert_eq!(step(&mut e, &[degraded()], 10 * MIN), []);
    assert_eq!(step(&mut e, &[degraded()], HOUR - 1), []);
    // Still degraded when the silence ends: group wait, then sent.
    assert_eq!(step(&mut e, &[degraded()], HOUR), []);
    assert_eq!(step(&mut e, &[degraded()], HOUR + 30 * S), [(Rule::PoolState, ItemKind::Firing)]);
}

#[test]
fn a_stopped_guest_alert_holds_until_the_guest_runs_again() {
    let mut e = Engine::new(Settings::default(), vec![]);
    let guest = |status: &str| Medium {
        vms: Some(vec![wire::Guest { vmid: 101, name: "web".into(), status: status.into(), ..wire::Guest::default() }]),
        ..Medium::default()
    };
    let stop = finding(Rule::GuestStopped, Some("vm/101"), Level::Warning, None);
    e.apply("pve1", &[stop], Some(&guest("stopped")), 0);
    e.apply("pve1", &[], Some(&guest("stopped")), 5 * MIN);
    assert_eq!(e.get(&id(Rule::GuestStopped, "vm/101")).unwrap().state, State::Firing);
    e.apply("pve1", &[], Some(&guest("running")), 10 * MIN);
    assert_eq!(e.get(&id(Rule::GuestStopped, "vm/101")).unwrap().state, State::Resolved);
}

mod persistence {
    use super::*;
    use crate::store;

    fn db() -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = recorder::db::open_and_migrate(&dir.path().join("pm.db")).unwrap();
        recorder::hosts::add_host(&mut conn, "pve1").unwrap();
        (dir, conn)
    }

    fn save(e: &mut Engine, conn: &mut rusqlite::Connection) {
        let dirty = e.take_dirty();
        for (identity, id) in store::save_alerts(conn, &dirty).unwrap() {
            e.set_id(&identity, id);
        }
    }

    #[test]
    fn a_restart_neither_refires_nor_forgets_what_was_sent_or_acknowledged() {
        let (_dir, mut conn) = db();
        let mut e = Engine::new(Settings::default(), vec![]);
        let cap = finding(Rule::PoolCapacity, Some("rpool"), Level::Warning, Some(85.0));
        assert_eq!(step(&mut e, &[degraded(), cap.clone()], 0), []);
        save(&mut e, &mut conn);
        assert_eq!(kinds(&e.flush(30 * S)).len(), 2);
        save(&mut e, &mut conn);
        let cap_id = e.get(&id(Rule::PoolCapacity, "rpool")).unwrap().id;
        store::ack(&conn, cap_id).unwrap();

        // The server restarts an hour later; both conditions still hold.
        let mut e = Engine::new(Settings::default(), store::load_alerts(&conn).unwrap());
        e.set_acked(&store::acked(&conn).unwrap());
        for t in [HOUR, HOUR + MIN, HOUR + 10 * MIN] {
            assert_eq!(step(&mut e, &[degraded(), cap.clone()], t), [], "nothing is sent again");
            save(&mut e, &mut conn);
        }
        // The repeat comes on schedule, for the unacknowledged alert only.
        assert_eq!(step(&mut e, &[degraded(), cap.clone()], 30 * S + 4 * HOUR), [(Rule::PoolState, ItemKind::Firing)]);
        save(&mut e, &mut conn);
        // Resolution clears the stored acknowledgement.
        step(&mut e, &[degraded()], 5 * HOUR);
        save(&mut e, &mut conn);
        assert!(store::acked(&conn).unwrap().is_empty());
        let rows = store::list_alerts(&conn, 5 * HOUR, HOUR).unwrap();
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn an_ack_from_the_cli_between_read_and_write_is_kept() {
        let (_dir, mut conn) = db();
        let mut e = Engine::new(Settings::default(), vec![]);
        e.apply("pve1", &[degraded()], None, 0);
        save(&mut e, &mut conn);
        let alert_id = e.get(&id(Rule::PoolState, "rpool")).unwrap().id;
        store::ack(&conn, alert_id).unwrap();
        e.flush(30 * S);
        save(&mut e, &mut conn);
        assert!(store::acked(&conn).unwrap().contains(&alert_id));
        assert!(store::ack(&conn, 999).is_err());
    }
}

mod delivery {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::channel::{Channel, Notification};
    use crate::http::{HttpClient, RetryPolicy};

    /// How the receiver answers one request.
    #[derive(Clone, Copy)]
    enum Answer {
        Status(u16),
        RetryAfter(u64),
        Hang,
    }

    /// A scripted receiver on 127.0.0.1: each connection gets the next answer (the last
    /// one repeats); every request is recorded as (head, body).
    async fn receiver(script: Vec<Answer>) -> (String, Arc<Mutex<Vec<(String, Vec<u8>, Instant)>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let answer = script[n.min(script.len() - 1)];
                n += 1;
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head, body) = loop {
                        let k = s.read(&mut chunk).await.unwrap();
                        if k == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..k]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if buf.len() >= end + 4 + len {
                            break (head, buf[end + 4..end + 4 + len].to_vec());
                        }
                    };
                    log.lock().unwrap().push((head, body, Instant::now()));
                    let response = match answer {
                        Answer::Status(code) => format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n"),
                        Answer::RetryAfter(secs) => {
                            format!("HTTP/1.1 429 Too Many\r\nretry-after: {secs}\r\ncontent-length: 0\r\n\r\n")
                        }
                        Answer::Hang => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                    };
                    let _ = s.write_all(response.as_bytes()).await;
                });
            }
        });
        (url, seen)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            timeout: Duration::from_millis(300),
            backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        }
    }

    fn notification() -> Notification {
        Notification::new("pve1", Vec::new(), 0)
    }

    #[tokio::test]
    async fn webhook_200_carries_event_id_and_signature() {
        let (url, seen) = receiver(vec![Answer::Status(200)]).await;
        let channel = Channel::new("ops", "webhook", &url, Some("tok".into()), Some("key".into())).unwrap();
        let n = notification();
        let d = HttpClient::new(policy()).send(&channel.request(&n)).await;
        assert_eq!((d.status, d.attempts, d.ok()), (Some(200), 1, true));
        let seen = seen.lock().unwrap();
        let (head, body, _) = &seen[0];
        assert!(head.starts_with("post /hook http/1.1"), "{head}");
        assert!(head.contains(&format!("x-pmon-event-id: {}", n.event_id)), "{head}");
        assert!(head.contains("authorization: bearer tok"), "{head}");
        let signature = format!("x-pmon-signature: sha256={}", crate::channel::webhook::sign("key", body));
        assert!(head.contains(&signature), "{head}");
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["version"], "4");
    }

    #[tokio::test]
    async fn a_429_is_retried_after_its_retry_after() {
        let (url, seen) = receiver(vec![Answer::RetryAfter(1), Answer::Status(204)]).await;
        let channel = Channel::new("ops", "ntfy", &url, None, None).unwrap();
        let d = HttpClient::new(policy()).send(&channel.request(&notification())).await;
        assert_eq!((d.status, d.attempts, d.ok()), (Some(204), 2, true));
        let seen = seen.lock().unwrap();
        let gap = seen[1].2 - seen[0].2;
        assert!(gap >= Duration::from_millis(950), "retried after {gap:?}, not the 1 s asked");
        assert!(seen[0].0.contains("title: [pve1]"), "{}", seen[0].0);
    }

    #[tokio::test]
    async fn a_500_is_retried_then_given_up() {
        let (url, seen) = receiver(vec![Answer::Status(500)]).await;
        let channel = Channel::new("ops", "webhook", &url, None, None).unwrap();
        let d = HttpClient::new(policy()).send(&channel.request(&notification())).await;
        assert_eq!((d.status, d.attempts, d.ok()), (Some(500), 3, false));
        assert_eq!(seen.lock().unwrap().len(), 3);
        assert!(d.error.unwrap().contains("HTTP 500 after 3 attempt(s)"));
    }

    #[tokio::test]
    async fn a_4xx_is_not_retried() {
        let (url, seen) = receiver(vec![Answer::Status(404)]).await;
        let channel = Channel::new("ops", "webhook", &url, None, None).unwrap();
        let d = HttpClient::new(policy()).send(&channel.request(&notification())).await;
        assert_eq!((d.status, d.attempts, d.ok()), (Some(404), 1, false));
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_hanging_receiver_times_out() {
        let (url, seen) = receiver(vec![Answer::Hang]).await;
        let channel = Channel::new("ops", "webhook", &url, None, None).unwrap();
        let started = Instant::now();
        let d = HttpClient::new(RetryPolicy { attempts: 2, ..policy() }).send(&channel.request(&notification())).await;
        assert_eq!((d.status, d.attempts, d.ok()), (None, 2, false));
        assert!(d.error.unwrap().contains("no response within"));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    /// A warning about rpool on pve1, after 2 suppressed messages.
    fn degraded_pool() -> Notification {
        let item = crate::notify::Item {
            id: 7,
            identity: super::id(super::Rule::PoolState, "rpool"),
            kind: super::ItemKind::Firing,
            severity: super::Level::Warning,
            message: "pool rpool is DEGRADED".into(),
            started_ms: 0,
            ended_ms: None,
        };
        Notification::new("pve1", vec![item], 2)
    }

    /// Sends `n` on a channel of `kind` at `http://127.0.0.1:PORT{path}` to a receiver
    /// answering 200 and returns that base URL, the request line, every header sorted
    /// (lowercase, as the receiver records them), and the body as JSON.
    async fn exchange(
        kind: &str,
        path: &str,
        token: Option<&str>,
        n: &Notification,
    ) -> (String, String, Vec<(String, String)>, serde_json::Value) {
        let (hook, seen) = receiver(vec![Answer::Status(200)]).await;
        let base = hook.trim_end_matches("/hook").to_owned();
        let channel = Channel::new("ops", kind, &format!("{base}{path}"), token.map(Into::into), None).unwrap();
        let d = HttpClient::new(policy()).send(&channel.request(n)).await;
        assert_eq!((d.status, d.attempts, d.ok()), (Some(200), 1, true), "{kind}");
        let seen = seen.lock().unwrap();
        let (head, body, _) = &seen[0];
        let mut lines = head.lines();
        let request_line = lines.next().unwrap().to_owned();
        let mut headers: Vec<(String, String)> = lines
            .map(|l| {
                let (name, value) = l.split_once(':').unwrap();
                (name.to_owned(), value.trim().to_owned())
            })
            .collect();
        headers.sort();
        (base, request_line, headers, serde_json::from_slice(body).unwrap())
    }

    /// The headers every JSON request carries, with the kind's own, sorted.
    fn expected_headers(
        base: &str,
        n: &Notification,
        body: &serde_json::Value,
        own: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = [
            ("content-length", serde_json::to_vec(body).unwrap().len().to_string().as_str()),
            ("content-type", "application/json"),
            ("host", base.trim_start_matches("http://")),
            ("user-agent", concat!("proxmox-monitor/", env!("CARGO_PKG_VERSION"))),
            ("x-pmon-event-id", n.event_id.as_str()),
        ]
        .iter()
        .chain(own)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        headers.sort();
        headers
    }

    const TEXT: &str = "WARNING: pool rpool is DEGRADED (alert 7)\n\
                        2 more notification(s) about pve1 were suppressed by the rate limit";

    #[tokio::test]
    async fn gotify_posts_title_message_and_priority_with_its_key() {
        let n = degraded_pool();
        let (base, line, headers, body) = exchange("gotify", "/", Some("appkey"), &n).await;
        assert_eq!(line, "post /message http/1.1");
        let expected = serde_json::json!({"title": "[pve1] 1 firing", "message": TEXT, "priority": 5});
        assert_eq!(body, expected);
        assert_eq!(headers, expected_headers(&base, &n, &body, &[("x-gotify-key", "appkey")]));
    }

    #[tokio::test]
    async fn discord_posts_one_embed_and_mentions_nobody() {
        let n = degraded_pool();
        let (base, line, headers, body) = exchange("discord", "/api/webhooks/1/abc", None, &n).await;
        assert_eq!(line, "post /api/webhooks/1/abc http/1.1");
        let expected = serde_json::json!({
            "username": "proxmox-monitor",
            "allowed_mentions": {"parse": []},
            "embeds": [{"title": "[pve1] 1 firing", "description": TEXT, "color": 0xE0A030}],
        });
        assert_eq!(body, expected);
        assert_eq!(headers, expected_headers(&base, &n, &body, &[]));
    }

    #[tokio::test]
    async fn slack_posts_text_and_blocks() {
        let n = degraded_pool();
        let (base, line, headers, body) = exchange("slack", "/services/T0/B0/x", None, &n).await;
        assert_eq!(line, "post /services/t0/b0/x http/1.1");
        let expected = serde_json::json!({
            "text": "[pve1] 1 firing",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "[pve1] 1 firing"}},
                {"type": "section", "text": {"type": "mrkdwn", "text": TEXT}},
            ],
        });
        assert_eq!(body, expected);
        assert_eq!(headers, expected_headers(&base, &n, &body, &[]));
    }

    #[tokio::test]
    async fn telegram_sends_the_message_to_the_chat_with_the_bot_token_in_the_path() {
        let n = degraded_pool();
        let (base, line, headers, body) = exchange("telegram", "/?chat_id=-1001234", Some("123:abc"), &n).await;
        assert_eq!(line, "post /bot123:abc/sendmessage http/1.1");
        let expected = serde_json::json!({
            "chat_id": "-1001234",
            "text": format!("[pve1] 1 firing\n{TEXT}"),
            "disable_web_page_preview": true,
        });
        assert_eq!(body, expected);
        assert_eq!(headers, expected_headers(&base, &n, &body, &[]));
    }

    /// Every kind goes through the one client: a 503 is retried (the retry, Retry-After
    /// and timeout cases above hold for all of them).
    #[tokio::test]
    async fn every_kind_is_retried_by_the_one_client() {
        for (kind, token) in [
            ("webhook", None),
            ("ntfy", None),
            ("gotify", Some("k")),
            ("discord", None),
            ("slack", None),
            ("telegram", Some("1:a")),
        ] {
            let (url, seen) = receiver(vec![Answer::Status(503), Answer::Status(200)]).await;
            let channel = Channel::new("ops", kind, &format!("{url}?chat_id=1"), token.map(Into::into), None).unwrap();
            let d = HttpClient::new(policy()).send(&channel.request(&notification())).await;
            assert_eq!((d.status, d.attempts, d.ok()), (Some(200), 2, true), "{kind}");
            assert_eq!(seen.lock().unwrap().len(), 2, "{kind}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_fails_after_its_attempts() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let channel = Channel::new("ops", "webhook", &url, None, None).unwrap();
        let d = HttpClient::new(policy()).send(&channel.request(&notification())).await;
        assert_eq!((d.status, d.attempts, d.ok()), (None, 3, false));
    }
}

/// The soak (issue #13): a pool that flaps every minute for six hours, through the
/// engine, the notifier and the rate limiter, with the server restarting (alerts reloaded
/// from SQLite) every hour. Rounds every 5 s, as `serve` runs them.
#[test]
fn a_pool_flapping_every_minute_for_six_hours_sends_exactly_three_messages() {
    use crate::limit::{Admit, Limiter};
    use crate::store;

    let dir = tempfile::tempdir().unwrap();
    let mut conn = recorder::db::open_and_migrate(&dir.path().join("pm.db")).unwrap();
    recorder::hosts::add_host(&mut conn, "pve1").unwrap();
    let settings = Settings::default();
    let mut limiter = Limiter::new(settings.channel_rate, settings.host_rate);
    let mut e = Engine::new(settings.clone(), vec![]);
    let mut sent: Vec<(i64, ItemKind)> = Vec::new();
    let mut suppressed = 0;
    let round = 5 * S;
    let mut t = 0;
    while t < 6 * HOUR + 45 * MIN {
        // Degraded in even minutes, ONLINE in odd ones; stable (ONLINE) after six hours.
        let flapping = t < 6 * HOUR && (t / MIN) % 2 == 0;
        let findings = if flapping { vec![degraded()] } else { vec![] };
        e.apply("pve1", &findings, None, t);
        for message in e.flush(t) {
            match limiter.admit("ops", &message.host, t) {
                Admit::Send { .. } => sent.extend(message.items.iter().map(|i| (t, i.kind))),
                Admit::Suppressed => suppressed += 1,
            }
        }
        for (identity, id) in store::save_alerts(&mut conn, &e.take_dirty()).unwrap() {
            e.set_id(&identity, id);
        }
        if t > 0 && t % HOUR == 0 {
            e = Engine::new(settings.clone(), store::load_alerts(&conn).unwrap());
        }
        t += round;
    }
    assert_eq!(
        sent,
        [
            // Fired at first sight, sent after the group wait.
            (30 * S, ItemKind::Firing),
            // The 6th change (resolved at 5 min) makes it flapping; the notice waits for
            // the group interval after the first message.
            (30 * S + 5 * MIN, ItemKind::Flapping),
            // Six hours of flapping: nothing. The last change (resolved at 5 h 59 min),
            // then 30 minutes stable: its state, once.
            (6 * HOUR - MIN + 30 * MIN, ItemKind::Resolved),
        ],
        "{sent:?}"
    );
    assert_eq!(suppressed, 0, "the rate limiter never had to step in");
    let alert = e.get(&id(Rule::PoolState, "rpool")).unwrap();
    assert!(!alert.flapping && alert.state == State::Resolved);
}
