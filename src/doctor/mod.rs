//! `proxmox-monitor doctor`: checks a server's configuration as `serve` would meet it and
//! prints one line per problem with its fix, or `ok`.
//!
//! The settings are the environment file's (`/etc/default/proxmox-monitor`, what systemd
//! gives `serve`) with the process environment over it, so an operator's shell finds
//! what the service would. Checked: the secrets; every other variable as `serve` parses
//! it; the database directory (writable), the database (opens, schema version); the
//! ports (free, or held by this server); the TLS certificate and key (readable, a pair,
//! not expiring within 14 days); the clock (not behind this binary's file time, no data
//! from the future); and the environment file's mode.

#[cfg(test)]
mod tests;
mod x509;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use argon2::password_hash::PasswordHash;
use proxmox_monitor::config::{self, Lookup};
use proxmox_monitor::ServerConfig;

/// Where systemd's unit reads the server's settings from.
pub const ENV_FILE: &str = "/etc/default/proxmox-monitor";
/// A certificate that expires sooner than this is a problem now.
const EXPIRY_WARNING_S: i64 = 14 * 86_400;
/// A sample stamped further ahead than this means a clock went wrong.
const FUTURE_SLACK_MS: i64 = 5 * 60 * 1000;

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// The environment file to check; the process environment overrides it.
    #[arg(long, env = "PROXMOX_MONITOR_ENV_FILE", default_value = ENV_FILE)]
    env_file: PathBuf,
}

/// One thing wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub what: String,
    pub fix: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; fix: {}", self.what, self.fix)
    }
}

fn problem(what: impl Into<String>, fix: impl Into<String>) -> Problem {
    Problem { what: what.into(), fix: fix.into() }
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let file = read_env_file(&args.env_file)?;
    let env = |name: &str| config::process_env(name).or_else(|| file.as_ref().and_then(|f| f.get(name).cloned()));
    let mut problems = Vec::new();
    if file.is_some() {
        problems.extend(check_env_file_mode(&args.env_file));
    }
    problems.extend(check(&env, wire::now_ms()));
    if problems.is_empty() {
        println!("ok");
        return Ok(());
    }
    for p in &problems {
        println!("{p}");
    }
    anyhow::bail!("{} problem(s) found", problems.len())
}

/// Every problem of the settings in `env` at `now_ms`.
pub fn check(env: Lookup, now_ms: i64) -> Vec<Problem> {
    let mut problems = check_secrets(env);
    // The rest as `serve` parses it, with stand-ins for missing secrets (reported above),
    // so that one missing secret hides nothing else.
    let with_secrets = |name: &str| match (name, env(name).filter(|v| !v.trim().is_empty())) {
        (_, Some(v)) => Some(v),
        ("SECRET_KEY_BASE", None) => Some("x".repeat(64)),
        ("DASHBOARD_PASSWORD_HASH", None) => Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into()),
        (_, None) => None,
    };
    let config = match ServerConfig::from_lookup(&with_secrets) {
        Ok(config) => config,
        Err(e) => {
            problems.push(problem(
                format!("{e:#}"),
                format!("correct it in {ENV_FILE} (see deploy/proxmox-monitor.env.example)"),
            ));
            // Still check the database, wherever it is.
            problems.extend(check_database(&config::database_in(env), now_ms));
            return problems;
        }
    };
    problems.extend(check_database(&config.database, now_ms));
    problems.extend(check_ports(&config));
    if let Some((_, cert, key)) = &config.mqtts {
        problems.extend(check_tls(cert, key, now_ms / 1000));
    }
    problems.extend(check_clock(now_ms));
    if config.metrics.public && !config.bind.is_loopback() {
        problems.push(problem(
            format!("METRICS_PUBLIC=1 with BIND={} lets anyone on the network read /metrics", config.bind),
            "bind to 127.0.0.1 behind Caddy, or remove METRICS_PUBLIC and give Prometheus a token (`proxmox-monitor token add prometheus`)",
        ));
    }
    problems
}

fn check_secrets(env: Lookup) -> Vec<Problem> {
    let mut problems = Vec::new();
    let get = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match get("SECRET_KEY_BASE") {
        None => problems.push(problem(
            "SECRET_KEY_BASE is not set",
            format!("put the output of `proxmox-monitor gen-secret` in {ENV_FILE}"),
        )),
        Some(s) if s.len() < 32 => problems.push(problem(
            format!("SECRET_KEY_BASE is {} characters, fewer than 32", s.len()),
            "replace it with the output of `proxmox-monitor gen-secret` (this signs everybody out)",
        )),
        Some(_) => {}
    }
    match get("DASHBOARD_PASSWORD_HASH") {
        None => problems.push(problem(
            "DASHBOARD_PASSWORD_HASH is not set",
            "read -rs PW; printf %s \"$PW\" | proxmox-monitor hash-password, and put the hash in the environment file",
        )),
        Some(hash) => {
            let parsed = PasswordHash::new(&hash);
            if !parsed.as_ref().is_ok_and(|h| h.algorithm.as_str().starts_with("argon2")) {
                problems.push(problem(
                    "DASHBOARD_PASSWORD_HASH is not an argon2 hash (a shell may have eaten its `$` signs)",
                    "make one with `proxmox-monitor hash-password` and paste it unquoted into the environment file",
                ));
            }
        }
    }
    problems
}

/// The database's directory is writable, and the database, if there is one, opens and
/// has a schema this binary can use.
fn check_database(path: &Path, now_ms: i64) -> Vec<Problem> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.to_owned(),
        None => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return vec![problem(
            format!("the database directory {} does not exist", dir.display()),
            format!("mkdir -p -m 0700 {} (the unit's StateDirectory does it), or correct DATABASE_PATH", dir.display()),
        )];
    }
    if let Err(e) = tempfile::NamedTempFile::new_in(&dir) {
        return vec![problem(
            format!("the database directory {} is not writable ({e})", dir.display()),
            format!("run as the service's user (root), or chown it to that user: chown root: {}", dir.display()),
        )];
    }
    if !path.exists() {
        // A fresh install: `migrate` (the unit's ExecStartPre) creates it.
        return Vec::new();
    }
    let conn = match recorder::db::open_read(path) {
        Ok(conn) => conn,
        Err(e) => return vec![problem(format!("{e:#}"), "check the file's owner and mode, or restore a backup")],
    };
    let version: rusqlite::Result<usize> = conn.pragma_query_value(None, "user_version", |r| r.get(0));
    let mut problems = Vec::new();
    match version {
        Err(e) => problems.push(problem(
            format!("the database {} cannot be read ({e})", path.display()),
            "restore the latest backup (see README, Backups)",
        )),
        Ok(v) if v > recorder::db::SCHEMA_VERSION => problems.push(problem(
            format!("the database schema is version {v}, newer than this binary's {}", recorder::db::SCHEMA_VERSION),
            "install the newer proxmox-monitor again, or restore a backup made by this version",
        )),
        // Older is fine: `migrate` (ExecStartPre) brings it up to date.
        Ok(_) => {}
    }
    let newest: rusqlite::Result<Option<i64>> = conn.query_row("SELECT max(last_seen_ms) FROM hosts", [], |r| r.get(0));
    if let Ok(Some(newest)) = newest {
        if newest > now_ms + FUTURE_SLACK_MS {
            problems.push(problem(
                format!(
                    "the database has data from {} s in the future: this clock is behind, or was ahead before",
                    (newest - now_ms) / 1000
                ),
                "check `timedatectl` (NTP synchronized: yes) and that chrony or systemd-timesyncd runs",
            ));
        }
    }
    problems
}

/// Each configured port is free, or held by this very server (its `/health` answers on
/// the HTTP port).
fn check_ports(config: &ServerConfig) -> Vec<Problem> {
    let ours = serves_health(SocketAddr::new(connectable(config.bind), config.port));
    let mut ports = vec![("PORT", config.port)];
    ports.extend(config.mqtt_port.map(|p| ("MQTT_PORT", p)));
    ports.extend(config.mqtts.as_ref().map(|(p, _, _)| ("MQTTS_PORT", *p)));
    let mut problems = Vec::new();
    for (name, port) in ports.into_iter().filter(|(_, p)| *p != 0) {
        let addr = SocketAddr::new(config.bind, port);
        match TcpListener::bind(addr) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && ours => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => problems.push(problem(
                format!("{addr} (BIND/{name}) is in use by another process"),
                format!("`ss -ltnp 'sport = :{port}'` shows which; stop it or choose another {name}"),
            )),
            Err(e) => problems.push(problem(
                format!("cannot listen on {addr} (BIND/{name}): {e}"),
                "BIND must be an address of this machine (127.0.0.1 behind Caddy)",
            )),
        }
    }
    problems
}

/// Where to reach a server bound to `bind` (an unspecified address is reachable on loopback).
fn connectable(bind: IpAddr) -> IpAddr {
    match bind {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        a => a,
    }
}

/// Whether `addr` answers `GET /health` as proxmox-monitor does.
fn serves_health(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    use std::time::Duration;
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.take(64 * 1024).read_to_string(&mut answer);
    answer.contains("\"db\":") && answer.contains("\"version\":")
}

/// The certificate and key load into rustls as a pair, and the certificate is valid for
/// at least two more weeks.
fn check_tls(cert: &Path, key: &Path, now_s: i64) -> Vec<Problem> {
    if let Err(e) = broker::listener::tls_acceptor(cert, key) {
        return vec![problem(
            format!("{e:#}"),
            "point TLS_CERT at the PEM certificate chain and TLS_KEY at its private key, both readable by the service",
        )];
    }
    let Ok(pem) = std::fs::read(cert) else { return Vec::new() };
    let first = rustls_pemfile::certs(&mut pem.as_slice()).next().and_then(Result::ok);
    let Some(expiry) = first.as_deref().and_then(x509::not_after) else {
        return vec![problem(
            format!("cannot read the expiry date of TLS_CERT {}", cert.display()),
            "check it with `openssl x509 -noout -enddate -in CERT`",
        )];
    };
    let days = (expiry - now_s).div_euclid(86_400);
    if expiry <= now_s {
        vec![problem(
            format!("TLS_CERT {} expired {} day(s) ago", cert.display(), -days),
            "renew the certificate and restart the server",
        )]
    } else if expiry - now_s < EXPIRY_WARNING_S {
        vec![problem(
            format!("TLS_CERT {} expires in {days} day(s)", cert.display()),
            "renew the certificate and restart the server before it expires",
        )]
    } else {
        Vec::new()
    }
}

/// The system clock is not behind the time this binary was written to disk.
fn check_clock(now_ms: i64) -> Vec<Problem> {
    let built = std::env::current_exe()
        .and_then(std::fs::metadata)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    match built {
        Some(built) if (built.as_millis() as i64) > now_ms + FUTURE_SLACK_MS => vec![problem(
            "the system clock is behind this binary's file time",
            "set the clock: `timedatectl set-ntp true`, and check that chrony or systemd-timesyncd runs",
        )],
        _ => Vec::new(),
    }
}

/// The environment file's variables, systemd's way (`KEY=VALUE`, `#` comments, a value
/// may be quoted); None if it does not exist.
pub fn read_env_file(path: &Path) -> anyhow::Result<Option<HashMap<String, String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("failed to read {}: {e}; run doctor as root", path.display()),
    };
    Ok(Some(parse_env_file(&text)))
}

fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let unquoted =
                ['"', '\''].iter().find_map(|q| v.strip_prefix(*q).and_then(|v| v.strip_suffix(*q))).unwrap_or(v);
            (k.trim().to_owned(), unquoted.to_owned())
        })
        .collect()
}

/// The environment file holds the secrets: nobody but its owner may read it.
fn check_env_file_mode(path: &Path) -> Vec<Problem> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => vec![problem(
            format!(
                "{} is readable by others (mode {:o}) and holds the secrets",
                path.display(),
                m.permissions().mode() & 0o777
            ),
            format!("chmod 0600 {}", path.display()),
        )],
        _ => Vec::new(),
    }
}
