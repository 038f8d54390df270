//! The fleet simulator (#15): N agents, each running the agent crate's own scheduler and
//! publisher (rumqttc over MQTT over WebSocket, a real token per host registered in the
//! server's registry), publish a realistic tier mix to the real `proxmox-monitor serve`;
//! then the same generator against Mosquitto 2 as a pass-through broker.
//!
//! `cargo build --release -p proxmox-monitor -p integration --bins &&
//!  target/release/bench_fleet [--agents 1000] [--seconds 60] [--fast 10] [--medium 60]
//!  [--slow 300] [--broker both|ours|mosquitto]`
//! (`scripts/bench` does this, installs mosquitto and raises `ulimit -n`.)
//!
//! Latency, the same for both brokers: from the agent's envelope (`ts_ms`, stamped just
//! before the payload goes to the publisher) to its delivery to an observer subscribed to
//! `pmon/v1/+/+` at QoS 1 on the same machine. Our server also reports publish → commit
//! (its `pmon_recorder_commit_lag_seconds` histogram, bucket bounds). `msgs_per_s` is the
//! observer's deliveries per second over the window; CPU is the broker process's over the
//! window (100 = one core). Idle connections alone are measured by
//! `bench_idle` (plain and WebSocket, with Mosquitto beside).
//!
//! `--reconnect drop|restart` measures a reconnect storm instead of the window: once every
//! agent is online (and 15 s more), all of them lose their connection at once and each
//! reconnects with the agent's own code and backoff (1 s, 2 s, 4 s ... × 50–100 %).
//! `drop`: the agents connect through relays ([`integration::relay`], standing in for
//! Caddy; processes of their own, at most 5,000 connections each) which close every
//! connection both ways, the broker alive (a proxy restart).
//! `restart`: the broker is stopped with SIGTERM and started again on the same ports (and
//! for ours the same database), as an upgrade does. Timed from that moment to each host's
//! next `online` at the observer: `all_online_s` for the last, p50/p99 per host, `back_s`
//! until the broker accepted connections again.
//!
//! Ends with exactly one line for our server:
//! `agents=N msgs_per_s=X p50_ms=Y p99_ms=Z server_rss_mb=W server_cpu_pct=C`, or with
//! `--reconnect`:
//! `reconnect=drop agents=N online=N back_s=B all_online_s=S p50_ms=Y p99_ms=Z server_rss_mb=W`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration::fleet::{self, Deliveries, Mosquitto};
use integration::relay::{self, RelayProcess};
use integration::{proc_stats, Server};
use proxmox_monitor_agent::schedule::Intervals;
use tokio::sync::watch;

struct Args {
    agents: usize,
    seconds: u64,
    tiers: Intervals,
    ours: bool,
    mosquitto: bool,
    reconnect: Option<Storm>,
    /// How long every agent stays online before the reconnect storm.
    settle: Duration,
}

/// How `--reconnect` drops every connection at once.
#[derive(Clone, Copy)]
enum Storm {
    /// The relay in front of the broker closes them; the broker stays up.
    Drop,
    /// The broker is stopped (SIGTERM) and started again on the same ports.
    Restart,
}

impl Storm {
    fn name(self) -> &'static str {
        match self {
            Storm::Drop => "drop",
            Storm::Restart => "restart",
        }
    }
}

fn args() -> Args {
    let secs = |v: &str| Duration::from_secs(v.parse().expect("seconds"));
    let mut a = Args {
        agents: 1000,
        seconds: 60,
        tiers: Intervals { fast: secs("10"), medium: secs("60"), slow: secs("300") },
        ours: true,
        mosquitto: true,
        reconnect: None,
        settle: secs("15"),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--agents" => a.agents = value().parse().expect("--agents N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds N"),
            "--fast" => a.tiers.fast = secs(&value()),
            "--medium" => a.tiers.medium = secs(&value()),
            "--slow" => a.tiers.slow = secs(&value()),
            "--broker" => {
                let which = value();
                (a.ours, a.mosquitto) = match which.as_str() {
                    "both" => (true, true),
                    "ours" => (true, false),
                    "mosquitto" => (false, true),
                    _ => panic!("--broker both|ours|mosquitto"),
                };
            }
            "--reconnect" => {
                a.reconnect = match value().as_str() {
                    "drop" => Some(Storm::Drop),
                    "restart" => Some(Storm::Restart),
                    _ => panic!("--reconnect drop|restart"),
                };
            }
            "--settle" => a.settle = secs(&value()),
            other => panic!(
                "unknown argument {other}; use --agents N --seconds N --fast S --medium S --slow S \
                 --broker both|ours|mosquitto --reconnect drop|restart --settle S"
            ),
        }
    }
    a
}

/// One broker's figures: the window's, or a reconnect storm's.
enum Outcome {
    Steady(Figures),
    Storm(Reconnected),
}

impl Outcome {
    fn line(&self, agents: usize) -> String {
        match self {
            Outcome::Steady(f) => f.line(agents),
            Outcome::Storm(r) => r.line(agents),
        }
    }

    /// `ours / theirs` for each figure that matters.
    fn ratios(ours: &Outcome, theirs: &Outcome) -> String {
        match (ours, theirs) {
            (Outcome::Steady(ours), Outcome::Steady(theirs)) => format!(
                "rss {}, cpu {}, p50 {}, p99 {}, msgs_per_s {}",
                ratio(ours.rss_mb, theirs.rss_mb),
                ratio(ours.cpu_pct, theirs.cpu_pct),
                ratio(ours.p50_ms.into(), theirs.p50_ms.into()),
                ratio(ours.p99_ms.into(), theirs.p99_ms.into()),
                ratio(ours.msgs_per_s, theirs.msgs_per_s)
            ),
            (Outcome::Storm(ours), Outcome::Storm(theirs)) => format!(
                "all_online {}, p50 {}, p99 {}",
                ratio(ours.all_online_s, theirs.all_online_s),
                ratio(ours.p50_ms.into(), theirs.p50_ms.into()),
                ratio(ours.p99_ms.into(), theirs.p99_ms.into())
            ),
            _ => unreachable!("both brokers run the same measurement"),
        }
    }
}

/// One broker's steady-state figures.
struct Figures {
    msgs_per_s: f64,
    p50_ms: u32,
    p99_ms: u32,
    rss_mb: f64,
    cpu_pct: f64,
}

impl Figures {
    fn line(&self, agents: usize) -> String {
        format!(
            "agents={agents} msgs_per_s={:.0} p50_ms={} p99_ms={} server_rss_mb={:.1} server_cpu_pct={:.1}",
            self.msgs_per_s, self.p50_ms, self.p99_ms, self.rss_mb, self.cpu_pct
        )
    }
}

/// One broker's reconnect storm, timed from the moment every connection was dropped.
struct Reconnected {
    storm: Storm,
    /// Hosts seen `online` again within the limit.
    online: usize,
    /// Until the broker accepted connections again (0 for `drop`).
    back_s: f64,
    /// Until the last host was `online` again (the limit's when some never were).
    all_online_s: f64,
    p50_ms: u32,
    p99_ms: u32,
    rss_mb: f64,
}

impl Reconnected {
    fn line(&self, agents: usize) -> String {
        format!(
            "reconnect={} agents={agents} online={} back_s={:.1} all_online_s={:.1} p50_ms={} p99_ms={} server_rss_mb={:.1}",
            self.storm.name(),
            self.online,
            self.back_s,
            self.all_online_s,
            self.p50_ms,
            self.p99_ms,
            self.rss_mb
        )
    }
}

/// Where the agents and the observer connect, and the broker's process.
struct Target {
    ws: SocketAddr,
    tcp: SocketAddr,
    pid: u32,
    observer: (String, String),
    hosts: Vec<(String, String)>,
}

/// Connections per relay process: two sockets each, under a 20,000 open-file limit.
const PER_RELAY: usize = 5000;

fn main() -> anyhow::Result<()> {
    if let [flag, target] = &std::env::args().skip(1).collect::<Vec<_>>()[..] {
        if flag == "--relay" {
            return relay::serve_relay_process(target.parse()?);
        }
    }
    let a = args();
    if std::env::var_os("TEST_SERVER_LOG").is_none() {
        // rumqttd logs every link's end at ERROR ("no-connection id N is already gone").
        std::env::set_var("TEST_SERVER_LOG", "warn,rumqttd=off");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut results = Vec::new();
    if a.mosquitto {
        let mut broker = Mosquitto::start()?;
        let hosts = (0..a.agents).map(|i| (format!("host-{i:05}"), "unused".to_owned())).collect();
        let target = Target { ws: broker.ws, tcp: broker.tcp, pid: broker.pid(), observer: anon(), hosts };
        let mut restart = || {
            broker.restart().expect("mosquitto starts again");
            broker.pid()
        };
        let outcome = runtime.block_on(run(&a, target, &mut restart))?;
        println!("mosquitto: {}", outcome.line(a.agents));
        results.push(("mosquitto", outcome));
    }
    if a.ours {
        let mut server = Server::start_with_hosts(a.agents, vec![]);
        let observer = ("bench-observer".to_owned(), server.add_observer("bench-observer"));
        let target = Target {
            ws: server.http,
            tcp: server.mqtt,
            pid: server.child.id(),
            observer,
            hosts: server.tokens.clone(),
        };
        let mut restart = || {
            server.restart();
            server.child.id()
        };
        let outcome = runtime.block_on(run(&a, target, &mut restart))?;
        commit_lag(&server);
        results.push(("ours", outcome));
    }
    if let [(_, theirs), (_, ours)] = &results[..] {
        println!("ours/mosquitto: {}", Outcome::ratios(ours, theirs));
    }
    if let Some((_, ours)) = results.iter().find(|(name, _)| *name == "ours") {
        println!("{}", ours.line(a.agents));
    }
    Ok(())
}

/// `ours / theirs` as `2.5x`; `n/a` when theirs is 0.
fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.1}x", ours / theirs)
    } else {
        "n/a".into()
    }
}

fn anon() -> (String, String) {
    ("bench-observer".into(), "unused".into())
}

/// Connects the fleet to `target`, measures, and disconnects it. `restart` stops the
/// broker and starts it again, returning its new process id (`--reconnect restart`).
async fn run(a: &Args, target: Target, restart: &mut dyn FnMut() -> u32) -> anyhow::Result<Outcome> {
    let observer = fleet::observe(target.tcp, &target.observer.0, &target.observer.1);
    let seen = &observer.seen;
    let state = tempfile::tempdir()?;
    let (stop, stopping) = watch::channel(());
    let mut relays = Vec::new();
    if let Some(Storm::Drop) = a.reconnect {
        let program = std::env::current_exe()?;
        for _ in 0..a.agents.div_ceil(PER_RELAY) {
            relays.push(RelayProcess::spawn(&program, target.ws)?);
        }
    }
    let started = Instant::now();
    // Connect at most 500 a second: the listen backlog of either broker is finite.
    for (i, (host, token)) in target.hosts.iter().enumerate() {
        let ws = if relays.is_empty() { target.ws } else { relays[i % relays.len()].addr };
        let settings = fleet::agent_settings(ws, host, token, a.tiers, state.path());
        tokio::spawn(fleet::run_agent(settings, stopping.clone()));
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let online = wait_online(seen, a.agents, Duration::from_secs(60 + a.agents as u64 / 50)).await;
    if online < a.agents {
        anyhow::bail!("only {online} of {} agents came online", a.agents);
    }
    eprintln!("{} agents online in {:.1} s", a.agents, started.elapsed().as_secs_f64());
    let outcome = match a.reconnect {
        None => Outcome::Steady(measure(a, &target, seen).await),
        Some(storm) => Outcome::Storm(reconnect(a, storm, &target, seen, &mut relays, restart).await?),
    };
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(outcome)
}

/// Waits until `agents` hosts are online or `limit` has passed; returns how many are.
async fn wait_online(seen: &Mutex<Deliveries>, agents: usize, limit: Duration) -> usize {
    let start = Instant::now();
    loop {
        let online = seen.lock().unwrap().online.len();
        if online >= agents || start.elapsed() > limit {
            return online;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After `--settle` (default 15 s: every tier has fired once), drops every agent's
/// connection at once (the `relays` cut them, or `restart` restarts the broker) and times
/// each host's next `online` from that moment.
async fn reconnect(
    a: &Args,
    storm: Storm,
    target: &Target,
    seen: &Mutex<Deliveries>,
    relays: &mut [RelayProcess],
    restart: &mut dyn FnMut() -> u32,
) -> anyhow::Result<Reconnected> {
    tokio::time::sleep(a.settle).await;
    // Every host is online and stays so until the drop: an `online` from now on is new.
    seen.lock().unwrap().online.clear();
    let start = Instant::now();
    let pid = match storm {
        Storm::Drop => {
            for relay in relays {
                relay.cut()?;
            }
            target.pid
        }
        // Blocks this thread only: it drives nothing but this function, the agents run on
        // the runtime's workers and the observer on its own thread.
        Storm::Restart => restart(),
    };
    let back_s = if matches!(storm, Storm::Restart) { start.elapsed().as_secs_f64() } else { 0.0 };
    let limit = Duration::from_secs(60 + a.agents as u64 / 100);
    let online = wait_online(seen, a.agents, limit).await;
    let mut after_ms: Vec<u32> = {
        let seen = seen.lock().unwrap();
        seen.online.values().map(|at| at.saturating_duration_since(start).as_millis() as u32).collect()
    };
    let p50_ms = fleet::quantile(&mut after_ms, 0.5);
    let p99_ms = fleet::quantile(&mut after_ms, 0.99);
    let last_s = after_ms.last().map_or(0.0, |ms| f64::from(*ms) / 1000.0);
    Ok(Reconnected {
        storm,
        online,
        back_s,
        all_online_s: if online >= a.agents { last_s } else { limit.as_secs_f64() },
        p50_ms,
        p99_ms,
        rss_mb: proc_stats(pid).rss_kib as f64 / 1024.0,
    })
}

/// A warm-up (every tier has fired once: the scheduler's start offsets are at most 15 s),
/// then the window.
async fn measure(a: &Args, target: &Target, seen: &Arc<Mutex<Deliveries>>) -> Figures {
    tokio::time::sleep(Duration::from_secs(15)).await;
    let cpu = proc_stats(target.pid).cpu_seconds;
    seen.lock().unwrap().recording = true;
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let mut latencies = {
        let mut seen = seen.lock().unwrap();
        seen.recording = false;
        std::mem::take(&mut seen.latencies_ms)
    };
    let elapsed = window.elapsed().as_secs_f64();
    let end = proc_stats(target.pid);
    Figures {
        msgs_per_s: latencies.len() as f64 / elapsed,
        p50_ms: fleet::quantile(&mut latencies, 0.5),
        p99_ms: fleet::quantile(&mut latencies, 0.99),
        rss_mb: end.rss_kib as f64 / 1024.0,
        cpu_pct: (end.cpu_seconds - cpu) / elapsed * 100.0,
    }
}

/// Our server's publish → commit lag over the whole run, from its histogram: the first
/// bucket bound that holds 50 % and 99 % of the samples.
fn commit_lag(server: &Server) {
    let total = server.metric("pmon_recorder_commit_lag_seconds_count");
    let within = |q: f64| {
        recorder::LAG_BUCKETS_MS
            .iter()
            .find(|ms| {
                let le = format!("{}", **ms as f64 / 1000.0);
                server.metric(&format!("pmon_recorder_commit_lag_seconds_bucket{{le=\"{le}\"}}")) as f64
                    >= q * total as f64
            })
            .map_or("over 5000".to_owned(), |ms| format!("≤ {ms}"))
    };
    println!("ours publish→commit: {total} samples, p50 {} ms, p99 {} ms", within(0.5), within(0.99));
}
