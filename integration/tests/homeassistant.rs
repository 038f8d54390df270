//! Home Assistant discovery end to end (issue #17): the real server with `HA_DISCOVERY=1`,
//! a real agent with a fake `zpool`, and `mosquitto_sub` as the `ha` credential reading
//! the discovery config and the derived state topics; `host remove` removes the device.

use std::process::{Command, Stdio};
use std::time::Duration;

use integration::*;

use crate::alerting::{fake_zpool, set_pool};

const HOST: &str = "pve-ha";
const CONFIG: &str = "homeassistant/device/pmon_pve-ha/config";

/// `mosquitto_sub` with the `ha` credential: the first message on `topic` (the retained
/// one, if any), or None when none arrives within 3 s.
fn first(server: &TestServer, token: &str, topic: &str) -> Option<serde_json::Value> {
    let port = server.mqtt.port().to_string();
    let out = run_bounded(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port, "-i", "hass", "-u", "hass", "-P", token])
            .args(["-t", topic, "-C", "1", "-W", "3"]),
        Duration::from_secs(10),
    );
    out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("a JSON payload"))
}

#[test]
fn home_assistant_reads_a_live_hosts_device_and_states_and_the_device_goes_with_host_remove() {
    let mut server = Server::start_with(vec![("HA_DISCOVERY".into(), "1".into())]);
    let token = server.add_host(HOST);
    let out = server.cli(&["ha", "add", "hass", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ha: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ha["discovery_prefix"], "homeassistant");
    let ha_token = ha["token"].as_str().unwrap().to_owned();

    let fake = FakeProxmox::new();
    fake_zpool(&fake);
    set_pool(&fake, false);
    let config = agent_config(server.dir.path(), &format!("mqtt://{}", server.mqtt), HOST, &token);
    let mut agent = spawn_agent(&config, &fake);

    // The device config follows the host's shape: its pool appears once reported.
    let device = wait_for("the device config with pool tank", Duration::from_secs(30), || {
        first(&server, &ha_token, CONFIG).filter(|c| c["components"].get("pool_tank_health").is_some())
    });
    assert_eq!(device["device"]["model"], "Proxmox VE");
    assert_eq!(device["device"]["identifiers"][0], "pmon_pve-ha");
    let url = device["device"]["configuration_url"].as_str().unwrap();
    assert!(url.ends_with("/hosts/pve-ha"), "{url}");
    assert_eq!(device["components"]["online"]["state_topic"], "pmon/v1/pve-ha/status");

    let fast = wait_for("ha/fast with a load", Duration::from_secs(20), || {
        first(&server, &ha_token, "pmon/v1/pve-ha/ha/fast").filter(|f| f["load1"].is_number())
    });
    // The agent reads this machine's /proc and /: its health depends on the machine (a busy
    // build can make load15 "warning"), its presence does not.
    assert!(["online", "warning", "critical"].contains(&fast["status"].as_str().unwrap_or("")), "{fast}");
    let medium = first(&server, &ha_token, "pmon/v1/pve-ha/ha/medium").expect("ha/medium retained");
    assert_eq!(medium["pool_tank_health"], "ONLINE", "{medium}");
    let slow = first(&server, &ha_token, "pmon/v1/pve-ha/ha/slow").expect("ha/slow retained");
    // Every template of the config is a key of the payload on its state topic.
    for (id, c) in device["components"].as_object().unwrap() {
        let Some(template) = c.get("value_template").and_then(|t| t.as_str()) else { continue };
        let key = template.trim_start_matches("{{ value_json.").trim_end_matches(" }}");
        let payload = match c["state_topic"].as_str().unwrap() {
            "pmon/v1/pve-ha/ha/fast" => &fast,
            "pmon/v1/pve-ha/ha/medium" => &medium,
            "pmon/v1/pve-ha/ha/slow" => &slow,
            other => panic!("{id} reads {other}"),
        };
        assert!(payload.get(key).is_some(), "{id}: {key} not in {payload}");
    }

    // Home Assistant's birth is the one thing it may publish; the server reserves the rest.
    let port = server.mqtt.port().to_string();
    let publish = |user: &str, pass: &str, topic: &str| {
        run_bounded(
            Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port, "-i", user, "-u", user, "-P", pass, "-q", "1"])
                .args(["-t", topic, "-m", "online"]),
            Duration::from_secs(10),
        )
        .status
        .success()
    };
    assert!(publish("hass", &ha_token, "homeassistant/status"), "the birth is allowed");
    assert!(!publish("hass", &ha_token, CONFIG), "a config from Home Assistant is refused");

    // `host remove` in the CLI process: the server clears the device within a few seconds.
    let watch = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port, "-i", "hass-watch", "-u", "hass", "-P", &ha_token])
        .args(["-t", CONFIG, "-C", "2", "-W", "20", "-v"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let out = server.cli(&["host", "remove", HOST]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "the retained config, then the removal: {text}");
    // mosquitto_sub prints an empty payload as `(null)`.
    assert_eq!(lines[1], format!("{CONFIG} (null)"), "an empty payload removes the device: {text}");
    assert!(first(&server, &ha_token, CONFIG).is_none(), "nothing retained any more");
    assert!(first(&server, &ha_token, "pmon/v1/pve-ha/ha/fast").is_none(), "state cleared too");

    terminate(&mut agent);
    server.stop();
}
