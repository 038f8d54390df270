//! A wildcard subscriber's retained replay, found by `bench_fleet --reconnect restart`
//! (docs/RELIABILITY.md, "A wildcard subscriber gets at most 100 retained statuses").

use std::process::Command;
use std::time::Duration;

use integration::load::Publisher;
use integration::{run_bounded, Server};

/// More hosts than rumqttd replays: 100 at QoS 1 (its inflight limit), 200 at QoS 0.
const HOSTS: usize = 250;

#[test]
#[ignore = "fails until fixed: rumqttd replays at most 100 retained messages per subscription"]
fn a_wildcard_subscriber_gets_every_hosts_retained_status() {
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
        .args(["-q", "1", "-v", "-W", "3"]);
    let out = run_bounded(&mut sub, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    let online = text.lines().filter(|line| line.ends_with(" online")).count();
    assert_eq!(online, HOSTS, "retained `online`s replayed to a new `pmon/v1/+/status` subscriber");
    drop(hosts);
}
