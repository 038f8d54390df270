//! Live updates: publish→browser latency over Server-Sent Events. The real server with N
//! hosts registered; S signed-in `/events` streams read by lean HTTP/1.1 clients (raw TCP,
//! chunked decoding and SSE parsing by hand, one tokio task each); P of the hosts publish
//! fast samples over MQTT (the lean publisher) every I ms, their phases spread evenly.
//!
//! Every publish carries a load1 unique to its host (seq / 100), which the card shows as
//! "Load 1/15"; the card's own "seen" is rounded to seconds, so the bench keeps each
//! publish's send time (`ts_ms`) and matches the cards each stream receives on (host,
//! load1). Latency = receive time − send time, over every stream and event. Prints
//! p50/p99/max, events received against expected per stream, the server's publish→commit
//! lag (its own histogram, to tell the recorder's share from the broadcast's), and server
//! CPU and RSS.
//!
//! `cargo build --release -p proxmox-monitor -p integration --bins &&
//!  target/release/bench_live --hosts 1000 --publishers 50 --streams 100 --interval-ms 1000 --seconds 60`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use integration::load::Publisher;
use integration::{metric, proc_stats, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wire::now_ms;

struct Args {
    hosts: usize,
    publishers: usize,
    streams: usize,
    interval_ms: u64,
    seconds: u64,
}

fn args() -> Args {
    let mut a = Args { hosts: 1000, publishers: 50, streams: 100, interval_ms: 1000, seconds: 60 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or("");
        let n: u64 = value.parse().unwrap_or_else(|_| panic!("{} N", pair[0]));
        match pair[0].as_str() {
            "--hosts" => a.hosts = n as usize,
            "--publishers" => a.publishers = n as usize,
            "--streams" => a.streams = n as usize,
            "--interval-ms" => a.interval_ms = n,
            "--seconds" => a.seconds = n,
            other => {
                panic!("unknown argument {other}; use --hosts N --publishers N --streams N --interval-ms N --seconds N")
            }
        }
    }
    assert!(a.publishers <= a.hosts, "--publishers must not exceed --hosts");
    a
}

/// load1 as the card prints it (two decimals), unique per publish of a host.
fn load1(seq: u64) -> String {
    format!("{}.{:02}", seq / 100, seq % 100)
}

/// Each publish's send time (`ts_ms`), by (host, load1).
type SendTimes = HashMap<(String, String), i64>;

fn payload(host: &str, seq: u64, ts_ms: i64) -> Vec<u8> {
    format!(
        r#"{{"schema":1,"host_id":"{host}","ts_ms":{ts_ms},"boot_id":"bench","seq":{seq},"agent_version":"bench","data":{{"cpus":16,"load1":{},"load5":0.37,"load15":0.31,"cpu_pct":7.5,"iowait_pct":0.4,"mem_total":67350102016,"mem_used":26536796160,"arc_bytes":8589934592,"swap_total":8589930496,"swap_used":0,"rootfs_total":100861726720,"rootfs_used":12315713536,"uptime_s":1218237}}}}"#,
        load1(seq)
    )
    .into_bytes()
}

/// Publishes from one thread until `deadline`; returns the send time of every publish,
/// keyed by (host, load1), and how many were acked.
fn publish(
    clients: &mut [(Publisher, String, String)],
    interval: Duration,
    deadline: Instant,
) -> anyhow::Result<(SendTimes, u64)> {
    let start = Instant::now();
    let n = clients.len() as f64;
    let mut next: Vec<Instant> = (0..clients.len()).map(|i| start + interval.mul_f64(i as f64 / n)).collect();
    let mut seqs = vec![0u64; clients.len()];
    let mut sent = HashMap::new();
    let mut drained = start;
    while Instant::now() < deadline {
        let now = Instant::now();
        for (i, (client, topic, host)) in clients.iter_mut().enumerate() {
            if next[i] <= now {
                seqs[i] += 1;
                let ts = now_ms();
                client.publish(topic, &payload(host, seqs[i], ts))?;
                sent.insert((host.clone(), load1(seqs[i])), ts);
                next[i] += interval;
            }
        }
        // A publish writes at once; PUBACKs are drained every 100 ms, as bench_ingest does.
        if now.duration_since(drained) >= Duration::from_millis(100) {
            for (client, _, _) in clients.iter_mut() {
                client.flush()?;
            }
            drained = now;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let patience = Instant::now() + Duration::from_secs(10);
    loop {
        let mut acked = 0;
        for (client, _, _) in clients.iter_mut() {
            client.flush()?;
            acked += client.acked;
        }
        if acked >= sent.len() as u64 || Instant::now() > patience {
            return Ok((sent, acked));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one stream saw: each card as (host, load1, receive time in ms), the hosts of
/// cards without a load (hosts not yet sending samples), and how many other events.
struct Seen {
    cards: Vec<(String, String, i64)>,
    loadless: Vec<String>,
    other_events: u64,
}

/// Opens `/events` with the session cookie and checks the response head.
async fn open_stream(http: std::net::SocketAddr, cookie: &str) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let mut stream = TcpStream::connect(http).await?;
    stream.set_nodelay(true)?;
    let req = format!(
        "GET /events HTTP/1.1\r\nHost: {http}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nCookie: {cookie}\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        let n = stream.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "/events closed before its response head");
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    anyhow::ensure!(head.starts_with("http/1.1 200"), "/events answered {head}");
    anyhow::ensure!(head.contains("text/event-stream"), "/events is not an event stream: {head}");
    anyhow::ensure!(head.contains("transfer-encoding: chunked"), "/events is not chunked: {head}");
    Ok((stream, raw.split_off(end)))
}

/// Reads events until `deadline`, timing each card as its last byte arrives.
async fn read_stream(mut stream: TcpStream, mut raw: Vec<u8>, deadline: tokio::time::Instant) -> Seen {
    let mut seen = Seen { cards: Vec::new(), loadless: Vec::new(), other_events: 0 };
    let mut text = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        dechunk(&mut raw, &mut text);
        let now = now_ms();
        while let Some(i) = text.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = text.drain(..i + 2).collect();
            let event = String::from_utf8_lossy(&event);
            match card(&event) {
                Some((host, load)) => seen.cards.push((host, load, now)),
                None => match after(&event, r#"id="card-"#).and_then(|h| h.split('"').next()) {
                    Some(host) => seen.loadless.push(host.to_owned()),
                    None => seen.other_events += 1,
                },
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => raw.extend_from_slice(&buf[..n]),
            _ => return seen,
        }
    }
}

/// Moves the complete chunks of an HTTP/1.1 chunked body from `raw` to `out`.
fn dechunk(raw: &mut Vec<u8>, out: &mut Vec<u8>) {
    loop {
        let Some(line) = raw.windows(2).position(|w| w == b"\r\n") else { return };
        let size = std::str::from_utf8(&raw[..line]).ok().and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let Some(size) = size else { return };
        if raw.len() < line + 2 + size + 2 {
            return;
        }
        out.extend_from_slice(&raw[line + 2..line + 2 + size]);
        raw.drain(..line + 2 + size + 2);
    }
}

/// The host and load1 of a `card` event (None for keep-alives, other events and cards
/// without a load).
fn card(event: &str) -> Option<(String, String)> {
    let mut is_card = false;
    let mut data = String::new();
    for line in event.lines() {
        if let Some(name) = line.strip_prefix("event:") {
            is_card = name.trim() == "card";
        } else if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
            data.push('\n');
        }
    }
    if !is_card {
        return None;
    }
    let host = after(&data, r#"id="card-"#)?.split('"').next()?.to_owned();
    let load = after(&data, r#"<dd class="load">"#)?.split_whitespace().next()?.to_owned();
    load.parse::<f64>().ok()?;
    Some((host, load))
}

fn after<'a>(s: &'a str, marker: &str) -> Option<&'a str> {
    s.find(marker).map(|i| &s[i + marker.len()..])
}

fn percentile(sorted: &[i64], p: usize) -> i64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args();
    let server = Server::start_with_hosts(a.hosts, vec![("METRICS_PUBLIC".into(), "1".into())]);
    let pid = server.child.id();
    println!(
        "bench-live: {} hosts registered, {} publishing every {} ms, {} SSE streams, {} s; server pid {pid}",
        a.hosts, a.publishers, a.interval_ms, a.streams, a.seconds
    );
    let cookie = server.login();

    // The streams open first, so they see every publish; the publishers connect next (their
    // online cards come through and are not counted), then publish after a second's pause.
    let mut opened = Vec::with_capacity(a.streams);
    for _ in 0..a.streams {
        opened.push(open_stream(server.http, &cookie).await?);
    }
    let mut clients = Vec::with_capacity(a.publishers);
    for (host, token) in server.tokens.iter().take(a.publishers) {
        clients.push((Publisher::connect(server.mqtt, host, token)?, format!("pmon/v1/{host}/fast"), host.clone()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let publishing = Instant::now() + Duration::from_secs(a.seconds);
    // Streams read for 3 s after the last publish, for the last cards to arrive.
    let reading = tokio::time::Instant::from_std(publishing + Duration::from_secs(3));
    let readers: Vec<_> =
        opened.into_iter().map(|(stream, raw)| tokio::spawn(read_stream(stream, raw, reading))).collect();
    let cpu_before = proc_stats(pid).cpu_seconds;
    let own_before = proc_stats(std::process::id()).cpu_seconds;
    let interval = Duration::from_millis(a.interval_ms);
    let (sent, acked) = tokio::task::spawn_blocking(move || publish(&mut clients, interval, publishing)).await??;
    let server_cpu = proc_stats(pid).cpu_seconds - cpu_before;
    let own_cpu = proc_stats(std::process::id()).cpu_seconds - own_before;
    let mut seens = Vec::with_capacity(readers.len());
    for r in readers {
        seens.push(r.await?);
    }
    let stats = proc_stats(pid);

    let mut latencies = Vec::new();
    let (mut duplicates, mut unmatched, mut other) = (0u64, 0u64, 0u64);
    let mut loadless = std::collections::BTreeSet::new();
    let mut loadless_events = 0;
    let mut per_stream = Vec::with_capacity(seens.len());
    for seen in &seens {
        other += seen.other_events;
        loadless_events += seen.loadless.len();
        loadless.extend(seen.loadless.iter().cloned());
        let mut got = std::collections::HashSet::new();
        for (host, load, at) in &seen.cards {
            let key = (host.clone(), load.clone());
            match sent.get(&key) {
                Some(ts) if got.insert(key) => latencies.push(at - ts),
                Some(_) => duplicates += 1,
                // Cards of the publishers' connects, before their first sample.
                None => unmatched += 1,
            }
        }
        per_stream.push(got.len());
    }
    latencies.sort_unstable();
    let expected = sent.len();
    let complete = per_stream.iter().filter(|&&n| n == expected).count();
    let fewest = per_stream.iter().min().copied().unwrap_or(0);

    println!(
        "published {expected} samples in {} s ({:.0}/s), PUBACKs {acked} of {expected}",
        a.seconds,
        expected as f64 / a.seconds as f64
    );
    println!(
        "card events: {} matched of {} expected ({} streams × {expected}); {complete} of {} streams got every one (fewest {fewest}); {duplicates} duplicates, {unmatched} cards not from a timed publish, {loadless_events} cards without a load ({} hosts), {other} other events (keep-alives)",
        latencies.len(),
        expected * seens.len(),
        seens.len(),
        seens.len(),
        loadless.len()
    );
    if !latencies.is_empty() {
        println!(
            "publish→browser latency over all streams and events: p50 {} ms, p99 {} ms, max {} ms (mean {:.1} ms)",
            percentile(&latencies, 50),
            percentile(&latencies, 99),
            latencies[latencies.len() - 1],
            latencies.iter().sum::<i64>() as f64 / latencies.len() as f64
        );
    }
    let url = format!("http://{}/metrics", server.http);
    let total = metric(&url, "pmon_recorder_commit_lag_seconds_count").unwrap_or(0.0);
    let buckets: Vec<String> = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25"]
        .iter()
        .map(|le| {
            let n = metric(&url, &format!("pmon_recorder_commit_lag_seconds_bucket{{le=\"{le}\"}}")).unwrap_or(0.0);
            format!("<= {} ms: {:.2}%", (le.parse::<f64>().unwrap_or(0.0) * 1000.0) as u64, n / total * 100.0)
        })
        .collect();
    println!("publish→commit lag (server histogram, {total} samples): {}", buckets.join(", "));
    println!(
        "server: {server_cpu:.1} CPU-seconds while publishing ({:.0}% of one core), RSS {} MiB at the end, peak {} MiB",
        server_cpu / a.seconds as f64 * 100.0,
        stats.rss_kib / 1024,
        stats.peak_rss_kib / 1024
    );
    println!(
        "bench process (publisher + {} stream readers): {own_cpu:.1} CPU-seconds ({:.0}% of one core)",
        seens.len(),
        own_cpu / a.seconds as f64 * 100.0
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} CPUs, load average at the end {}",
        num_cpus(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::{card, dechunk, load1};

    #[test]
    fn load1_is_what_the_card_prints() {
        for seq in [1, 7, 99, 100, 1234] {
            assert_eq!(format!("{:.2}", load1(seq).parse::<f64>().unwrap()), load1(seq));
        }
    }

    #[test]
    fn a_card_split_across_chunks_is_read_once_whole() {
        let event = "event: card\ndata: <a class=\"card\" id=\"card-host-00001\">\ndata: <dd class=\"load\">0.07 / 0.31</dd>\n\n";
        let (a, b) = event.split_at(30);
        let mut raw = format!("{:x}\r\n{a}\r\n{:x}\r\n{b}", a.len(), b.len()).into_bytes();
        let mut out = Vec::new();
        dechunk(&mut raw, &mut out);
        assert_eq!(out, a.as_bytes(), "the second chunk is incomplete");
        raw.extend_from_slice(b"\r\n");
        dechunk(&mut raw, &mut out);
        assert!(raw.is_empty());
        let text = String::from_utf8(out).unwrap();
        assert_eq!(card(&text), Some(("host-00001".into(), "0.07".into())));
        assert_eq!(card(": keep-alive\n\n"), None);
    }
}
