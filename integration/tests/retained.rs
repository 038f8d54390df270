//! A wildcard subscriber's retained replay, found by `bench_fleet --reconnect restart`
//! (docs/RELIABILITY.md, "A wildcard subscriber gets every retained status").
//! rumqttd 0.20 sent a new subscription at most as many retained messages as its free
//! slots (100 inflight at QoS 1, `max_outgoing_packet_count` = 200 at QoS 0) and dropped
//! the rest; the vendored rumqttd holds them and sends them as slots free up
//! (vendor/rumqttd/PATCHES.md). Both tests fail without that patch.

use std::process::Command;
use std::time::Duration;

use integration::load::Publisher;
use integration::{run_bounded, Server};

/// More hosts than upstream rumqttd replays at either QoS (100 at QoS 1, 200 at QoS 0).
const HOSTS: usize = 250;

#[test]
fn a_wildcard_subscriber_gets_every_hosts_retained_status() {
    assert_eq!(retained_onlines_replayed("1"), HOSTS, "retained `online`s replayed to a QoS 1 `+/status` subscriber");
}

#[test]
fn a_qos0_wildcard_subscriber_gets_every_hosts_retained_status() {
    assert_eq!(retained_onlines_replayed("0"), HOSTS, "retained `online`s replayed to a QoS 0 `+/status` subscriber");
}

/// Connects `HOSTS` hosts, then counts the `online`s a new `mosquitto_sub -t 'pmon/v1/+/status'`
/// at `qos` receives in 3 s (`-W`: it exits after that long with no message).
fn retained_onlines_replayed(qos: &str) -> usize {
    let server = Server::start_with_hosts(HOSTS, vec![]);
    let observer = server.add_observer("ops-all");
    let hosts: Vec<Publisher> = server
        .tokens
        .iter()
        .map(|(host, token)| Publisher::connect(server.mqtt, host, token).expect("the host connects"))
        .collect();
    // Every `online` is handed to the router within moments of its CONNACK.
    std::thread::sleep(Duration::from_secs(2));
    let port = server.mqtt.port().to_string();
    let mut sub = Command::new("mosquitto_sub");
    sub.args(["-h", "127.0.0.1", "-p", &port, "-u", "ops-all", "-P", &observer, "-t", "pmon/v1/+/status"])
        .args(["-q", qos, "-v", "-W", "3"]);
    let out = run_bounded(&mut sub, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    let online = text.lines().filter(|line| line.ends_with(" online")).count();
    drop(hosts);
    online
}
