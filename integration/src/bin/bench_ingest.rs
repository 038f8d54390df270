//! Ingest benchmark: many MQTT clients publish fast-tier payloads at QoS 1 to the real
//! `proxmox-monitor serve` on loopback; prints throughput, publish→commit lag (from the
//! server's own histogram), server CPU and memory, and database bytes per sample.
//!
//! `cargo build --release --workspace && target/release/bench-ingest --hosts 500 --rate 20000 --seconds 20`

use std::time::{Duration, Instant};

use integration::load::Publisher;
use integration::{metric, proc_stats, Server};
use rumqttc::{AsyncClient, MqttOptions, QoS};

struct Args {
    hosts: usize,
    rate: f64,
    seconds: u64,
    client: Client,
}

/// The load generator: a lean hand-written MQTT publisher (the default), or rumqttc.
#[derive(Clone, Copy)]
enum Client {
    Lean,
    Rumqttc,
}

fn args() -> Args {
    let mut a = Args { hosts: 500, rate: 20_000.0, seconds: 20, client: Client::Lean };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--hosts" => a.hosts = value.parse().expect("--hosts N"),
            "--rate" => a.rate = value.parse().expect("--rate SAMPLES_PER_SECOND"),
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--client" => {
                a.client = match value {
                    "lean" => Client::Lean,
                    "rumqttc" => Client::Rumqttc,
                    _ => panic!("--client lean|rumqttc"),
                }
            }
            other => panic!("unknown argument {other}; use --hosts N --rate N --seconds N --client lean|rumqttc"),
        }
    }
    a
}

fn payload(host: &str, seq: u64) -> Vec<u8> {
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    format!(
        r#"{{"schema":1,"host_id":"{host}","ts_ms":{ts},"boot_id":"bench","seq":{seq},"agent_version":"bench","data":{{"cpus":16,"load1":0.42,"load5":0.37,"load15":0.31,"cpu_pct":7.5,"iowait_pct":0.4,"mem_total":67350102016,"mem_used":26536796160,"arc_bytes":8589934592,"swap_total":8589930496,"swap_used":0,"rootfs_total":100861726720,"rootfs_used":12315713536,"uptime_s":1218237}}}}"#
    )
    .into_bytes()
}

/// Every host publishes at an equal share of the rate, their phases spread evenly; one
/// thread writes every due publish and drains PUBACKs every 100 ms. Returns how many were
/// sent, after waiting (up to 10 s) for every PUBACK.
fn publish_lean(server: &Server, a: &Args, deadline: Instant) -> anyhow::Result<u64> {
    let mut clients = Vec::with_capacity(server.tokens.len());
    for (host, token) in &server.tokens {
        clients.push((Publisher::connect(server.mqtt, host, token)?, format!("pmon/v1/{host}/fast"), host.as_str()));
    }
    let period = Duration::from_secs_f64(a.hosts as f64 / a.rate);
    let start = Instant::now();
    let n = clients.len() as f64;
    let mut next: Vec<Instant> = (0..clients.len()).map(|i| start + period.mul_f64(i as f64 / n)).collect();
    let mut sent = 0u64;
    let mut drained = start;
    while Instant::now() < deadline {
        let now = Instant::now();
        for (i, (client, topic, host)) in clients.iter_mut().enumerate() {
            while next[i] <= now {
                sent += 1;
                client.publish(topic, &payload(host, sent))?;
                next[i] += period;
            }
        }
        if now.duration_since(drained) >= Duration::from_millis(100) {
            for (client, _, _) in &mut clients {
                client.flush()?;
            }
            drained = now;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let patience = Instant::now() + Duration::from_secs(10);
    loop {
        let mut acked = 0;
        for (client, _, _) in &mut clients {
            client.flush()?;
            acked += client.acked;
        }
        if acked >= sent || Instant::now() > patience {
            println!("PUBACKs received: {acked} of {sent}");
            return Ok(sent);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// rumqttc clients, a task each, as an agent would publish; costs the server about half a
/// core of the two.
async fn publish_rumqttc(server: &Server, a: &Args, deadline: Instant) -> anyhow::Result<u64> {
    let per_host = Duration::from_secs_f64(a.hosts as f64 / a.rate);
    let mut tasks = Vec::new();
    for (host, token) in server.tokens.clone() {
        let mut options = MqttOptions::new(host.clone(), "127.0.0.1", server.mqtt.port());
        options.set_credentials(host.clone(), token).set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        tasks.push(tokio::spawn(async move {
            let poll = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
            let mut tick = tokio::time::interval(per_host);
            let mut seq = 0u64;
            while Instant::now() < deadline {
                tick.tick().await;
                seq += 1;
                if client
                    .publish(format!("pmon/v1/{host}/fast"), QoS::AtLeastOnce, false, payload(&host, seq))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            // Let the last publishes reach the broker.
            tokio::time::sleep(Duration::from_secs(2)).await;
            poll.abort();
            seq
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await?;
    }
    Ok(sent)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args();
    // Scraped without a token, as a Prometheus on the same machine would.
    let server = Server::start_with_hosts(a.hosts, vec![("METRICS_PUBLIC".into(), "1".into())]);
    println!(
        "bench-ingest: {} hosts, target {} samples/s for {} s, server pid {}",
        a.hosts,
        a.rate,
        a.seconds,
        server.child.id()
    );
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let cpu_before = proc_stats(server.child.id()).cpu_seconds;
    let sent = match a.client {
        Client::Lean => publish_lean(&server, &a, deadline)?,
        Client::Rumqttc => publish_rumqttc(&server, &a, deadline).await?,
    };
    let send_secs = a.seconds as f64;
    // Wait until the recorder has committed every sample (or stops making progress). The
    // lag histogram counts samples only; `stored` also counts presence messages.
    let url = format!("http://{}/metrics", server.http);
    let mut last = 0.0;
    for _ in 0..60 {
        let stored = metric(&url, "pmon_recorder_commit_lag_seconds_count").unwrap_or(0.0);
        if stored as u64 >= sent || (stored == last && stored > 0.0) {
            break;
        }
        last = stored;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stats = proc_stats(server.child.id());
    let stored = metric(&url, "pmon_recorder_stored_total").unwrap_or(0.0) as u64;
    let total = metric(&url, "pmon_recorder_commit_lag_seconds_count").unwrap_or(0.0);
    let quantile = |q: f64| -> String {
        for le in ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5"] {
            let n = metric(&url, &format!("pmon_recorder_commit_lag_seconds_bucket{{le=\"{le}\"}}")).unwrap_or(0.0);
            if n >= q * total {
                return format!("<= {} ms", (le.parse::<f64>().unwrap() * 1000.0) as u64);
            }
        }
        "> 5000 ms".into()
    };
    let buckets: Vec<String> = ["0.025", "0.05", "0.1", "0.25", "0.5", "1"]
        .iter()
        .map(|le| {
            let n = metric(&url, &format!("pmon_recorder_commit_lag_seconds_bucket{{le=\"{le}\"}}")).unwrap_or(0.0);
            format!("<= {} ms: {:.2}%", (le.parse::<f64>().unwrap() * 1000.0) as u64, n / total * 100.0)
        })
        .collect();
    let samples: i64 = server.sql("SELECT count(*) FROM fast_samples");
    let db_bytes: u64 = ["monitor.db", "monitor.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(server.dir.path().join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!("sent {sent} payloads in {send_secs:.1} s ({:.0}/s offered)", sent as f64 / send_secs);
    println!("stored {stored} ({:.0}/s), {} rows in fast_samples", stored as f64 / send_secs, samples);
    println!("publish→commit lag: p50 {}, p99 {}, max bucket {}", quantile(0.5), quantile(0.99), quantile(1.0));
    println!("publish→commit lag, share committed within: {}", buckets.join(", "));
    println!(
        "back-pressure: {} publishes held back until the recorder caught up",
        metric(&url, "pmon_mqtt_backpressure_waits_total").unwrap_or(0.0)
    );
    println!(
        "server: {:.1} CPU-seconds while sending ({:.0}% of one core), peak RSS {} MiB",
        stats.cpu_seconds - cpu_before,
        (stats.cpu_seconds - cpu_before) / send_secs * 100.0,
        stats.peak_rss_kib / 1024
    );
    // Not a size per sample: under this load the WAL is far from checkpointed. The size
    // per host-day comes from bench_writer.
    println!("database files right after the run (WAL not yet checkpointed): {db_bytes} bytes");
    Ok(())
}
