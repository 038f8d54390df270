//! The harness for end-to-end tests: the server on loopback (the real `proxmox-monitor`
//! process, [`Server`], or the same server inside the test process, [`InProcessServer`];
//! both on port 0), a temporary database, the real `proxmox-monitor-agent`, and fake
//! Proxmox commands (scripts on PATH that print captured output).

pub mod fleet;
mod in_process;
pub mod load;
pub mod relay;
pub mod samples;
pub mod smtp_sink;

pub use in_process::InProcessServer;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The dashboard password every test server uses.
pub const PASSWORD: &str = "test-password";
/// Its argon2id hash (made with `proxmox-monitor hash-password`).
pub const PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$D7E17nw4Lt1c0WOShBCSXg$L4N/tG/xSuZA6el1hSjiKzzB5PB+xxtlr0jE2B12Vfc";
pub const SECRET: &str = "test-secret-key-base-that-is-long-enough-for-the-server-0123456789";

/// A binary of this workspace, built by `cargo build --workspace` (the test command does).
pub fn bin(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

/// A free port on 127.0.0.1 (free when asked; the caller binds it right after), for
/// third-party programs (Caddy, node_exporter) that cannot report a port 0 they bound.
/// Our own servers start on port 0 and say where they listen.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `f` every 50 ms until it returns Some, or panics after `limit` naming `what`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM (what systemd sends) and waits for the exit.
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A server under test, however it runs (a [`Server`] process or an
/// [`InProcessServer`]; both deref to it): its temporary directory, where it listens, and
/// what tests do with it.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub http: SocketAddr,
    /// Plain MQTT; `0.0.0.0:0` when a test turned it off.
    pub mqtt: SocketAddr,
    /// Set when the server was started with MQTTS.
    pub mqtts: Option<SocketAddr>,
    /// The API token `metric` reads `/metrics` with, made by `token add` at its first use.
    pub metrics_token: std::sync::OnceLock<String>,
}

impl TestServer {
    pub fn database(&self) -> PathBuf {
        self.dir.path().join("monitor.db")
    }

    /// `PRAGMA integrity_check` of the database file.
    pub fn integrity(&self) -> String {
        integrity(&self.database())
    }

    /// Runs a `proxmox-monitor` subcommand against this server's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("proxmox-monitor"))
            .args(args)
            .env("DATABASE_PATH", self.database())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }

    /// `host add NAME --json`, returning the token.
    pub fn add_host(&self, name: &str) -> String {
        let out = self.cli(&["host", "add", name, "--json"]);
        assert!(out.status.success(), "host add failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["host_id"], name);
        v["token"].as_str().unwrap().to_owned()
    }

    /// `host list --json`, as (host_id, status) pairs.
    pub fn host_statuses(&self) -> Vec<(String, String)> {
        let out = self.cli(&["host", "list", "--json"]);
        assert!(out.status.success(), "host list failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        v.iter()
            .map(|h| (h["host_id"].as_str().unwrap().to_owned(), h["status"].as_str().unwrap().to_owned()))
            .collect()
    }

    /// `observer add NAME --json`, returning the token.
    pub fn add_observer(&self, name: &str) -> String {
        let out = self.cli(&["observer", "add", name, "--json"]);
        assert!(out.status.success(), "observer add failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["observer"], name);
        v["token"].as_str().unwrap().to_owned()
    }

    /// `token add NAME --json`, returning the token.
    pub fn add_api_token(&self, name: &str) -> String {
        let out = self.cli(&["token", "add", name, "--json"]);
        assert!(out.status.success(), "token add failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["name"], name);
        v["token"].as_str().unwrap().to_owned()
    }

    /// The value of one `/metrics` series, e.g.
    /// `pmon_mqtt_acl_violations_total{reason="foreign_topic"}`; 0 when absent.
    pub fn metric(&self, series: &str) -> u64 {
        let token = self.metrics_token.get_or_init(|| self.add_api_token("integration-metrics"));
        let (code, _, body) =
            http_get_bearer(&format!("http://{}/metrics", self.http), token).expect("/metrics answers");
        assert_eq!(code, 200, "{body}");
        sample(&body, series).map(|v| v.parse().unwrap_or_else(|_| panic!("{series} = {v:?}"))).unwrap_or(0)
    }

    /// Waits until `series` reaches `value` (counters are bumped as the session ends).
    pub fn wait_metric(&self, series: &str, value: u64) {
        let mut seen = 0;
        wait_for(&format!("{series} to be {value}"), Duration::from_secs(5), || {
            seen = self.metric(series);
            (seen >= value).then_some(())
        });
        assert_eq!(seen, value, "{series}");
    }

    pub fn status_of(&self, host: &str) -> Option<String> {
        self.host_statuses().into_iter().find(|(h, _)| h == host).map(|(_, s)| s)
    }

    /// True when `host list` shows the host connected, whatever its health. A real agent's
    /// fast tier reads this machine's `/proc` and `/` (issue 14), so a full disk here makes
    /// it "critical" rather than "online".
    pub fn is_seen(&self, host: &str) -> bool {
        self.status_of(host).is_some_and(|s| is_seen(&s))
    }

    /// Signs in to the dashboard and returns the session cookie.
    pub fn login(&self) -> String {
        let (code, headers) = self.try_login(PASSWORD);
        assert_eq!(code, 303, "login should redirect");
        set_cookie(&headers, "pmon_session").expect("a session cookie")
    }

    /// Posts the sign-in form as a browser does (its page first, for the form's CSRF
    /// token and cookie): (status, headers).
    pub fn try_login(&self, password: &str) -> (u16, String) {
        let (code, headers, page) = http_get_with(&format!("http://{}/login", self.http), None).expect("/login");
        assert_eq!(code, 200, "{page}");
        let cookie = set_cookie(&headers, "pmon_login").expect("the sign-in form's cookie");
        let body = format!("password={password}&csrf={}", csrf_field(&page));
        http_post_form(&format!("http://{}/login", self.http), &body, Some(&cookie))
    }

    /// The CSRF token of a signed-in session, as its pages carry it for their forms.
    pub fn csrf(&self, cookie: &str) -> String {
        let (code, _, page) = http_get_with(&format!("http://{}/admin/hosts", self.http), Some(cookie)).expect("page");
        assert_eq!(code, 200, "{page}");
        csrf_field(&page)
    }

    pub fn sql<T: rusqlite::types::FromSql>(&self, query: &str) -> T {
        let conn = rusqlite::Connection::open(self.database()).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.query_row(query, [], |r| r.get(0)).unwrap()
    }

    /// Waits until `/health` answers 200; panics early if `exited` reports the server gone.
    fn wait_healthy(&self, mut exited: impl FnMut() -> Option<String>) {
        let url = format!("http://{}/health", self.http);
        wait_for("the server's /health", Duration::from_secs(30), || {
            if let Some(why) = exited() {
                panic!("server exited early: {why}");
            }
            http_get(&url).filter(|(code, _)| *code == 200)
        });
    }
}

/// A running `proxmox-monitor serve` process with its own temporary directory, started on
/// port 0; it reads where it listens from the line `serve` prints on stdout. For tests of
/// what only a process has: restarts, crashes, signals, the CLI's start-up errors.
pub struct Server {
    /// Tokens of the hosts registered by [`Server::start_with_hosts`].
    pub tokens: Vec<(String, String)>,
    pub child: Child,
    pub extra_env: Vec<(String, String)>,
    server: TestServer,
}

impl std::ops::Deref for Server {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(vec![])
    }

    pub fn start_with(extra_env: Vec<(String, String)>) -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), vec![], extra_env)
    }

    /// A server with `n` hosts (`host-00000`, ...) registered directly in its database
    /// before it starts; their tokens are in `tokens`.
    pub fn start_with_hosts(n: usize, extra_env: Vec<(String, String)>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut tokens = Vec::with_capacity(n);
        {
            let mut conn = recorder::db::open_and_migrate(&dir.path().join("monitor.db")).unwrap();
            for i in 0..n {
                let (host, token) = recorder::hosts::add_host(&mut conn, &format!("host-{i:05}")).unwrap();
                tokens.push((host.to_string(), token));
            }
        }
        Server::start_in(dir, tokens, extra_env)
    }

    /// A server whose directory (database included) is `dir`: a test's own filesystem,
    /// such as a small tmpfs that fills up.
    pub fn start_in_dir(dir: tempfile::TempDir, extra_env: Vec<(String, String)>) -> Server {
        Server::start_in(dir, vec![], extra_env)
    }

    fn start_in(dir: tempfile::TempDir, tokens: Vec<(String, String)>, extra_env: Vec<(String, String)>) -> Server {
        let (child, bound) = spawn_server(dir.path(), &ports(None, &extra_env));
        let server = TestServer {
            dir,
            http: bound.http,
            mqtt: bound.mqtt,
            mqtts: bound.mqtts,
            metrics_token: Default::default(),
        };
        let mut server = Server { tokens, child, extra_env, server };
        server.wait_healthy();
        server
    }

    fn wait_healthy(&mut self) {
        let child = &mut self.child;
        self.server.wait_healthy(|| child.try_wait().unwrap().map(|status| status.to_string()));
    }

    /// Starts the process again on the ports learnt at the first start.
    fn respawn(&mut self) {
        let (child, bound) = spawn_server(self.dir.path(), &ports(Some(&self.server), &self.extra_env));
        assert_eq!((bound.http, bound.mqtt, bound.mqtts), (self.http, self.mqtt, self.mqtts), "same ports");
        self.child = child;
        self.wait_healthy();
    }

    /// Stops the server with SIGTERM and starts it again on the same ports and database.
    pub fn restart(&mut self) {
        terminate(&mut self.child);
        self.respawn();
    }

    /// Kills the server with SIGKILL (a crash) and starts it again on the same database,
    /// as systemd's `Restart=always` would.
    pub fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.respawn();
    }

    /// Stops the server (SIGTERM) and leaves it stopped.
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    /// Starts a stopped server again on the same ports and database.
    pub fn start_again(&mut self) {
        self.respawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment for `serve`: `extra_env`, then the ports: 0 at the first start, the
/// learnt ones (`known`) on a restart.
fn ports(known: Option<&TestServer>, extra_env: &[(String, String)]) -> Vec<(String, String)> {
    let port = |a: Option<SocketAddr>| a.map_or(0, |a| a.port()).to_string();
    let mut env = extra_env.to_vec();
    env.push(("PORT".into(), port(known.map(|k| k.http))));
    env.push(("MQTT_PORT".into(), port(known.map(|k| k.mqtt))));
    if let Some(mqtts) = known.and_then(|k| k.mqtts) {
        env.push(("MQTTS_PORT".into(), mqtts.port().to_string()));
    }
    env
}

/// Where a `serve` process listens, from its stdout line.
struct Listening {
    http: SocketAddr,
    mqtt: SocketAddr,
    mqtts: Option<SocketAddr>,
}

/// Parses `listening http=ADDR mqtt=ADDR [mqtts=ADDR]`.
fn parse_listening(line: &str) -> Option<Listening> {
    let mut words = line.split_whitespace();
    (words.next()? == "listening").then_some(())?;
    let (mut http, mut mqtt, mut mqtts) = (None, None, None);
    for word in words {
        let (key, addr) = word.split_once('=')?;
        let addr: SocketAddr = addr.parse().ok()?;
        match key {
            "http" => http = Some(addr),
            "mqtt" => mqtt = Some(addr),
            "mqtts" => mqtts = Some(addr),
            _ => return None,
        }
    }
    Some(Listening { http: http?, mqtt: mqtt?, mqtts })
}

/// Starts `serve` and waits for its `listening ...` line (stdout is drained after it, so
/// the server never blocks on a full pipe).
fn spawn_server(dir: &Path, env: &[(String, String)]) -> (Child, Listening) {
    use std::io::BufRead;
    let mut cmd = Command::new(bin("proxmox-monitor"));
    cmd.arg("serve")
        .env("DATABASE_PATH", dir.join("monitor.db"))
        .env("SECRET_KEY_BASE", SECRET)
        .env("DASHBOARD_PASSWORD_HASH", PASSWORD_HASH)
        .env("BIND", "127.0.0.1")
        .env("RUST_LOG", std::env::var("TEST_SERVER_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn proxmox-monitor serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(line);
        }
    });
    let line = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("serve printed no `listening` line: {:?}", child.wait());
        }
    };
    let listening = parse_listening(&line).unwrap_or_else(|| panic!("not a `listening` line: {line:?}"));
    (child, listening)
}

/// A `host list` status of a connected host: any health level but "offline".
pub fn is_seen(status: &str) -> bool {
    status != "offline"
}

/// A directory of fake Proxmox commands, to put first on an agent's PATH.
pub struct FakeProxmox {
    pub dir: tempfile::TempDir,
}

impl FakeProxmox {
    /// `pvesh get /nodes/<node>/status` prints the captured status of a real PVE 8.3 node;
    /// every other command fails, as on a host without ZFS or guests. The agent's fast tier no
    /// longer asks pvesh (it reads `/proc`), so its medium tier is what calls this one.
    pub fn new() -> FakeProxmox {
        let dir = tempfile::tempdir().unwrap();
        let status = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pvesh-node-status.json");
        let script = format!(
            "#!/bin/sh\ncase \"$2\" in\n  */status) cat '{}' ;;\n  *) echo \"no such path: $2\" >&2; exit 2 ;;\nesac\n",
            status.display()
        );
        let path = dir.path().join("pvesh");
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeProxmox { dir }
    }

    pub fn path_env(&self) -> String {
        format!("{}:{}", self.dir.path().display(), std::env::var("PATH").unwrap_or_default())
    }
}

impl Default for FakeProxmox {
    fn default() -> Self {
        FakeProxmox::new()
    }
}

/// Writes an agent.toml for `host` talking to `url`, with 1 s tiers.
pub fn agent_config(dir: &Path, url: &str, host: &str, token: &str) -> PathBuf {
    agent_config_with(dir, url, host, token, "")
}

/// [`agent_config`] with more top-level keys (`extra` is TOML lines, e.g. `ca_file = ..`).
pub fn agent_config_with(dir: &Path, url: &str, host: &str, token: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("agent-{host}.toml"));
    let state = dir.join(format!("state-{host}"));
    let text = format!(
        "server_url = \"{url}\"\ntoken = \"{token}\"\nhost_id = \"{host}\"\nnode = \"{host}\"\nkeepalive_seconds = 5\nstate_dir = \"{}\"\n{extra}\n\n[intervals]\nfast_seconds = 1\nmedium_seconds = 2\nslow_seconds = 5\n",
        state.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the real agent binary with the fake Proxmox commands first on PATH.
pub fn spawn_agent(config: &Path, fake: &FakeProxmox) -> Child {
    Command::new(bin("proxmox-monitor-agent"))
        .arg("--config")
        .arg(config)
        .env("PATH", fake.path_env())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn proxmox-monitor-agent")
}

/// `proxmox-monitor-agent --config CONFIG --check`: (exit success, the verdict line).
pub fn agent_check(config: &Path) -> (bool, String) {
    let out = run_bounded(
        Command::new(bin("proxmox-monitor-agent")).arg("--config").arg(config).arg("--check"),
        Duration::from_secs(20),
    );
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs a command to its end, killing it after `limit` (the test then fails on its
/// output, not by hanging). Stdin is null; stdout and stderr are captured.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn a command");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// A throwaway self-signed certificate for `localhost` and 127.0.0.1, made with openssl
/// in a temporary directory (never committed).
pub struct SelfSigned {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl SelfSigned {
    pub fn new() -> SelfSigned {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let out = run_bounded(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
                .args(["-days", "2", "-subj", "/CN=localhost"])
                .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
                // openssl marks a self-signed certificate as a CA by default, and rustls
                // (webpki) refuses a CA certificate as the server's own: CaUsedAsEndEntity.
                .args(["-addext", "basicConstraints=critical,CA:FALSE"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
            Duration::from_secs(20),
        );
        assert!(out.status.success(), "openssl failed: {}", String::from_utf8_lossy(&out.stderr));
        SelfSigned { dir, cert, key }
    }

    /// The server environment for an MQTTS listener on any free port with this
    /// certificate (the server reports which).
    pub fn server_env(&self) -> Vec<(String, String)> {
        vec![
            ("MQTTS_PORT".into(), "0".into()),
            ("TLS_CERT".into(), self.cert.display().to_string()),
            ("TLS_KEY".into(), self.key.display().to_string()),
        ]
    }
}

impl Default for SelfSigned {
    fn default() -> Self {
        SelfSigned::new()
    }
}

/// Caddy (Debian's package) in front of `server`, running the shipped
/// `deploy/Caddyfile.example` with only its site name and upstream changed: TLS on
/// `localhost:port` with `cert` instead of Let's Encrypt, and the server's HTTP address.
pub struct Caddy {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Caddy {
    pub fn start(server: &TestServer, cert: &SelfSigned) -> Caddy {
        let example =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/Caddyfile.example"))
                .expect("deploy/Caddyfile.example");
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let site = format!("https://localhost:{port} {{\n\ttls {} {}", cert.cert.display(), cert.key.display());
        let upstream = server.http.to_string();
        assert!(example.contains("monitor.example.com {") && example.contains("127.0.0.1:4000"), "{example}");
        // No admin API and no port-80 redirect: tests run side by side, unprivileged.
        let caddyfile = format!(
            "{{\n\tadmin off\n\tauto_https disable_redirects\n\tstorage file_system {}\n}}\n{}",
            dir.path().join("data").display(),
            example.replace("monitor.example.com {", &site).replace("127.0.0.1:4000", &upstream)
        );
        let path = dir.path().join("Caddyfile");
        std::fs::write(&path, caddyfile).unwrap();
        let child = Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&path)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caddy is missing: run scripts/test, which installs it (apt-get install caddy)");
        let caddy = Caddy { child, port, _dir: dir };
        wait_for("caddy listening", Duration::from_secs(15), || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
        caddy
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET: (status, body). None if the server isn't answering.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    http_get_with(url, None).map(|(code, _, body)| (code, body))
}

/// GET with an optional cookie: (status, headers, body).
pub fn http_get_with(url: &str, cookie: Option<&str>) -> Option<(u16, String, String)> {
    request("GET", url, cookie.map(|c| format!("Cookie: {c}\r\n")).as_deref(), None)
}

/// GET with `Authorization: Bearer TOKEN` (an API token): (status, headers, body).
pub fn http_get_bearer(url: &str, token: &str) -> Option<(u16, String, String)> {
    request("GET", url, Some(&format!("Authorization: Bearer {token}\r\n")), None)
}

/// The `name=value` pair of the cookie `name` that response `headers` set.
pub fn set_cookie(headers: &str, name: &str) -> Option<String> {
    headers
        .lines()
        .filter_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.trim()))
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// The value of the first hidden `csrf` field on a page.
pub fn csrf_field(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).unwrap_or_else(|| panic!("no csrf field on the page:\n{page}")) + marker.len();
    page[start..start + page[start..].find('"').expect("a closing quote")].to_owned()
}

/// POST a form: (status, headers).
pub fn http_post_form(url: &str, body: &str, cookie: Option<&str>) -> (u16, String) {
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n"));
    let (code, headers, _) = request("POST", url, cookie.as_deref(), Some(body)).expect("server answers");
    (code, headers)
}

/// One HTTP/1.1 request; `header` is extra header lines, each ending in CRLF.
fn request(method: &str, url: &str, header: Option<&str>, body: Option<&str>) -> Option<(u16, String, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: text/html\r\nConnection: close\r\n");
    if let Some(h) = header {
        req.push_str(h);
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    stream.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    Some((code, head.to_owned(), body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// One sample of a Prometheus text page (`name` with its labels, exactly as printed).
pub fn metric(url: &str, name: &str) -> Option<f64> {
    let (_, body) = http_get(url)?;
    sample(&body, name)?.parse().ok()
}

/// The value of `series` (name and labels, exactly as printed) in a Prometheus text page.
fn sample<'a>(body: &'a str, series: &str) -> Option<&'a str> {
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')).map(str::trim)
}

/// CPU time and peak memory of a process, from /proc.
pub struct ProcStats {
    /// The process's own CPU (utime + stime).
    pub cpu_seconds: f64,
    /// CPU of its children that it has waited for (cutime + cstime), theirs included.
    pub children_cpu_seconds: f64,
    pub peak_rss_kib: u64,
    pub rss_kib: u64,
}

pub fn proc_stats(pid: u32) -> ProcStats {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime, stime, cutime, cstime are the 12th to 15th.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // Clock ticks are 100 per second on Linux.
    ProcStats {
        cpu_seconds: (ticks(11) + ticks(12)) / 100.0,
        children_cpu_seconds: (ticks(13) + ticks(14)) / 100.0,
        peak_rss_kib: kib("VmHWM:"),
        rss_kib: kib("VmRSS:"),
    }
}

/// A fast payload as an agent of run `boot_id` sends it, stamped `ts_ms` by its clock.
pub fn fast_json(host: &str, boot_id: &str, seq: u64, ts_ms: i64) -> String {
    format!(
        r#"{{"schema":1,"host_id":"{host}","ts_ms":{ts_ms},"boot_id":"{boot_id}","seq":{seq},"agent_version":"test","data":{{"cpus":16,"load1":0.42,"load5":0.37,"load15":0.31,"cpu_pct":7.5,"iowait_pct":0.4,"mem_total":67350102016,"mem_used":26536796160,"arc_bytes":8589934592,"swap_total":8589930496,"swap_used":0,"rootfs_total":100861726720,"rootfs_used":12315713536,"uptime_s":1218237}}}}"#
    )
}

/// `PRAGMA integrity_check` of a database file ("ok" when sound).
pub fn integrity(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}
