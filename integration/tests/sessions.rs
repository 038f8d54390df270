//! Sessions keyed by credential and client id, and two agents sharing one host's token
//! (issue 15, point 3): real `mosquitto_sub`s with one observer credential coexist, an
//! observer's 17th session closes its oldest, and two agents of one host flapping between
//! two source addresses (127.0.0.1 and 127.0.0.2, both loopback) are stopped and shown.

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::gateway::{closed_within, connect, mosquitto, options, raw_connect, runtime, stderr};

#[test]
fn two_mosquitto_subs_with_one_observer_credential_coexist() {
    let server = InProcessServer::start();
    let token = server.add_host("pve-two");
    let observer = server.add_observer("ops-two");
    let port = server.mqtt.port().to_string();
    let topic = "pmon/v1/pve-two/medium";
    // Two terminals running the runbook's command: no client id given, so libmosquitto
    // makes a random one for each.
    let sub = || {
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port, "-u", "ops-two", "-P", &observer, "-t", topic])
            .args(["-v", "-C", "1", "-W", "20"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (sub(), sub());
    wait_for("both subscribers connected", Duration::from_secs(10), || {
        (server.metric("pmon_mqtt_accepted_total") >= 2).then_some(())
    });
    // Before the fix they took the session from each other every second, forever.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(server.metric("pmon_mqtt_kicked_total"), 0, "neither subscriber was disconnected");
    assert_eq!(server.metric("pmon_mqtt_accepted_total"), 2, "no reconnects");
    assert_eq!(server.metric("pmon_mqtt_sessions"), 2);

    let out = mosquitto(
        "mosquitto_pub",
        &server,
        &["-i", "pve-two", "-u", "pve-two", "-P", &token, "-q", "1", "-t", topic, "-m", "hello"],
    );
    assert!(out.status.success(), "mosquitto_pub: {}", stderr(&out));
    for sub in [first, second] {
        let out = sub.wait_with_output().unwrap();
        let lines = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "mosquitto_sub: {} {lines}", stderr(&out));
        assert_eq!(lines.trim(), format!("{topic} hello"), "each subscriber got the message");
    }
    assert_eq!(server.metric("pmon_mqtt_kicked_total"), 0);
}

#[test]
fn an_observers_client_id_replaces_its_own_session_and_the_seventeenth_closes_the_oldest() {
    let server = InProcessServer::start();
    let observer = server.add_observer("ops-cap");
    let rt = runtime();
    rt.block_on(async {
        let (_a, mut a_loop) = connect(options(&server, "term-a", "ops-cap", &observer)).await.unwrap();
        let (_a2, mut a2_loop) = connect(options(&server, "term-a", "ops-cap", &observer)).await.unwrap();
        closed_within(&mut a_loop, Duration::from_secs(10)).await;
        // term-a (the second) plus fifteen more: sixteen, the cap.
        let mut clients = Vec::new();
        for n in 0..15 {
            clients.push(connect(options(&server, &format!("term-{n}"), "ops-cap", &observer)).await.unwrap());
        }
        assert_eq!(server.metric("pmon_mqtt_observer_evictions_total"), 0);
        let _last = connect(options(&server, "term-last", "ops-cap", &observer)).await.unwrap();
        // The oldest live session is the second term-a.
        closed_within(&mut a2_loop, Duration::from_secs(10)).await;
        server.wait_metric("pmon_mqtt_observer_evictions_total", 1);
        for (_, eventloop) in &mut clients {
            let still = tokio::time::timeout(Duration::from_millis(50), eventloop.poll()).await;
            assert!(!matches!(still, Ok(Err(_))), "a younger session was closed: {still:?}");
        }
    });
    assert_eq!(server.metric("pmon_mqtt_kicked_total"), 2, "one replaced, one evicted");
    assert_eq!(server.metric("pmon_mqtt_sessions"), 0);
}

/// What one simulated agent went through.
#[derive(Debug, Default)]
struct Tally {
    accepted: u32,
    /// CONNACK return codes of refused attempts.
    refused: Vec<u8>,
    /// Sessions the server closed.
    closed: u32,
}

/// An agent of `host` connecting from `local` until `until`: CONNECT, hold the session
/// until the server closes it, reconnect 300 ms later (as an agent's first backoff step
/// does); after a refusal retry every second, faster than the real agent (which waits a
/// minute), to show the server holds even against a client that hammers.
async fn flapping_agent(server: SocketAddr, local: IpAddr, host: &str, token: &str, until: Instant) -> Tally {
    let mut tally = Tally::default();
    while Instant::now() < until {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(local, 0)).unwrap();
        let mut stream = socket.connect(server).await.unwrap();
        stream.write_all(&raw_connect(host, host, token, 60)).await.unwrap();
        let mut connack = [0u8; 4];
        stream.read_exact(&mut connack).await.unwrap();
        if connack[3] != 0 {
            tally.refused.push(connack[3]);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tally.accepted += 1;
        let mut buf = [0u8; 1024];
        let left = until.saturating_duration_since(Instant::now());
        let held =
            tokio::time::timeout(left, async { while !matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {} }).await;
        if held.is_ok() {
            tally.closed += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    tally
}

#[test]
fn two_agents_sharing_a_token_stop_flapping_and_are_named_on_the_card() {
    let server = InProcessServer::start();
    let token = server.add_host("pve-clone");
    let rt = runtime();
    let until = Instant::now() + Duration::from_secs(12);
    let agent = |local: [u8; 4], delay: u64| {
        let (token, mqtt) = (token.clone(), server.mqtt);
        rt.spawn(async move {
            // The second agent starts once the first holds the session.
            tokio::time::sleep(Duration::from_millis(delay)).await;
            flapping_agent(mqtt, local.into(), "pve-clone", &token, until).await
        })
    };
    let (first, second) = (agent([127, 0, 0, 1], 0), agent([127, 0, 0, 2], 300));

    // Four takeovers from the other address (about 1.5 s here) trip the detector.
    server.wait_metric("pmon_mqtt_clones_detected_total", 1);
    let kicks = server.metric("pmon_mqtt_kicked_total");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(server.metric("pmon_mqtt_kicked_total"), kicks, "the flapping stopped");
    assert_eq!(server.metric("pmon_mqtt_sessions"), 1);

    // While the kept agent is connected: the event, and the reason on its card.
    let event: String =
        server.sql("SELECT message FROM events WHERE host_id = 'pve-clone' AND kind = 'clone' ORDER BY id DESC");
    assert!(event.starts_with("two agents use this host's token: 127.0.0.1 and 127.0.0.2; "), "{event}");
    let cookie = server.login();
    let url = format!("http://{}/api/v1/hosts/pve-clone", server.http);
    let (code, _, body) = http_get_with(&url, Some(&cookie)).expect("/api/v1/hosts/pve-clone");
    assert_eq!(code, 200, "{body}");
    let host: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(host["card"]["online"], true, "{body}");
    assert_eq!(host["card"]["status"], "critical", "{body}");
    assert_eq!(host["card"]["reasons"][0], "two agents use this host's token: 127.0.0.1 and 127.0.0.2", "{body}");
    assert_eq!(host["events"][0]["kind"], "clone", "{body}");

    let (ta, tb) = rt.block_on(async { (first.await.unwrap(), second.await.unwrap()) });
    assert_eq!(server.metric("pmon_mqtt_clones_detected_total"), 1, "{ta:?} {tb:?}");
    // Three takeovers before the trip: each CONNECT is judged against the session it
    // replaces, in one critical section with its join (`broker/tests/takeover_race.rs`).
    assert_eq!(kicks, 3, "kicks before the trip, then none: {ta:?} {tb:?}");
    let (kept, refused) = if ta.refused.is_empty() { (&ta, &tb) } else { (&tb, &ta) };
    assert!(kept.refused.is_empty(), "the connected agent is kept: {ta:?} {tb:?}");
    assert_eq!(u64::from(kept.closed + refused.closed), kicks, "{ta:?} {tb:?}");
    // Refused about once a second for ten seconds, each with "identifier rejected".
    assert!(refused.refused.len() >= 5, "{refused:?}");
    assert!(refused.refused.iter().all(|code| *code == 2), "CONNACK 2, identifier rejected: {refused:?}");
    assert_eq!(server.metric("pmon_mqtt_refused_total{reason=\"clone\"}"), refused.refused.len() as u64);
}
