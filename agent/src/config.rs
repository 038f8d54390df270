//! `agent.toml`: the raw [`Config`] as written by the operator, validated into [`Settings`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use wire::HostId;

/// Where the agent looks for its config unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/proxmox-monitor/agent.toml";

/// The commented example shipped in `deploy/`, tested to parse.
pub const EXAMPLE: &str = include_str!("../../deploy/agent.toml.example");

/// `agent.toml` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `wss://monitor.example.com/mqtt`, `ws://..`, `mqtt://host:1883` or `mqtts://host:8883`.
    pub server_url: String,
    /// The host's token, as printed once by `proxmox-monitor host add`.
    pub token: String,
    /// This host's id on the server (the MQTT username and client id).
    pub host_id: String,
    /// The Proxmox node name for `pvesh get /nodes/<node>/...`; defaults to the hostname.
    #[serde(default)]
    pub node: Option<String>,
    /// How often each tier runs.
    #[serde(default)]
    pub intervals: IntervalsConfig,
    /// MQTT keepalive; the server sees a crashed agent as offline after 1.5 × this.
    #[serde(default = "default_keepalive_seconds")]
    pub keepalive_seconds: u64,
    /// Extra CA certificate (PEM) to trust for mqtts:// and wss://, beside the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Where the outage buffer lives (systemd's StateDirectory).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Size limit of the outage buffer, in MB; the oldest payloads go first when full.
    #[serde(default = "default_buffer_max_mb")]
    pub buffer_max_mb: u64,
}

/// systemd's `$STATE_DIRECTORY` (the unit's `StateDirectory=`, the first if several),
/// else the path the unit gives it, so a scratch run (the runbook test) never writes there.
fn default_state_dir() -> PathBuf {
    let from_systemd = std::env::var_os("STATE_DIRECTORY")
        .and_then(|dirs| dirs.to_str().and_then(|d| d.split(':').next()).map(PathBuf::from));
    from_systemd.filter(|d| d.is_absolute()).unwrap_or_else(|| PathBuf::from("/var/lib/proxmox-monitor-agent"))
}
const fn default_buffer_max_mb() -> u64 {
    50
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalsConfig {
    /// Load, CPU, memory, swap, uptime.
    #[serde(default = "default_fast")]
    pub fast_seconds: u64,
    /// ZFS pools, storages, VMs and containers.
    #[serde(default = "default_medium")]
    pub medium_seconds: u64,
    /// Snapshots and versions.
    #[serde(default = "default_slow")]
    pub slow_seconds: u64,
}

impl Default for IntervalsConfig {
    fn default() -> Self {
        IntervalsConfig { fast_seconds: default_fast(), medium_seconds: default_medium(), slow_seconds: default_slow() }
    }
}

const fn default_fast() -> u64 {
    30
}
const fn default_medium() -> u64 {
    300
}
const fn default_slow() -> u64 {
    1800
}
const fn default_keepalive_seconds() -> u64 {
    15
}

/// How the agent reaches the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerUrl {
    /// Plain MQTT over TCP.
    Mqtt { host: String, port: u16 },
    /// MQTT over TLS.
    Mqtts { host: String, port: u16 },
    /// MQTT over WebSocket; `url` is the whole `ws://host:port/path`.
    Ws { url: String, port: u16 },
    /// MQTT over secure WebSocket.
    Wss { url: String, host: String, port: u16 },
}

impl ServerUrl {
    pub fn parse(url: &str) -> Result<ServerUrl, ConfigError> {
        let bad = |why: &str| ConfigError::Invalid {
            key: "server_url",
            why: format!("{url:?} {why}; expected e.g. wss://monitor.example.com/mqtt"),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, Some(p.parse::<u16>().map_err(|_| bad("has a bad port"))?))
            }
            _ => (authority, None),
        };
        if host.is_empty() || host.contains(['@', ' ']) {
            return Err(bad("has no valid host"));
        }
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let path = if path.is_empty() { "/mqtt" } else { path };
        match scheme {
            "mqtt" => Ok(ServerUrl::Mqtt { host, port: port.unwrap_or(1883) }),
            "mqtts" => Ok(ServerUrl::Mqtts { host, port: port.unwrap_or(8883) }),
            "ws" => {
                let port = port.unwrap_or(80);
                Ok(ServerUrl::Ws { url: format!("ws://{authority}{path}"), port })
            }
            "wss" => {
                let port = port.unwrap_or(443);
                Ok(ServerUrl::Wss { url: format!("wss://{authority}{path}"), host, port })
            }
            _ => Err(bad("has an unknown scheme (use mqtt, mqtts, ws or wss)")),
        }
    }
}

/// The validated configuration; nothing after startup sees the raw [`Config`].
#[derive(Clone)]
pub struct Settings {
    pub server: ServerUrl,
    pub token: String,
    pub host_id: HostId,
    pub node: String,
    pub fast: Duration,
    pub medium: Duration,
    pub slow: Duration,
    pub keepalive: Duration,
    pub ca_file: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub buffer_max_bytes: u64,
}

/// Tokens never reach a log line.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("token", &"<redacted>")
            .field("host_id", &self.host_id)
            .field("node", &self.node)
            .field("fast", &self.fast)
            .field("medium", &self.medium)
            .field("slow", &self.slow)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {why}")]
    Invalid { key: &'static str, why: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text)
            .map_err(|e| match e {
                ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
                other => other,
            })?
            .validate()
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            // The toml error spans lines; operators want one line that names the key.
            message: e.message().to_owned(),
        })
    }

    pub fn validate(self) -> Result<Settings, ConfigError> {
        let server = ServerUrl::parse(&self.server_url)?;
        if self.token.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "token",
                why: "is empty; paste the token printed by `proxmox-monitor host add`".into(),
            });
        }
        let host_id =
            HostId::parse(&self.host_id).map_err(|e| ConfigError::Invalid { key: "host_id", why: e.to_string() })?;
        let interval = |key: &'static str, secs: u64| {
            if secs == 0 {
                Err(ConfigError::Invalid { key, why: "must be at least 1 second".into() })
            } else {
                Ok(Duration::from_secs(secs))
            }
        };
        let keepalive = interval("keepalive_seconds", self.keepalive_seconds)?;
        if self.keepalive_seconds > u64::from(u16::MAX) {
            return Err(ConfigError::Invalid { key: "keepalive_seconds", why: "must be at most 65535".into() });
        }
        let node = match self.node {
            Some(n) if !n.trim().is_empty() => n,
            _ => hostname(),
        };
        Ok(Settings {
            server,
            token: self.token.trim().to_owned(),
            host_id,
            node,
            fast: interval("intervals.fast_seconds", self.intervals.fast_seconds)?,
            medium: interval("intervals.medium_seconds", self.intervals.medium_seconds)?,
            slow: interval("intervals.slow_seconds", self.intervals.slow_seconds)?,
            keepalive,
            ca_file: self.ca_file,
            state_dir: self.state_dir,
            buffer_max_bytes: match self.buffer_max_mb {
                0 => return Err(ConfigError::Invalid { key: "buffer_max_mb", why: "must be at least 1".into() }),
                mb => mb * 1024 * 1024,
            },
        })
    }
}

/// The short hostname, which Proxmox uses as the node name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().split('.').next().unwrap_or_default().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<Settings, ConfigError> {
        Config::parse(text)?.validate()
    }

    const GOOD: &str = r#"
server_url = "wss://monitor.example.com/mqtt"
token = "abc"
host_id = "pve-host-01"
[intervals]
fast_seconds = 1
medium_seconds = 300
slow_seconds = 1800
"#;

    #[test]
    fn example_config_parses() {
        let s = settings(EXAMPLE).unwrap();
        assert_eq!(s.fast, Duration::from_secs(30));
        assert_eq!(s.keepalive, Duration::from_secs(15));
    }

    #[test]
    fn good_config_validates() {
        let s = settings(GOOD).unwrap();
        assert_eq!(s.host_id.as_str(), "pve-host-01");
        assert_eq!(s.fast, Duration::from_secs(1));
        assert_eq!(
            s.server,
            ServerUrl::Wss {
                url: "wss://monitor.example.com/mqtt".into(),
                host: "monitor.example.com".into(),
                port: 443
            }
        );
        assert!(!format!("{s:?}").contains("abc"), "token must be redacted");
    }

    #[test]
    fn each_bad_key_is_named() {
        let cases = [
            (GOOD.replace("fast_seconds = 1", "fast_seconds = 0"), "intervals.fast_seconds"),
            (GOOD.replace("token = \"abc\"", "token = \"\""), "token"),
            (GOOD.replace("wss://", "http://"), "server_url"),
            (GOOD.replace("pve-host-01", "pve/01"), "host_id"),
        ];
        for (text, key) in cases {
            let err = settings(&text).err().unwrap().to_string();
            assert!(err.contains(key), "{err:?} should name {key}");
        }
        let err = settings(&format!("{GOOD}\ncolour = 1")).err().unwrap().to_string();
        assert!(err.contains("colour"), "{err}");
        let err = settings(&GOOD.replace("token = \"abc\"\n", "")).err().unwrap().to_string();
        assert!(err.contains("token"), "{err}");
    }

    #[test]
    fn urls_of_every_scheme_parse() {
        assert_eq!(
            ServerUrl::parse("mqtt://127.0.0.1:1883").unwrap(),
            ServerUrl::Mqtt { host: "127.0.0.1".into(), port: 1883 }
        );
        assert_eq!(
            ServerUrl::parse("mqtts://m.example.com").unwrap(),
            ServerUrl::Mqtts { host: "m.example.com".into(), port: 8883 }
        );
        assert_eq!(
            ServerUrl::parse("ws://127.0.0.1:4000/mqtt").unwrap(),
            ServerUrl::Ws { url: "ws://127.0.0.1:4000/mqtt".into(), port: 4000 }
        );
        assert!(ServerUrl::parse("ws://:80/mqtt").is_err());
        assert!(ServerUrl::parse("mqtt://h:99999").is_err());
    }
}
