//! Hostile and slow clients (#15): malformed, oversized and spoofed MQTT traffic at rate,
//! a slowloris on the dashboard and an MQTT subscriber that never reads. The server must
//! count exactly what was sent and keep serving everyone else. docs/RELIABILITY.md.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

use integration::load::Publisher;
use integration::*;

use crate::faults_outage::Stored;

/// Real agents that are killed when the test ends, however it ends.
struct Agents(Vec<Child>);

impl Agents {
    fn start(server: &TestServer, fake: &FakeProxmox, hosts: &[&str]) -> Agents {
        let url = format!("ws://{}/mqtt", server.http);
        let children = hosts
            .iter()
            .map(|h| spawn_agent(&agent_config(server.dir.path(), &url, h, &server.add_host(h)), fake))
            .collect();
        Agents(children)
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Publishes one packet on a fresh session of `host` and waits for the server to close
/// the connection (within 5 s).
fn publish_and_be_closed(server: &TestServer, host: &str, token: &str, topic: &str, payload: &[u8]) {
    let mut client = Publisher::connect(server.mqtt, host, token).unwrap();
    let _ = client.publish(topic, payload);
    let start = Instant::now();
    while client.flush().is_ok() {
        assert!(start.elapsed() < Duration::from_secs(5), "{host}: not closed after publishing on {topic}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until every good host has samples past `after` and all of them once each.
fn every_sample_once(server: &TestServer, hosts: &[&str], after: &[i64]) {
    let mut last = Vec::new();
    wait_for("the good agents' samples, each once", Duration::from_secs(30), || {
        last = hosts.iter().map(|h| Stored::of(server, h, "fast")).collect::<Vec<_>>();
        let past = last.iter().zip(after).all(|(s, a)| s.high > a + 2);
        (past && last.iter().all(Stored::complete)).then_some(())
    });
}

/// #15: from raw MQTT clients, as fast as they go: 500 payloads that are not JSON and 100
/// of an unknown schema on one host's own topic (counted and dropped, the session stays),
/// 20 sessions each sending one payload over 256 KiB, 20 publishing on another host's
/// topic, 20 on a wildcard topic name, 20 CONNECTs with a wrong token. Every counter on
/// `/metrics` equals what was sent; two real agents publishing meanwhile lose nothing.
#[test]
fn hostile_traffic_at_rate_is_counted_exactly_and_good_agents_lose_nothing() {
    let server = InProcessServer::start();
    let fake = FakeProxmox::new();
    let good = ["pve-good1", "pve-good2"];
    let agents = Agents::start(&server, &fake, &good);
    let junk = server.add_host("pve-junk");
    let big = server.add_host("pve-big");
    let spoof = server.add_host("pve-spoof");
    let wild = server.add_host("pve-wild");
    wait_for("the good agents' first samples", Duration::from_secs(30), || {
        good.iter().all(|h| Stored::of(&server, h, "fast").high >= 2).then_some(())
    });
    let before: Vec<i64> = good.iter().map(|h| Stored::of(&server, h, "fast").high).collect();
    let _ = server.metric("pmon_mqtt_sessions"); // The metrics token, made before the storm.

    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut client = Publisher::connect(server.mqtt, "pve-junk", &junk).unwrap();
            let unknown =
                r#"{"schema":99,"host_id":"pve-junk","ts_ms":1,"boot_id":"b","seq":1,"agent_version":"x","data":{}}"#;
            for n in 0..600 {
                let payload = if n < 500 { "{not json" } else { unknown };
                client.publish("pmon/v1/pve-junk/fast", payload.as_bytes()).unwrap();
            }
            wait_for("600 PUBACKs", Duration::from_secs(20), || {
                client.flush().unwrap();
                (client.acked == 600).then_some(())
            });
        });
        s.spawn(|| {
            for _ in 0..20 {
                publish_and_be_closed(&server, "pve-big", &big, "pmon/v1/pve-big/slow", &vec![b'x'; 256 * 1024 + 1]);
            }
        });
        s.spawn(|| {
            for _ in 0..20 {
                let sample = fast_json("pve-good1", "forged", 1, wire::now_ms());
                publish_and_be_closed(&server, "pve-spoof", &spoof, "pmon/v1/pve-good1/fast", sample.as_bytes());
            }
        });
        s.spawn(|| {
            for _ in 0..20 {
                publish_and_be_closed(&server, "pve-wild", &wild, "pmon/v1/+/fast", b"x");
            }
        });
        s.spawn(|| {
            for _ in 0..20 {
                assert!(Publisher::connect(server.mqtt, "pve-good2", "not-the-token").is_err(), "refused");
            }
        });
    });
    eprintln!("the hostile traffic took {:?}", started.elapsed());

    server.wait_metric("pmon_recorder_rejected_total{reason=\"bad_json\"}", 500);
    server.wait_metric("pmon_recorder_rejected_total{reason=\"unknown_schema\"}", 100);
    server.wait_metric("pmon_mqtt_acl_violations_total{reason=\"oversized\"}", 20);
    server.wait_metric("pmon_mqtt_acl_violations_total{reason=\"foreign_topic\"}", 20);
    server.wait_metric("pmon_mqtt_acl_violations_total{reason=\"invalid_topic\"}", 20);
    server.wait_metric("pmon_mqtt_refused_total{reason=\"auth\"}", 20);
    // A forged sample stored for pve-good1 would be a second row of its seq 1.
    every_sample_once(&server, &good, &before);
    assert_eq!(server.metric("pmon_mqtt_sessions"), 2, "the good agents were never closed");
    drop(agents);
}

/// A raw observer that subscribes to every host's topics and then never reads its socket.
fn never_reading_observer(server: &TestServer, name: &str, token: &str) -> TcpStream {
    let mut s = TcpStream::connect(server.mqtt).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&crate::gateway::raw_connect(name, name, token, 600)).unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK accepted");
    let filter = b"pmon/v1/#";
    let mut subscribe = vec![0x82, (2 + 2 + filter.len() + 1) as u8, 0, 1, 0, filter.len() as u8];
    subscribe.extend_from_slice(filter);
    subscribe.push(1);
    s.write_all(&subscribe).unwrap();
    s
}

/// #15: 100 slowloris connections on the dashboard (a request line, then one header byte
/// a second from each) and an observer subscribed to everything that never reads while a
/// host floods 40 MB through the broker. Meanwhile `/health` answers within 1 s each
/// time, a good host's 100 samples are each acknowledged and stored within 5 s of being
/// published, and another observer gets each within 2 s. The limits are generous; a
/// server blocked on either slow client would miss them by far.
#[test]
fn slow_http_and_mqtt_clients_hold_up_no_one_else() {
    let server = InProcessServer::start();
    let good = server.add_host("pve-fine");
    let flood = server.add_host("pve-flood");
    let slow = server.add_observer("ops-slow");
    let watcher = server.add_observer("ops-watch");
    let mut slowloris: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(server.http).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    let _never = never_reading_observer(&server, "ops-slow", &slow);
    // The other observer: mosquitto_sub printing each fast sample of pve-fine as it comes.
    let mut sub = std::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &server.mqtt.port().to_string(), "-u", "ops-watch", "-P", &watcher])
        .args(["-i", "ops-watch", "-q", "1", "-t", "pmon/v1/pve-fine/fast"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub (Debian mosquitto-clients; scripts/test installs it)");
    let lines = lines_of(sub.stdout.take().unwrap());
    std::thread::sleep(Duration::from_millis(500)); // mosquitto_sub subscribed.

    let mut flooder = Publisher::connect(server.mqtt, "pve-flood", &flood).unwrap();
    let big = vec![b'x'; 200 * 1024];
    let mut fine = Publisher::connect(server.mqtt, "pve-fine", &good).unwrap();
    let health = format!("http://{}/health", server.http);
    let mut worst_health = Duration::ZERO;
    let mut worst_delivery = Duration::ZERO;
    for seq in 1..=100u64 {
        for _ in 0..2 {
            flooder.publish("pmon/v1/pve-flood/slow", &big).unwrap();
        }
        let published = Instant::now();
        fine.publish("pmon/v1/pve-fine/fast", fast_json("pve-fine", "fine", seq, wire::now_ms()).as_bytes()).unwrap();
        let line =
            lines.recv_timeout(Duration::from_secs(2)).unwrap_or_else(|_| panic!("sample {seq} delivered within 2 s"));
        assert!(line.contains(&format!("\"seq\":{seq},")), "{line}");
        worst_delivery = worst_delivery.max(published.elapsed());
        if seq % 10 == 0 {
            let asked = Instant::now();
            assert_eq!(http_get(&health).map(|(code, _)| code), Some(200));
            worst_health = worst_health.max(asked.elapsed());
            // One byte more from every slowloris connection.
            for s in &mut slowloris {
                let _ = s.write_all(b"X");
            }
        }
        let _ = flooder.flush();
        std::thread::sleep(Duration::from_millis(50));
    }
    let done = Instant::now();
    wait_for("every PUBACK of pve-fine", Duration::from_secs(5), || {
        fine.flush().unwrap();
        (fine.acked == 100).then_some(())
    });
    wait_for("every sample of pve-fine stored", Duration::from_secs(5), || {
        (server.sql::<i64>("SELECT count(DISTINCT seq) FROM fast_samples WHERE host_id = 'pve-fine'") == 100)
            .then_some(())
    });
    eprintln!(
        "while slow clients held on: /health worst {worst_health:?}, delivery worst {worst_delivery:?}, \
         stored within {:?} of the last publish; the flooder got {} PUBACKs",
        done.elapsed(),
        flooder.acked
    );
    assert!(worst_health < Duration::from_secs(1), "/health took {worst_health:?}");
    let _ = sub.kill();
    let _ = sub.wait();
}

/// Each line `read` produces, on a channel.
fn lines_of(read: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(read).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
