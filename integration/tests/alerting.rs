//! Alerting end to end (issue #13): the real server and agent, a fake `zpool` whose
//! output the test rewrites while the agent runs, and a webhook receiver on loopback; the
//! `silence` and `rule` CLIs.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOST: &str = "pve-alert";

/// The bodies of the requests a webhook receiver got, in order (text bodies as strings).
pub(crate) type Bodies = Arc<Mutex<Vec<serde_json::Value>>>;

/// A webhook receiver on 127.0.0.1:0 that answers 200 to every POST, on a runtime of its
/// own (its worker runs the receiver; dropped with the test).
pub(crate) fn receiver() -> (tokio::runtime::Runtime, SocketAddr, Bodies) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies: Bodies = Arc::default();
    let sink = bodies.clone();
    rt.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 8192];
                // Headers, then as many body bytes as content-length says.
                let body = loop {
                    let Ok(n @ 1..) = stream.read(&mut buf).await else { return };
                    request.extend_from_slice(&buf[..n]);
                    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break request[end + 4..end + 4 + length].to_vec();
                    }
                };
                // A JSON body as it is, a plain-text one (ntfy) as a JSON string.
                let text = || serde_json::Value::String(String::from_utf8_lossy(&body).into_owned());
                sink.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or_else(|_| text()));
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    (rt, addr, bodies)
}

/// `zpool status -p` of a mirror with one faulted disk (agent/tests/fixtures, captured).
fn degraded_status() -> String {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures/zpool_status_degraded_mirror.txt");
    std::fs::read_to_string(fixture).unwrap()
}

/// The same pool once the disk is replaced: every vdev ONLINE, no status or action.
fn healthy_status() -> String {
    let text = degraded_status();
    let (head, rest) = text.split_once("status:").unwrap();
    let config = &rest[rest.find("config:").unwrap()..];
    let tree = config.replace("DEGRADED", "ONLINE").replace("FAULTED", "ONLINE").replace("external device fault", "");
    format!("{}{tree}", head.replace("DEGRADED", "ONLINE"))
}

/// Makes the fake `zpool` of `fake` print `state` for pool `tank`: its `status -p` text
/// and its `list` row. Written to a file and renamed, so the agent never reads half.
pub(crate) fn set_pool(fake: &FakeProxmox, degraded: bool) {
    let dir = fake.dir.path();
    let (status, health) = if degraded { (degraded_status(), "DEGRADED") } else { (healthy_status(), "ONLINE") };
    let list = format!("tank\t1000000000000\t300000000000\t700000000000\t5\t30\t1.00\t{health}\n");
    for (name, text) in [("zpool-status.txt", status), ("zpool-list.txt", list)] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// A fake `zpool` beside the fake `pvesh`: OpenZFS 2.2 (no `-j`), printing the files
/// [`set_pool`] writes.
pub(crate) fn fake_zpool(fake: &FakeProxmox) {
    let dir = fake.dir.path();
    let script = format!(
        "#!/bin/sh\ncase \"$1 $2\" in\n  'status -j') echo \"invalid option 'j'\" >&2; exit 2 ;;\n  'status -p') cat '{0}/zpool-status.txt' ;;\n  list*) cat '{0}/zpool-list.txt' ;;\n  *) exit 2 ;;\nesac\n",
        dir.display()
    );
    let path = dir.join("zpool");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The retained message on `topic` (the first one a new subscriber gets), read as an
/// observer with `mosquitto_sub`.
fn retained(server: &TestServer, observer: &str, token: &str, topic: &str) -> serde_json::Value {
    let port = server.mqtt.port().to_string();
    let out = run_bounded(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port, "-i", observer, "-u", observer, "-P", token])
            .args(["-t", topic, "-C", "1", "-W", "5"]),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "no retained message on {topic}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{topic}: {e}: {:?} {:?}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

/// A server with short group timings (the resolution need not wait the default 5
/// minutes) and a webhook channel to the receiver at `addr`.
fn server_with_webhook(addr: SocketAddr) -> Server {
    let timings = [("ALERT_GROUP_WAIT_SECONDS", "1"), ("ALERT_GROUP_INTERVAL_SECONDS", "2")];
    let server = Server::start_with(timings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    let out = server.cli(&["channel", "add", "hook", "--kind", "webhook", "--url", &format!("http://{addr}/hook")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    server
}

/// A real agent for [`HOST`] whose fake `zpool` shows pool tank healthy until the test
/// calls [`set_pool`].
fn agent_with_pool(server: &TestServer, token: &str) -> (FakeProxmox, std::process::Child) {
    let fake = FakeProxmox::new();
    fake_zpool(&fake);
    set_pool(&fake, false);
    let config = agent_config(server.dir.path(), &format!("mqtt://{}", server.mqtt), HOST, token);
    let agent = spawn_agent(&config, &fake);
    (fake, agent)
}

fn statuses(bodies: &Bodies) -> Vec<String> {
    bodies.lock().unwrap().iter().map(|b| b["status"].as_str().unwrap_or("?").to_owned()).collect()
}

#[test]
fn a_degraded_pool_notifies_once_survives_a_restart_quietly_and_resolves_once() {
    let (_rt, addr, bodies) = receiver();
    let mut server = server_with_webhook(addr);
    let token = server.add_host(HOST);
    let observer = server.add_observer("watcher");
    let (fake, mut agent) = agent_with_pool(&server, &token);
    let topic = format!("pmon/v1/{HOST}/alerts");
    wait_for("a healthy pool in SQLite", Duration::from_secs(20), || {
        let n: i64 =
            server.sql(&format!("SELECT count(*) FROM pool_samples WHERE host_id = '{HOST}' AND state = 'ONLINE'"));
        (n > 0).then_some(())
    });
    assert_eq!(retained(&server, "watcher", &observer, &topic)["alerts"], serde_json::json!([]), "none firing");

    set_pool(&fake, true);
    wait_for("the firing notification", Duration::from_secs(20), || (!bodies.lock().unwrap().is_empty()).then_some(()));
    {
        let b = bodies.lock().unwrap();
        assert_eq!(b[0]["status"], "firing");
        assert_eq!(b[0]["alerts"][0]["labels"]["alertname"], "pool_state", "{}", b[0]);
        assert_eq!(b[0]["alerts"][0]["labels"]["host"], HOST, "{}", b[0]);
    }
    let set = retained(&server, "watcher", &observer, &topic);
    assert_eq!(set["alerts"].as_array().unwrap().len(), 1, "{set}");
    assert_eq!(
        (set["alerts"][0]["rule"].as_str(), set["alerts"][0]["subject"].as_str()),
        (Some("pool_state"), Some("tank"))
    );
    assert_eq!(set["alerts"][0]["acked"], false);

    // A restart while firing: the alert is remembered, not sent again, and still retained.
    server.restart();
    // Its status is the pool's warning once connected.
    wait_for("the agent back", Duration::from_secs(20), || {
        (server.status_of(HOST).as_deref() == Some("warning")).then_some(())
    });
    let set = retained(&server, "watcher", &observer, &topic);
    assert_eq!(set["alerts"].as_array().unwrap().len(), 1, "republished at start: {set}");
    // Several medium cycles and alerting rounds past the group wait.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(statuses(&bodies), ["firing"], "no re-notification after the restart");

    set_pool(&fake, false);
    wait_for("the resolved notification", Duration::from_secs(20), || {
        (bodies.lock().unwrap().len() >= 2).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(statuses(&bodies), ["firing", "resolved"], "exactly one of each");
    assert_eq!(retained(&server, "watcher", &observer, &topic)["alerts"], serde_json::json!([]));
    terminate(&mut agent);
}

#[test]
fn hosts_cannot_publish_alert_topics_and_silences_are_listed_and_removed() {
    let server = InProcessServer::start();
    let token = server.add_host(HOST);
    let port = server.mqtt.port().to_string();
    for topic in [format!("pmon/v1/{HOST}/alerts"), format!("pmon/v1/{HOST}/alerts/events")] {
        let out = run_bounded(
            Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port, "-i", HOST, "-u", HOST, "-P", &token, "-q", "1", "-r"])
                .args(["-t", &topic, "-m", r#"{"alerts":[]}"#]),
            Duration::from_secs(10),
        );
        assert!(!out.status.success(), "{topic}: a host's publish must be refused");
    }
    server.wait_metric("pmon_mqtt_acl_violations_total{reason=\"foreign_topic\"}", 2);

    let json = |args: &[&str]| -> serde_json::Value {
        let out = server.cli(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let added =
        json(&["silence", "add", "--host", HOST, "--rule", "pool_state", "--for", "2h", "--comment", "swap", "--json"]);
    let listed = json(&["silence", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        (&listed[0]["id"], &listed[0]["rule"], &listed[0]["comment"]),
        (&added["id"], &"pool_state".into(), &"swap".into())
    );
    let id = added["id"].to_string();
    assert_eq!(json(&["silence", "remove", &id, "--json"])["removed"], added["id"]);
    assert_eq!(json(&["silence", "list", "--json"]), serde_json::json!([]));
    let out = server.cli(&["silence", "remove", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("no silence with id {id}")));
}

#[test]
fn rule_overrides_round_trip_through_the_cli_as_json() {
    let server = InProcessServer::start();
    server.add_host(HOST);
    let run = |args: &[&str]| -> std::process::Output { server.cli(args) };
    let json = |args: &[&str]| -> serde_json::Value {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let set = json(&["rule", "set", "pool_capacity", "--host", HOST, "--trigger", "85", "--clear", "80", "--json"]);
    assert_eq!(
        (set["trigger"].as_f64(), set["clear"].as_f64(), &set["host_id"]),
        (Some(85.0), Some(80.0), &HOST.into())
    );
    let set = json(&["rule", "set", "pool_capacity", "--host", HOST, "--pending", "5m", "--json"]);
    assert_eq!((set["trigger"].as_f64(), set["pending_seconds"].as_i64()), (Some(85.0), Some(300)), "merged");
    json(&["rule", "disable", "guest_stopped", "--host", HOST, "--subject", "vm/101", "--json"]);
    let load = json(&["rule", "set", "load", "--trigger", "0.8", "--critical", "2", "--clear", "0.6", "--json"]);
    assert_eq!(
        (load["trigger"].as_f64(), load["critical"].as_f64(), load["clear"].as_f64(), &load["host_id"]),
        (Some(0.8), Some(2.0), Some(0.6), &serde_json::Value::Null),
        "every host's load, per core"
    );

    let listed = json(&["rule", "list", "--json"]);
    let rule = |name: &str| listed.as_array().unwrap().iter().find(|r| r["rule"] == name).unwrap().clone();
    let capacity = rule("pool_capacity");
    assert_eq!((capacity["trigger"].as_f64(), capacity["clear"].as_f64()), (Some(80.0), Some(75.0)), "built-in");
    assert_eq!(capacity["overrides"][0]["trigger"].as_f64(), Some(85.0));
    let guest = rule("guest_stopped");
    assert_eq!(
        (&guest["overrides"][0]["subject"], &guest["overrides"][0]["enabled"]),
        (&"vm/101".into(), &false.into())
    );
    assert_eq!(rule("pool_state")["overrides"], serde_json::json!([]));
    let load = rule("load");
    assert_eq!(
        (load["trigger"].as_f64(), &load["critical"], load["clear"].as_f64()),
        (Some(1.0), &serde_json::Value::Null, Some(0.9)),
        "built in: warning at one per core, no critical"
    );
    assert_eq!(load["overrides"][0]["critical"].as_f64(), Some(2.0));
    for numeric in ["scrub_age", "disk_wear", "clock_skew"] {
        assert!(rule(numeric)["trigger"].is_number() && rule(numeric)["critical"].is_null(), "{numeric}");
    }
    let skew = rule("clock_skew");
    assert_eq!((skew["trigger"].as_f64(), skew["clear"].as_f64()), (Some(60.0), Some(45.0)), "built-in, seconds");
    let spare = rule("disk_spare");
    assert_eq!(
        (&spare["trigger"], &spare["clear"], &spare["lower_is_worse"]),
        (&serde_json::Value::Null, &serde_json::Value::Null, &true.into()),
        "each drive's own trigger"
    );
    let table = run(&["rule", "list"]);
    let table = String::from_utf8_lossy(&table.stdout);
    let load_row = table.lines().find(|l| l.starts_with("load ")).unwrap();
    assert_eq!(load_row.split_whitespace().collect::<Vec<_>>(), ["load", "1", "none", "0.9", "900s"], "{table}");
    let spare_row = table.lines().find(|l| l.starts_with("disk_spare ")).unwrap();
    assert_eq!(spare_row.split_whitespace().collect::<Vec<_>>(), ["disk_spare", "drive", "none", "drive+5", "0s"]);

    for (args, why) in [
        (vec!["rule", "set", "pool_state", "--trigger", "1"], "has no numeric thresholds"),
        (
            vec!["rule", "set", "host_silent", "--trigger", "60"],
            "disk_spare, load, cpu_temperature, nvme_temperature and clock_skew take",
        ),
        (vec!["rule", "set", "disk_spare", "--trigger", "10", "--clear", "8"], "--clear 8 must be above --trigger 10"),
        (vec!["rule", "set", "clock_skew", "--trigger", "60", "--clear", "70"], "must be below --trigger"),
        (vec!["rule", "set", "pool_capacity", "--trigger", "80", "--clear", "90"], "must be below --trigger"),
        (vec!["rule", "disable", "pool_capacity", "--host", "nope"], "no host named nope"),
        (vec!["rule", "disable", "pool_capacity", "--subject", "tank"], "--host"),
        (vec!["rule", "set", "pool_capacity", "--pending", "soon"], "invalid --pending soon"),
        (vec!["rule", "reset", "scrub_errors"], "no override of scrub_errors"),
        (vec!["rule", "set", "disk_wear", "--trigger", "80", "--critical", "70"], "must not be below --trigger"),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    json(&["rule", "reset", "pool_capacity", "--host", HOST, "--json"]);
    json(&["rule", "reset", "load", "--json"]);
    json(&["rule", "enable", "guest_stopped", "--host", HOST, "--subject", "vm/101", "--json"]);
    let listed = json(&["rule", "list", "--json"]);
    assert!(listed.as_array().unwrap().iter().all(|r| r["overrides"] == serde_json::json!([])), "{listed}");
}

/// The `/api/v1/hosts` card of `host`.
fn card(server: &TestServer, api_token: &str, host: &str) -> serde_json::Value {
    let url = format!("http://{}/api/v1/hosts", server.http);
    let (code, _, body) = http_get_bearer(&url, api_token).expect("the server answers");
    assert_eq!(code, 200, "{body}");
    let cards: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    cards.into_iter().find(|c| c["host_id"] == host).unwrap_or_default()
}

/// The status of every pool_capacity alert the receiver got, in order.
fn capacity_sent(bodies: &Bodies) -> Vec<String> {
    let bodies = bodies.lock().unwrap();
    let alerts = bodies.iter().flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default());
    alerts
        .filter(|a| a["labels"]["alertname"] == "pool_capacity")
        .inspect(|a| assert_eq!(a["labels"]["host"], HOST, "{a}"))
        .map(|a| a["status"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn reasons(card: &serde_json::Value) -> Vec<String> {
    card["reasons"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_owned)).collect()
}

#[test]
fn a_trigger_set_from_the_cli_turns_the_card_amber_and_fires_the_alert_and_a_disable_clears_both() {
    let (_rt, addr, bodies) = receiver();
    let server = server_with_webhook(addr);
    let token = server.add_host(HOST);
    let api_token = server.add_api_token("limits");
    // Pool tank is healthy and 30 % full: under the built-in 80 %.
    let (_fake, mut agent) = agent_with_pool(&server, &token);
    let full = "pool tank is 30% full".to_owned();
    wait_for("the pool on the card", Duration::from_secs(20), || {
        let n: i64 = server.sql(&format!("SELECT count(*) FROM pool_samples WHERE host_id = '{HOST}'"));
        (n > 0 && card(&server, &api_token, HOST)["online"] == true).then_some(())
    });
    assert!(!reasons(&card(&server, &api_token, HOST)).contains(&full));

    // Another process (the CLI) lowers the trigger; the server reads it within a round.
    let out = server.cli(&["rule", "set", "pool_capacity", "--host", HOST, "--trigger", "25"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the card's reason", Duration::from_secs(15), || {
        reasons(&card(&server, &api_token, HOST)).contains(&full).then_some(())
    });
    assert_ne!(card(&server, &api_token, HOST)["status"], "online");
    assert!(server.status_of(HOST).is_some_and(|s| s == "warning" || s == "critical"), "host list judges alike");
    wait_for("the alert's notification", Duration::from_secs(15), || {
        (!capacity_sent(&bodies).is_empty()).then_some(())
    });
    assert_eq!(capacity_sent(&bodies), ["firing"]);

    // Disabled: no reason on the card, and the alert resolves without a message.
    let out = server.cli(&["rule", "disable", "pool_capacity", "--host", HOST]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the reason gone", Duration::from_secs(15), || {
        (!reasons(&card(&server, &api_token, HOST)).contains(&full)).then_some(())
    });
    let resolved =
        || server.sql::<i64>("SELECT count(*) FROM alerts WHERE rule = 'pool_capacity' AND state = 'resolved'");
    wait_for("the alert resolved", Duration::from_secs(15), || (resolved() == 1).then_some(()));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(capacity_sent(&bodies), ["firing"], "a disable resolves quietly");
    terminate(&mut agent);
}
