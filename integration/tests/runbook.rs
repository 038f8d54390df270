//! docs/runbook.md run as written (issue #16), SLOW: every `sh` block, in order, in bash
//! with `-euo pipefail`, against our packages (`scripts/package --dev`) installed by the fake
//! `apt` with `dpkg --root` into a scratch root that stands in for `/`, the real server and
//! agents started by the fake `systemctl`, and remote hosts reached by the fake `ssh`/`scp`
//! (each its own scratch root). The placeholders the runbook names are substituted, a
//! line marked `# not run in tests: REASON` is skipped (its reason required), and the
//! steps the runbook gives in prose (editing a config file) are done here. Checked beyond
//! each block's success: the hosts come online, the test notification arrives, a rotated
//! host goes offline, a removed one is gone, an alert is acknowledged, the backups are
//! sound. A command changed to one that fails makes its block, and this test, fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use integration::*;

use crate::alerting::{fake_zpool, receiver, set_pool};

const RUNBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/runbook.md");
const NOT_RUN: &str = "# not run in tests:";
/// The password the operator types into `hash-password`.
const OPERATOR_PASSWORD: &str = "runbook-password";

/// The `sh` blocks of the runbook, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (line.trim(), current.as_mut()) {
            ("```sh", None) => current = Some(String::new()),
            ("```", Some(_)) => blocks.extend(current.take()),
            (_, Some(block)) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    assert!(current.is_none(), "an unclosed ```sh block in the runbook");
    blocks
}

/// The block with its marked lines turned into no-ops; each mark must give a reason.
fn without_marked_lines(block: &str) -> String {
    let mut out = String::new();
    for line in block.lines() {
        match line.split_once(NOT_RUN) {
            Some((_, reason)) => {
                assert!(reason.trim().len() >= 10, "`{line}`: say why it cannot run here");
                out.push_str(": skipped\n");
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// `text` with every absolute path under /etc, /var or /tmp moved under `root` (a path
/// starts a word, or follows `:` as in scp's `root@host:/tmp/`).
fn under_root(text: &str, root: &Path) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let starts_path = ["/etc/", "/var/", "/tmp/"].iter().any(|p| text[i..].starts_with(p));
        let after = text[..i].chars().next_back();
        if starts_path && after.is_none_or(|a| a.is_whitespace() || ":\"'=".contains(a)) {
            out.push_str(&root.display().to_string());
        }
        out.push(c);
    }
    out
}

/// The scratch world the runbook runs in: the server machine's root (also the first
/// host's), the remote hosts' roots below it, fake commands and fake Proxmox tools.
struct World {
    dir: tempfile::TempDir,
    root: PathBuf,
    fake: FakeProxmox,
    http_port: u16,
    receiver: std::net::SocketAddr,
}

impl World {
    fn new(receiver: std::net::SocketAddr) -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        // The packages as §2 leaves them: in dist/, and copied to the machine (./).
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dist = dir.path().join("dist");
        let out = run_bounded(
            Command::new(repo.join("scripts/package")).arg("--dev").arg("--out").arg(&dist),
            Duration::from_secs(600),
        );
        assert!(out.status.success(), "scripts/package --dev: {}", String::from_utf8_lossy(&out.stderr));
        for deb in std::fs::read_dir(&dist).unwrap() {
            let deb = deb.unwrap().path();
            std::fs::copy(&deb, dir.path().join(deb.file_name().unwrap())).unwrap();
        }
        std::fs::write(dir.path().join("hosts.txt"), "pve-host-02\npve-host-03\n").unwrap();
        let fake = FakeProxmox::new();
        fake_zpool(&fake);
        set_pool(&fake, true);
        World { dir, root, fake, http_port: free_port(), receiver }
    }

    fn substitute(&self, block: &str) -> String {
        let http = format!("127.0.0.1:{}", self.http_port);
        let text = without_marked_lines(block)
            .replace("https://monitor.example.com", &format!("http://{http}"))
            .replace("wss://monitor.example.com", &format!("ws://{http}"))
            .replace("127.0.0.1:4000", &http)
            .replace("https://ntfy.sh/your-topic", &format!("http://{}/your-topic", self.receiver))
            .replace("_PREVIOUS_", "_*_");
        under_root(&text, &self.root)
    }

    /// Runs one block in bash from the scratch directory, `stdin` on its stdin; its output.
    fn run(&self, block: &str, stdin: &str) -> String {
        let script = self.substitute(block);
        let fakes = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runbook-bin");
        let path = format!("{}:{}/usr/bin:{}", fakes.display(), self.root.display(), std::env::var("PATH").unwrap());
        let mut child = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("RUNBOOK_ROOT", &self.root)
            .env("PMON_ROOT", &self.root)
            .env("RUNBOOK_FAKE_PROXMOX", self.fake.dir.path())
            .env("DATABASE_PATH", self.root.join("var/lib/proxmox-monitor/monitor.db"))
            .env("PROXMOX_MONITOR_ENV_FILE", self.root.join("etc/default/proxmox-monitor"))
            .env("PROXMOX_MONITOR_AGENT_CONFIG", self.root.join("etc/proxmox-monitor/agent.toml"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        // A block that ends (or fails) before reading all of its input closes the pipe: its
        // exit status and output below tell which, so a broken pipe here is not the verdict.
        if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing the block's input: {e}");
        }
        let out = run_bounded_child(child, Duration::from_secs(180));
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "runbook block failed ({}):\n{script}\n--- output:\n{said}", out.status);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A `proxmox-monitor` subcommand on the scratch server's database, as JSON.
    fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new(bin("proxmox-monitor"))
            .args(args)
            .env("DATABASE_PATH", self.root.join("var/lib/proxmox-monitor/monitor.db"))
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn status_of(&self, host: &str) -> Option<String> {
        let hosts = self.cli_json(&["host", "list", "--json"]);
        let found = hosts.as_array().unwrap().iter().find(|h| h["host_id"] == host)?;
        Some(found["status"].as_str().unwrap().to_owned())
    }

    fn wait_status(&self, host: &str, want: impl Fn(Option<&str>) -> bool) {
        wait_for(&format!("the status of {host}"), Duration::from_secs(30), || {
            want(self.status_of(host).as_deref()).then_some(())
        });
    }

    /// The prose of §3: the secrets into the environment file (what gen-secret and
    /// hash-password printed), the ports this test chose.
    fn write_env_file(&self, printed: &str) {
        let lines: Vec<&str> = printed.lines().filter(|l| !l.trim().is_empty()).collect();
        let [.., secret, hash] = lines[..] else { panic!("gen-secret and hash-password printed: {printed}") };
        assert!(hash.starts_with("$argon2id$"), "{printed}");
        let path = self.root.join("etc/default/proxmox-monitor");
        let settings = [
            ("SECRET_KEY_BASE", secret.to_owned()),
            ("DASHBOARD_PASSWORD_HASH", hash.to_owned()),
            ("DATABASE_PATH", self.root.join("var/lib/proxmox-monitor/monitor.db").display().to_string()),
            ("PORT", self.http_port.to_string()),
            ("MQTT_PORT", free_port().to_string()),
            ("ALERT_GROUP_WAIT_SECONDS", "1".into()),
        ];
        set_keys(&path, &settings.map(|(k, v)| (k, format!("{k}={v}"))));
    }

    /// The prose of §4: server_url, the token and host_id into agent.toml (and short
    /// intervals, so that the pool, and its alert, come within seconds).
    fn write_agent_toml(&self, token: &str) {
        let path = self.root.join("etc/proxmox-monitor/agent.toml");
        let url = format!("ws://127.0.0.1:{}/mqtt", self.http_port);
        let settings = [("server_url", url), ("token", token.to_owned()), ("host_id", "pve-host-01".to_owned())];
        set_keys(&path, &settings.map(|(k, v)| (k, format!("{k} = \"{v}\""))));
        let mut text = std::fs::read_to_string(&path).unwrap();
        text =
            text.replace("fast_seconds = 30", "fast_seconds = 1").replace("medium_seconds = 300", "medium_seconds = 2");
        std::fs::write(&path, text).unwrap();
    }

    /// Every process the fake systemctl started, on every scratch machine.
    fn stop_services(&self) {
        let mut pid_files = vec![];
        let mut roots = vec![self.root.clone()];
        if let Ok(hosts) = std::fs::read_dir(self.root.join("hosts")) {
            roots.extend(hosts.map(|h| h.unwrap().path()));
        }
        for root in roots {
            for unit in ["proxmox-monitor", "proxmox-monitor-agent"] {
                pid_files.push(root.join(format!("run/{unit}.pid")));
            }
        }
        for pid in pid_files.iter().filter_map(|f| std::fs::read_to_string(f).ok()) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop_services();
    }
}

/// Replaces the line of each key (`KEY=` or `key =`, commented out or not) with its new
/// line, or appends it.
fn set_keys(path: &Path, settings: &[(&str, String)]) {
    let mut text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (key, line) in settings {
        let is_key = |l: &str| {
            let l = l.trim_start_matches('#').trim_start();
            l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
        };
        let mut lines: Vec<String> = text.lines().filter(|l| !is_key(l)).map(str::to_owned).collect();
        // Top-level keys go before any [table].
        let at = lines.iter().position(|l| l.starts_with('[')).unwrap_or(lines.len());
        lines.insert(at, line.clone());
        text = lines.join("\n") + "\n";
    }
    std::fs::write(path, text).unwrap();
}

/// `run_bounded` for a child already spawned (its stdin written and closed).
fn run_bounded_child(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

#[test]
fn the_runbook_runs_as_written() {
    if Command::new("dpkg").arg("--version").output().is_err() {
        eprintln!("SKIPPED runbook: dpkg is not installed");
        return;
    }
    let started = std::time::Instant::now();
    let (_rt, receiver_addr, bodies) = receiver();
    let world = World::new(receiver_addr);
    let blocks = sh_blocks(&std::fs::read_to_string(RUNBOOK).unwrap());
    assert!(blocks.len() >= 14, "the runbook's blocks were found: {blocks:?}");
    let mut token = String::new();
    for block in &blocks {
        // Steps written in prose, before the block that needs them.
        if block.contains("proxmox-monitor-agent --check") && !block.contains("ssh") {
            world.write_agent_toml(&token);
        }
        let block = match block.contains("alert ack 12") {
            true => block.replace("alert ack 12", &format!("alert ack {}", firing_alert(&world))),
            false => block.clone(),
        };
        let printed = world.run(&block, &format!("{OPERATOR_PASSWORD}\n"));
        after_block(&world, &block, &printed, &mut token, &bodies);
    }
    for backup in ["before-rollback.db", "manual.db"] {
        assert_eq!(integrity(&world.root.join("var/lib/proxmox-monitor").join(backup)), "ok", "{backup}");
    }
    eprintln!("runbook: done in {:?}", started.elapsed());
}

/// What each block must have done, beyond exiting 0.
fn after_block(world: &World, block: &str, printed: &str, token: &mut String, bodies: &crate::alerting::Bodies) {
    if block.contains("hash-password") {
        world.write_env_file(printed);
    }
    if block.contains("curl -fsS") {
        assert!(printed.contains("\"status\":\"ok\""), "{printed}");
    }
    if block.contains("host add pve-host-01") {
        *token = printed.lines().last().unwrap().trim().to_owned();
        assert_eq!(token.len(), 64, "{printed}");
    }
    if block.contains("proxmox-monitor-agent --check") {
        assert!(printed.lines().any(|l| l == "ok"), "--check said: {printed}");
    }
    if block.contains("systemctl enable --now proxmox-monitor-agent") && !block.contains("ssh") {
        world.wait_status("pve-host-01", |s| s.is_some_and(is_seen));
    }
    if block.contains("for h in $(cat hosts.txt)") {
        for host in ["pve-host-02", "pve-host-03"] {
            world.wait_status(host, |s| s.is_some_and(is_seen));
        }
    }
    if block.contains("channel test ops") {
        let test = wait_for("the test notification", Duration::from_secs(20), || {
            bodies.lock().unwrap().iter().find(|b| b.is_string()).cloned()
        });
        assert!(printed.contains("receiver answered HTTP 200"), "{printed} {test}");
    }
    if block.contains("host rotate pve-host-02") {
        world.wait_status("pve-host-02", |s| s == Some("offline"));
        world.wait_status("pve-host-03", |s| s.is_none());
    }
    if block.contains("alert ack") {
        let acked = world.cli_json(&["alert", "list", "--json"]);
        assert!(acked.as_array().unwrap().iter().any(|a| a["acked"] == true), "{acked}");
    }
    for (command, key) in [("token add prometheus --json", "token"), ("observer add debugging --json", "token")] {
        if block.contains(command) {
            let v: serde_json::Value = serde_json::from_str(printed).unwrap();
            assert!(v[key].as_str().is_some_and(|t| t.len() >= 64), "{printed}");
        }
    }
}

/// The id of an alert that fires (the degraded pool the fake zpool shows on pve-host-01).
fn firing_alert(world: &World) -> i64 {
    wait_for("a firing alert", Duration::from_secs(30), || {
        let alerts = world.cli_json(&["alert", "list", "--json"]);
        alerts.as_array().unwrap().first().and_then(|a| a["id"].as_i64())
    })
}

#[test]
fn paths_move_under_the_scratch_root_and_marked_lines_are_skipped() {
    let root = Path::new("/scratch");
    assert_eq!(
        under_root("cp a root@h:/tmp/ && sed x /etc/a.toml \"/var/b\" https://x.example.com/etc/no", root),
        "cp a root@h:/scratch/tmp/ && sed x /scratch/etc/a.toml \"/scratch/var/b\" https://x.example.com/etc/no"
    );
    assert_eq!(without_marked_lines("a\nb  # not run in tests: it needs a real host\n"), "a\n: skipped\n");
}
