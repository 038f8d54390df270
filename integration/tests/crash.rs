//! A PUBACK means committed (issue 15): the real server killed with SIGKILL again and
//! again during ingest, restarted on the same database, loses nothing that many agents
//! sent. The agents are the agent's own publisher (`publisher::run`: rumqttc at QoS 1,
//! resending what was not acked after reconnecting, its outage buffer while
//! disconnected), fed fast samples with increasing sequence numbers.
//!
//! `PMON_LONG_TESTS=1` runs the long variant (more agents, more kills, a higher rate).

use std::time::Duration;

use integration::*;
use proxmox_monitor_agent::config::{ServerUrl, Settings};
use proxmox_monitor_agent::outbox::Outbox;
use proxmox_monitor_agent::publisher;
use proxmox_monitor_agent::schedule::Message;
use tokio::sync::{mpsc, watch};
use wire::{HostId, Kind};

/// How hard a run pushes.
struct Plan {
    agents: usize,
    kills: usize,
    /// Between two samples of one agent.
    every: Duration,
}

fn plan() -> Plan {
    if std::env::var("PMON_LONG_TESTS").is_ok_and(|v| v == "1") {
        Plan { agents: 200, kills: 30, every: Duration::from_millis(20) }
    } else {
        Plan { agents: 20, kills: 10, every: Duration::from_millis(50) }
    }
}

/// A fast payload as the agent sends it: one agent run (`boot_id`), increasing `seq`.
fn fast(host: &str, seq: u64) -> Message {
    let ts_ms = wire::now_ms();
    let payload = format!(
        r#"{{"schema":1,"host_id":"{host}","ts_ms":{ts_ms},"boot_id":"crash","seq":{seq},"agent_version":"test","data":{{"cpus":4,"load1":0.5,"load5":0.4,"load15":0.3,"cpu_pct":5.0,"iowait_pct":0.1,"mem_total":8000000000,"mem_used":4000000000,"uptime_s":1000}}}}"#
    );
    Message { topic: HostId::parse(host).unwrap().topic(Kind::Fast), payload: payload.into_bytes() }
}

fn settings(port: u16, host: &str, token: &str, state_dir: std::path::PathBuf) -> Settings {
    Settings {
        server: ServerUrl::Mqtt { host: "127.0.0.1".into(), port },
        token: token.into(),
        host_id: HostId::parse(host).unwrap(),
        node: host.into(),
        fast: Duration::from_secs(1),
        medium: Duration::from_secs(300),
        slow: Duration::from_secs(3600),
        keepalive: Duration::from_secs(5),
        ca_file: None,
        state_dir,
        buffer_max_bytes: 64 * 1024 * 1024,
    }
}

/// One agent: its publisher, and a sampler sending seq 1, 2, ... until `stop`; returns
/// the last seq sent.
async fn agent(settings: Settings, every: Duration, mut stop: watch::Receiver<bool>) -> u64 {
    let host = settings.host_id.to_string();
    let outbox = Outbox::open(&settings.state_dir, settings.buffer_max_bytes).unwrap();
    let (tx, rx) = mpsc::channel(1024);
    let (quit_tx, quit_rx) = watch::channel(false);
    let publisher = tokio::spawn(async move {
        let mut quit = quit_rx;
        publisher::run(&settings, rx, outbox, async move {
            let _ = quit.wait_for(|q| *q).await;
        })
        .await
    });
    let mut seq = 0;
    let mut tick = tokio::time::interval(every);
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {
                seq += 1;
                tx.send(fast(&host, seq)).await.unwrap();
            }
            _ = stop.changed() => {}
        }
    }
    // Keep the publisher running until the test has seen everything stored.
    tokio::spawn(async move {
        let _keep = tx;
        tokio::time::sleep(Duration::from_secs(120)).await;
        let _ = quit_tx.send(true);
        let _ = publisher.await;
    });
    seq
}

/// Per host: (rows, distinct seqs, lowest seq, highest seq) of the stored fast samples.
fn stored(server: &Server, host: &str) -> (i64, i64, i64, i64) {
    let q = |what: &str| -> i64 {
        server.sql(&format!("SELECT coalesce({what}, 0) FROM fast_samples WHERE host_id = '{host}'"))
    };
    (q("count(*)"), q("count(DISTINCT seq)"), q("min(seq)"), q("max(seq)"))
}

fn total(server: &Server) -> i64 {
    server.sql("SELECT count(*) FROM fast_samples")
}

#[test]
fn ten_kill_9s_during_ingest_lose_nothing_that_was_sent() {
    let plan = plan();
    let mut server = Server::start_with_hosts(plan.agents, vec![]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let agents: Vec<_> = server
        .tokens
        .iter()
        .map(|(host, token)| {
            let dir = server.dir.path().join("agents").join(host);
            let settings = settings(server.mqtt.port(), host, token, dir);
            runtime.spawn(agent(settings, plan.every, stop_rx.clone()))
        })
        .collect();
    wait_for("every agent's first samples", Duration::from_secs(30), || {
        (total(&server) >= 2 * plan.agents as i64).then_some(())
    });

    for round in 0..plan.kills {
        // Every agent back and sending again, then a kill at some moment of ingest.
        wait_for("every agent connected", Duration::from_secs(60), || {
            (server.metric("pmon_mqtt_sessions") == plan.agents as u64).then_some(())
        });
        let before = total(&server);
        wait_for("ingest to resume", Duration::from_secs(30), || {
            (total(&server) > before + plan.agents as i64).then_some(())
        });
        std::thread::sleep(Duration::from_millis(100 + 97 * round as u64 % 500));
        server.crash_and_restart();
        eprintln!("kill {} of {}: {} samples stored", round + 1, plan.kills, total(&server));
    }
    let _ = stop_tx.send(true);
    let sent: Vec<(String, u64)> =
        server.tokens.iter().zip(agents).map(|((host, _), a)| (host.clone(), runtime.block_on(a).unwrap())).collect();

    // What was in flight at the last kill is resent after the agents reconnect; give it
    // time, then compare, so that a failure shows what is missing.
    let complete = |server: &Server| sent.iter().all(|(host, last)| stored(server, host).1 >= *last as i64);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !complete(&server) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    for (host, last) in &sent {
        let last = *last as i64;
        assert_eq!(stored(&server, host), (last, last, 1, last), "{host}: (rows, distinct, min, max) of seq 1..{last}");
    }
    assert_eq!(server.integrity(), "ok");
    runtime.shutdown_background();
}
