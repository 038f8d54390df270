//! Agent footprint benchmark, side by side with Debian's prometheus-node-exporter, children
//! counted (issue 14): per fast cycle and per medium and slow cycle, the CPU of the agent plus
//! every process it started; the agent's steady RSS and stripped binary size; node_exporter's
//! idle RSS and the CPU of one scrape, scraped as many times as the agent ran fast cycles.
//!
//! `cargo build --release -p proxmox-monitor -p integration --bins &&
//!  cargo build --profile agent -p proxmox-monitor-agent &&
//!  target/release/bench_agent --agent target/agent/proxmox-monitor-agent [--seconds 60] [--once-runs 10]`
//! The `agent` profile is the one shipped (size-optimized; docs/PERFORMANCE.md). `--agent`
//! measures that or another agent binary (e.g. the static musl build from
//! `scripts/build-agents`); without it, the agent next to this binary (a `release` build).
//! (node_exporter: `apt-get install prometheus-node-exporter`; skipped if absent).
//!
//! The fake `pvesh` and `pveversion` are Perl programs that load the 79 modules of
//! [`PERL_MODULES`] before answering, so each call costs what a mid-sized Perl program's start
//! costs (about 75 ms of CPU on the bench machine). That is a floor, not an estimate: the real
//! pvesh also loads the PVE API modules and reads the cluster file system. `zpool` and `zfs`
//! are shell scripts printing captured output, as cheap as the real C programs or cheaper.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::{agent_config, free_port, http_get, proc_stats, terminate, wait_for, Server};

/// Standard Perl modules the fake Perl programs load (pvesh itself loads these and hundreds more).
const PERL_MODULES: &str = "strict warnings POSIX IO::File IO::Socket::IP JSON::PP Data::Dumper Storable \
    Getopt::Long File::Spec File::Path File::Basename Time::Local Time::HiRes Encode Socket Digest::SHA \
    Digest::MD5 HTTP::Tiny MIME::Base64 List::Util Scalar::Util Text::Wrap Term::ReadLine Fcntl Carp \
    Math::BigInt Math::BigFloat Pod::Usage IPC::Open3 Sys::Hostname Net::Ping CPAN::Meta::YAML Module::Load";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../agent/tests/fixtures")
}

/// `bin/` with fake Proxmox commands answering from the agent's captured fixtures; each call is
/// appended to `calls`.
struct FakeHost {
    dir: tempfile::TempDir,
}

impl FakeHost {
    fn new() -> FakeHost {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let host = FakeHost { dir };
        let f = fixtures();
        let f = f.display();
        host.perl(
            "pvesh",
            &format!(
                "storage => '{f}/storage.json', qemu => '{f}/qemu.json', lxc => '{f}/lxc.json', \
                 backup => '{f}/pvesh_cluster_backup.json', tasks => '{f}/pvesh_tasks.json', \
                 log => '{f}/pvesh_task_log_job.json', prod => '{f}/pvesh_pool_prod.json'"
            ),
        );
        host.perl("pveversion", &format!("'' => '{f}/pveversion.txt'"));
        host.shell(
            "zpool",
            &format!(
                "\"status -j --json-int\") echo \"invalid option 'j'\" >&2; exit 2;;\n\
                 \"status -p\") cat '{f}/zpool_status_healthy.txt';;\n\
                 \"list -Hp -o name,size,alloc,free,frag,cap,dedup,health\") cat '{f}/zpool_list.txt';;"
            ),
        );
        host.shell(
            "zfs",
            &format!("\"list -t snapshot -Hp -o name,used,creation\") cat '{f}/zfs_list_snapshots.txt';;"),
        );
        host
    }

    /// A Perl program that loads [`PERL_MODULES`], then prints the file its last path segment
    /// (or, for no arguments, `''`) maps to in `answers`.
    fn perl(&self, name: &str, answers: &str) {
        let uses: String = PERL_MODULES.split_whitespace().map(|m| format!("use {m};\n")).collect();
        let body = format!(
            "#!/usr/bin/perl\n{uses}\
             open(my $log, '>>', '{calls}') or die; print $log \"{name} @ARGV\\n\"; close($log);\n\
             my %answers = ({answers});\n\
             my ($key) = (($ARGV[1] // '') =~ m{{([^/]*)$}});\n\
             my $file = $answers{{$key // ''}} or do {{ print STDERR \"no such path\\n\"; exit 2 }};\n\
             open(my $fh, '<', $file) or die; print while <$fh>;\n",
            calls = self.calls_path().display()
        );
        self.write(name, &body);
    }

    fn shell(&self, name: &str, cases: &str) {
        let body = format!(
            "#!/bin/sh\necho \"{name} $*\" >> '{}'\ncase \"$*\" in\n{cases}\n*) echo \"unexpected: $*\" >&2; exit 2;;\nesac\n",
            self.calls_path().display()
        );
        self.write(name, &body);
    }

    fn write(&self, name: &str, body: &str) {
        let path = self.dir.path().join("bin").join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn calls_path(&self) -> PathBuf {
        self.dir.path().join("calls")
    }

    fn calls(&self) -> usize {
        std::fs::read_to_string(self.calls_path()).map_or(0, |s| s.lines().count())
    }

    fn path_env(&self) -> String {
        format!("{}:{}", self.dir.path().join("bin").display(), std::env::var("PATH").unwrap_or_default())
    }
}

/// CPU seconds of this process's waited-for children (cutime + cstime).
fn own_children_cpu() -> f64 {
    proc_stats(std::process::id()).children_cpu_seconds
}

fn main() {
    let flag = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    let seconds: u64 = flag("--seconds").map_or(60, |s| s.parse().expect("--seconds N"));
    let once_runs: u32 = flag("--once-runs").map_or(10, |s| s.parse().expect("--once-runs N"));
    let binary = flag("--agent").map_or_else(|| integration::bin("proxmox-monitor-agent"), PathBuf::from);
    let server = Server::start();
    let token = server.add_host("bench-agent");
    let fake = FakeHost::new();
    let config = agent_config(server.dir.path(), &format!("mqtt://{}", server.mqtt), "bench-agent", &token);
    // Only the fast tier repeats: medium and slow run once at start, then every hour.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("medium_seconds = 2", "medium_seconds = 3600")
        .replace("slow_seconds = 5", "slow_seconds = 3600");
    std::fs::write(&config, text).unwrap();
    let size = std::fs::metadata(&binary).unwrap().len();

    // 1. Fast cycles of the running agent, after its one medium and slow cycle.
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
    let tiers_done = || {
        server.sql::<i64>("SELECT count(*) FROM latest WHERE host_id = 'bench-agent' AND tier IN ('medium', 'slow')")
    };
    // The start offset is at most 15 s; then a few seconds more so the first cycles are done.
    wait_for("medium and slow cycles", Duration::from_secs(30), || (tiers_done() == 2).then_some(()));
    std::thread::sleep(Duration::from_secs(3));
    let count = || server.sql::<i64>("SELECT count(*) FROM fast_samples WHERE host_id = 'bench-agent'");
    let start = proc_stats(pid);
    let (calls0, cycles0, t0) = (fake.calls(), count(), Instant::now());
    let mut max_rss = 0;
    while t0.elapsed() < Duration::from_secs(seconds) {
        max_rss = max_rss.max(proc_stats(pid).rss_kib);
        std::thread::sleep(Duration::from_millis(250));
    }
    let (end, cycles1, calls1) = (proc_stats(pid), count(), fake.calls());
    // VmHWM is only brought up to date now and then, so take the larger of it and our samples.
    let peak_rss = end.peak_rss_kib.max(max_rss);
    let cycles = (cycles1 - cycles0).max(1);
    let own = end.cpu_seconds - start.cpu_seconds;
    let children = end.children_cpu_seconds - start.children_cpu_seconds;
    let fast_ms = (own + children) * 1000.0 / cycles as f64;
    terminate(&mut agent);
    println!("agent: {} (fast tier every 1 s)", binary.display());
    println!(
        "agent: binary {:.1} MiB (stripped release), steady RSS max {:.1} MiB over {seconds} s (peak incl. start {:.1} MiB)",
        size as f64 / 1048576.0,
        max_rss as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
    println!(
        "agent fast: {fast_ms:.2} ms CPU per cycle incl. children ({cycles} cycles; own {own:.2} CPU-s, children {children:.2} CPU-s, {} child processes)",
        calls1 - calls0
    );

    // 2. Medium and slow cycles: `--once --tier T` runs, counted through this process's
    // waited-for children (the agent and, since it waits for them, its commands).
    for tier in ["medium", "slow"] {
        let (c0, calls0) = (own_children_cpu(), fake.calls());
        for _ in 0..once_runs {
            let status = Command::new(&binary)
                .args(["--config", config.to_str().unwrap(), "--once", "--tier", tier])
                .env("PATH", fake.path_env())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "agent --once --tier {tier} failed");
        }
        let ms = (own_children_cpu() - c0) * 1000.0 / once_runs as f64;
        let per_run = (fake.calls() - calls0) as f64 / once_runs as f64;
        println!(
            "agent {tier}: {ms:.1} ms CPU per cycle incl. children and agent start ({once_runs} runs of --once --tier {tier}; {per_run} child processes each)"
        );
    }

    let exporter = ["/usr/bin/prometheus-node-exporter", "/usr/sbin/prometheus-node-exporter"]
        .into_iter()
        .find(|p| Path::new(p).exists());
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
    // Idle RSS after its first scrape (it loads its collectors lazily), then as many scrapes
    // as the agent ran fast cycles (CPU time is counted in 10 ms ticks, so one scrape alone
    // would be too coarse).
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = proc_stats(ne.id()).rss_kib;
    let c0 = proc_stats(ne.id());
    let scrapes = cycles;
    for _ in 0..scrapes {
        let _ = http_get(&url);
    }
    let c1 = proc_stats(ne.id());
    // Its children too, for symmetry (it starts none with default collectors).
    let ne_cpu = c1.cpu_seconds + c1.children_cpu_seconds - c0.cpu_seconds - c0.children_cpu_seconds;
    let scrape_ms = ne_cpu * 1000.0 / scrapes as f64;
    let ne_rss_after = c1.rss_kib;
    let _ = ne.kill();
    let _ = ne.wait();
    println!(
        "node_exporter: idle RSS {:.1} MiB ({:.1} MiB after scrapes), {:.2} ms CPU per scrape ({scrapes} scrapes)",
        idle_rss as f64 / 1024.0,
        ne_rss_after as f64 / 1024.0,
        scrape_ms
    );
    let rss_ratio = max_rss as f64 / idle_rss.max(1) as f64;
    let cpu_ratio = fast_ms / scrape_ms.max(0.001);
    println!(
        "ratios: agent RSS / node_exporter idle RSS = {rss_ratio:.2} (target <= 0.33); agent CPU per fast cycle incl. children / node_exporter CPU per scrape = {cpu_ratio:.2} (target <= 1)"
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} CPUs, load average at the end {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
}
