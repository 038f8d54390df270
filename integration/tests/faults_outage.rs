//! Outages between agents and server (#15): the server frozen (SIGSTOP), and one agent
//! cut off from it. Each test is bounded; `PMON_LONG_TESTS=1` runs the long variants. What
//! happened is written down in docs/RELIABILITY.md.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::*;

/// True when the long variants run (`PMON_LONG_TESTS=1`).
fn long() -> bool {
    std::env::var("PMON_LONG_TESTS").is_ok_and(|v| v == "1")
}

/// One tier's samples of a host as stored: (rows, distinct seq, lowest seq, highest seq).
pub(crate) struct Stored {
    rows: i64,
    distinct: i64,
    low: i64,
    pub high: i64,
}

impl Stored {
    /// Fast samples from `fast_samples`; medium and slow from the `ingested` record of
    /// each payload taken (`tier` is `wire::Kind`'s name). Rows are keyed, so a duplicate
    /// cannot be two rows; `complete` is what finds a sample lost.
    pub(crate) fn of(server: &TestServer, host: &str, tier: &str) -> Stored {
        let conn = rusqlite::Connection::open(server.database()).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let counts = "count(*), count(DISTINCT seq), coalesce(min(seq), 0), coalesce(max(seq), 0)";
        let sql = if tier == "fast" {
            format!("SELECT {counts} FROM fast_samples WHERE host_id = ?1")
        } else {
            // `ingested` has no view: the test reads every hour's table.
            let mut list = conn.prepare("SELECT name FROM sqlite_master WHERE name GLOB 'ingested_h*'").unwrap();
            let tables: Vec<String> = list.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
            let union = tables.iter().map(|t| format!("SELECT * FROM {t}")).collect::<Vec<_>>().join(" UNION ALL ");
            if union.is_empty() {
                return Stored { rows: 0, distinct: 0, low: 0, high: 0 };
            }
            format!("SELECT {counts} FROM ({union}) WHERE host_id = ?1 AND tier = '{tier}'")
        };
        conn.query_row(&sql, [host], |r| {
            Ok(Stored { rows: r.get(0)?, distinct: r.get(1)?, low: r.get(2)?, high: r.get(3)? })
        })
        .unwrap()
    }

    /// Every sample from 1 to the highest stored, each once.
    pub(crate) fn complete(&self) -> bool {
        self.rows == self.distinct && self.low == 1 && self.distinct == self.high
    }
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} rows, {} distinct seq, {}..={}", self.rows, self.distinct, self.low, self.high)
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid}");
}

/// #15: the server stopped with SIGSTOP (frozen: sockets open, nothing answered) for 10 s
/// (60 s with `PMON_LONG_TESTS=1`), then SIGCONT. Every agent comes back, and every fast
/// sample each agent took, before, during and after, is stored exactly once.
#[test]
fn a_server_frozen_by_sigstop_loses_no_sample_and_every_agent_comes_back() {
    let frozen = Duration::from_secs(if long() { 60 } else { 10 });
    let server = Server::start();
    let fake = FakeProxmox::new();
    let hosts: Vec<String> = (1..=4).map(|n| format!("pve-stop{n}")).collect();
    let mut agents = Vec::new();
    for (n, host) in hosts.iter().enumerate() {
        let token = server.add_host(host);
        let url = if n % 2 == 0 { format!("ws://{}/mqtt", server.http) } else { format!("mqtt://{}", server.mqtt) };
        agents.push(Killed(spawn_agent(&agent_config(server.dir.path(), &url, host, &token), &fake)));
    }
    wait_for("every agent's first samples", Duration::from_secs(30), || {
        hosts.iter().all(|h| Stored::of(&server, h, "fast").high >= 2).then_some(())
    });

    signal(server.child.id(), "-STOP");
    std::thread::sleep(frozen);
    signal(server.child.id(), "-CONT");
    let resumed = Instant::now();
    // Back: one session per agent, and samples taken after the freeze are stored.
    let highest: Vec<i64> = hosts.iter().map(|h| Stored::of(&server, h, "fast").high).collect();
    wait_for("every agent back", Duration::from_secs(90), || {
        (server.metric("pmon_mqtt_sessions") == hosts.len() as u64).then_some(())?;
        hosts.iter().zip(&highest).all(|(h, before)| Stored::of(&server, h, "fast").high > before + 3).then_some(())
    });
    eprintln!("every agent back {:?} after SIGCONT (frozen {frozen:?})", resumed.elapsed());
    // Replays land by then too; a sample missing for 20 s more is lost.
    let mut last = Vec::new();
    let complete = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        last = hosts.iter().map(|h| Stored::of(&server, h, "fast")).collect::<Vec<_>>();
        last.iter().all(Stored::complete)
    });
    assert!(complete, "every fast sample stored once: {last:?}");
    for host in &hosts {
        let frozen_s = frozen.as_secs() as i64;
        let stored = Stored::of(&server, host, "fast");
        assert!(stored.high > frozen_s, "{host}: the samples taken while frozen are there: {stored:?}");
        for tier in ["medium", "slow"] {
            let stored = Stored::of(&server, host, tier);
            assert!(stored.complete(), "{host}: every {tier} sample once: {stored:?}");
        }
    }
    assert_eq!(server.metric("pmon_recorder_lost_total"), 0);
    drop(agents);
}

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP forwarder between an agent and the server that can be cut like a network
/// partition: while cut, bytes in both directions are dropped and new connections are
/// held open without an answer (a lost SYN would look the same to the agent: a connect
/// that times out). Healing closes every connection made or held while cut.
struct Partition {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    /// Bumped at each heal; a connection of an older generation that saw a cut is closed.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Partition {
    fn new(upstream: SocketAddr) -> Partition {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (c, g) = (cut.clone(), generation.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let (cut, generation) = (c.clone(), g.clone());
                std::thread::spawn(move || forward(client, upstream, &cut, &generation));
            }
        });
        Partition { addr, cut, generation }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }

    fn heal(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Pumps both directions of one connection until either side closes, or the partition
/// healed after this connection saw it cut.
fn forward(client: TcpStream, upstream: SocketAddr, cut: &AtomicBool, generation: &std::sync::atomic::AtomicU64) {
    let born = generation.load(Ordering::SeqCst);
    let Ok(server) = TcpStream::connect(upstream) else { return };
    let streams = [client, server];
    for s in &streams {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if generation.load(Ordering::SeqCst) != born {
            break;
        }
        for (from, to) in [(0, 1), (1, 0)] {
            match (&streams[from]).read(&mut buf) {
                Ok(0) => return close(&streams),
                Ok(n) if !cut.load(Ordering::SeqCst) => {
                    if (&streams[to]).write_all(&buf[..n]).is_err() {
                        return close(&streams);
                    }
                }
                Ok(_) => {} // Lost in the partition.
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return close(&streams),
            }
        }
    }
    close(&streams)
}

fn close(streams: &[TcpStream; 2]) {
    for s in streams {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}

/// #15: an agent cut off from the server for an hour of samples. The agent crate's own
/// scheduler, outage buffer and publisher run in this process with every interval divided
/// by 300 (fast 100 ms for 30 s, medium 1 s for 300 s, slow 6 s for 1800 s), so the 12 s
/// partition holds what an hour holds: 120 fast, 12 medium and 2 slow samples (four
/// hours' worth, 48 s, with `PMON_LONG_TESTS=1`). The partition drops
/// bytes (a pulled cable), so the agent learns of it only from its keepalive. Every sample
/// is stored, none twice.
#[test]
fn an_agent_cut_off_for_an_hour_of_samples_replays_every_sample_once() {
    use proxmox_monitor_agent::config::{ServerUrl, Settings};
    use proxmox_monitor_agent::outbox::Outbox;
    use proxmox_monitor_agent::publisher;
    use proxmox_monitor_agent::schedule::{self, Envelopes, Intervals};

    let cut_for = Duration::from_secs(if long() { 48 } else { 12 });
    let server = Server::start();
    let host = "pve-cut";
    let token = server.add_host(host);
    let partition = Partition::new(server.mqtt);
    let settings = Settings {
        server: ServerUrl::Mqtt { host: "127.0.0.1".into(), port: partition.addr.port() },
        token,
        host_id: wire::HostId::parse(host).unwrap(),
        node: host.into(),
        fast: Duration::from_millis(100),
        medium: Duration::from_secs(1),
        slow: Duration::from_secs(6),
        keepalive: Duration::from_secs(1),
        ca_file: None,
        state_dir: server.dir.path().join("agent-state"),
        buffer_max_bytes: 50 << 20,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = runtime.spawn(async move {
        let outbox = Outbox::open(&settings.state_dir, settings.buffer_max_bytes).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let intervals = Intervals { fast: settings.fast, medium: settings.medium, slow: settings.slow };
        let envelopes = Envelopes::new(settings.host_id.clone(), outbox.dropped.clone());
        let scheduler = tokio::spawn(schedule::run(SimSource, envelopes, intervals, tx));
        let _ = publisher::run(&settings, rx, outbox, async {
            let _ = stopped.await;
        })
        .await;
        scheduler.abort();
    });
    wait_for("the agent's first samples", Duration::from_secs(30), || {
        (Stored::of(&server, host, "fast").high >= 10).then_some(())
    });

    partition.cut();
    let before = Stored::of(&server, host, "fast").high;
    std::thread::sleep(cut_for);
    let during = Stored::of(&server, host, "fast").high;
    partition.heal();
    let taken_while_cut = (cut_for.as_millis() / 100) as i64;
    wait_for("the agent back and its buffer replayed", Duration::from_secs(90), || {
        (Stored::of(&server, host, "fast").high > during + taken_while_cut).then_some(())
    });
    let mut last = Stored::of(&server, host, "fast");
    for _ in 0..100 {
        if last.complete() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        last = Stored::of(&server, host, "fast");
    }
    let _ = stop.send(());
    let _ = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), agent).await });
    eprintln!("cut for {cut_for:?}: {} fast samples stored before, {during} during (in flight), now {last:?}", before);
    assert!(last.complete(), "every fast sample once: {last:?}");
    for tier in ["medium", "slow"] {
        let stored = Stored::of(&server, host, tier);
        assert!(stored.complete(), "every {tier} sample once: {stored:?}");
    }
    assert!(server.metric("pmon_mqtt_keepalive_timeouts_total") <= 1);
}

/// The fixed realistic tiers of `integration::samples`, for the in-process agent.
struct SimSource;

impl proxmox_monitor_agent::source::Source for SimSource {
    async fn collect(
        &mut self,
        tier: wire::Kind,
        _timeout: Duration,
    ) -> (proxmox_monitor_agent::source::TierData, proxmox_monitor_agent::collect::Errors) {
        use proxmox_monitor_agent::source::TierData;
        let data = match tier {
            wire::Kind::Medium => TierData::Medium(integration::samples::medium_data()),
            wire::Kind::Slow => TierData::Slow(integration::samples::slow_data()),
            _ => TierData::Fast(integration::samples::fast_data(1)),
        };
        (data, Default::default())
    }
}
