//! What the fleet-wide reads cost at fleet size: the real server over a database of N
//! hosts, each with a fast and a medium payload (2 pools, 4 storages, 15 guests) as its
//! latest. Prints the server's start-up time, then for `/metrics`, `/api/v1/hosts`, the
//! overview page (`/`, sorted by load, and its last page) and a fleet-wide `/search`: the
//! latency of R requests one after another and the server CPU each took.
//!
//! `cargo build --release -p proxmox-monitor -p integration --bins &&
//!  target/release/bench_pages --hosts 10000 --requests 20`

use std::time::Instant;

use integration::samples::seed;
use integration::{http_get_with, proc_stats, Server};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let hosts = arg("--hosts", 10_000);
    let requests = arg("--requests", 20);
    let mut server = Server::start_with_hosts(hosts, Vec::new());
    server.stop();

    // The latest payloads, written by the recorder's own writer.
    let seeded = Instant::now();
    let names: Vec<String> = server.tokens.iter().map(|(h, _)| h.clone()).collect();
    seed(&server.database(), &names, &["fast", "medium"]);
    println!("seeded {hosts} hosts (fast + medium) in {:.1} s", seeded.elapsed().as_secs_f64());

    let started = Instant::now();
    server.start_again();
    println!("server start to healthy: {} ms", started.elapsed().as_millis());

    let cookie = server.login();
    let pid = server.child.id();
    // The overview as it opens, sorted by a value, and at its last page (whose cards
    // are found by a partial sort of every host); a fleet-wide search.
    let last_page = format!("/?page={}", hosts.div_ceil(100).max(1));
    for path in ["/metrics", "/api/v1/hosts", "/", "/?sort=load", last_page.as_str(), "/search?q=web"] {
        let url = format!("http://{}{path}", server.http);
        let mut times = Vec::with_capacity(requests);
        let mut bytes = 0;
        let cpu_before = proc_stats(pid).cpu_seconds;
        for _ in 0..requests {
            let t = Instant::now();
            let (code, _, body) = http_get_with(&url, Some(&cookie)).expect("the server answers");
            times.push(t.elapsed());
            assert_eq!(code, 200, "{path}: {body}");
            bytes = body.len();
        }
        let cpu = (proc_stats(pid).cpu_seconds - cpu_before) / requests as f64;
        times.sort();
        println!(
            "{path}: {requests} requests, {} KiB each: median {} ms, max {} ms; server CPU {:.0} ms per request",
            bytes / 1024,
            times[times.len() / 2].as_millis(),
            times[times.len() - 1].as_millis(),
            cpu * 1000.0
        );
    }
    println!("server peak RSS {} MiB", proc_stats(pid).peak_rss_kib / 1024);
}
