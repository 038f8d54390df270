//! Agent footprint benchmark, side by side with Debian's prometheus-node-exporter:
//! the agent's steady RSS, its own CPU per fast cycle (children such as pvesh excluded),
//! and its stripped binary size; node_exporter's idle RSS and the CPU of one scrape.
//!
//! `cargo build --release -p proxmox-monitor -p proxmox-monitor-agent -p integration --bins &&
//!  target/release/bench_agent [--seconds 60] [--agent PATH]`
//! `--agent` measures another agent binary (e.g. the static musl build from
//! `scripts/build-agents`); by default the agent next to this binary is measured.
//! (node_exporter: `apt-get install prometheus-node-exporter`; skipped if absent).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::{agent_config, free_port, http_get, proc_stats, terminate, wait_for, FakeProxmox, Server};

fn main() {
    let flag = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let seconds: u64 = flag("--seconds").map_or(60, |s| s.parse().expect("--seconds N"));
    let binary = flag("--agent").map_or_else(|| integration::bin("proxmox-monitor-agent"), std::path::PathBuf::from);
    let server = Server::start();
    let token = server.add_host("bench-agent");
    let fake = FakeProxmox::new();
    let config = agent_config(server.dir.path(), &format!("mqtt://{}", server.mqtt), "bench-agent", &token);
    // Only the fast tier repeats: medium and slow run once at start, then every hour.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("medium_seconds = 2", "medium_seconds = 3600")
        .replace("slow_seconds = 5", "slow_seconds = 3600");
    std::fs::write(&config, text).unwrap();
    let size = std::fs::metadata(&binary).unwrap().len();
    let mut agent = Command::new(&binary)
        .arg("--config")
        .arg(&config)
        .env("PATH", fake.path_env())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = agent.id();
    // Warm up: connected, first cycles done.
    std::thread::sleep(Duration::from_secs(5));
    let count = || server.sql::<i64>("SELECT count(*) FROM fast_samples WHERE host_id = 'bench-agent'");
    let (cpu0, cycles0, t0) = (proc_stats(pid).cpu_seconds, count(), Instant::now());
    let mut max_rss = 0;
    while t0.elapsed() < Duration::from_secs(seconds) {
        max_rss = max_rss.max(proc_stats(pid).rss_kib);
        std::thread::sleep(Duration::from_millis(250));
    }
    let (cpu1, cycles1) = (proc_stats(pid).cpu_seconds, count());
    // VmHWM is only brought up to date now and then, so take the larger of it and our samples.
    let peak_rss = proc_stats(pid).peak_rss_kib.max(max_rss);
    let cycles = (cycles1 - cycles0).max(1);
    let agent_cpu_ms = (cpu1 - cpu0) * 1000.0 / cycles as f64;
    terminate(&mut agent);
    println!("agent: {} (fast tier every 1 s)", binary.display());
    println!(
        "agent: binary {:.1} MiB (stripped release), steady RSS max {:.1} MiB over {seconds} s (peak incl. start {:.1} MiB)",
        size as f64 / 1048576.0,
        max_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    println!(
        "agent: {:.2} ms own CPU per fast cycle ({} cycles, {:.2} CPU-s; children excluded)",
        agent_cpu_ms,
        cycles,
        cpu1 - cpu0
    );

    let exporter = ["/usr/bin/prometheus-node-exporter", "/usr/sbin/prometheus-node-exporter"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(exporter) = exporter else {
        println!("node_exporter: not installed (apt-get install prometheus-node-exporter); comparison skipped");
        return;
    };
    let port = free_port();
    let mut ne = Command::new(exporter)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    wait_for("node_exporter", Duration::from_secs(10), || http_get(&url).map(|_| ()));
    // Idle RSS after its first scrape (it loads its collectors lazily), then 100 scrapes
    // (CPU time is counted in 10 ms ticks, so one scrape alone would be too coarse).
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = proc_stats(ne.id()).rss_kib;
    let c0 = proc_stats(ne.id()).cpu_seconds;
    let scrapes = 100;
    for _ in 0..scrapes {
        let _ = http_get(&url);
    }
    let scrape_ms = (proc_stats(ne.id()).cpu_seconds - c0) * 1000.0 / scrapes as f64;
    let ne_rss_after = proc_stats(ne.id()).rss_kib;
    let _ = ne.kill();
    let _ = ne.wait();
    println!(
        "node_exporter: idle RSS {:.1} MiB ({:.1} MiB after scrapes), {:.2} ms CPU per scrape ({scrapes} scrapes)",
        idle_rss as f64 / 1024.0,
        ne_rss_after as f64 / 1024.0,
        scrape_ms
    );
    println!("ratios: agent RSS / node_exporter idle RSS = {:.2}; agent CPU per cycle / node_exporter CPU per scrape = {:.2}", max_rss as f64 / idle_rss.max(1) as f64, agent_cpu_ms / scrape_ms.max(0.001));
}
