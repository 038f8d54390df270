//! Server configuration from the environment (the runbook's `/etc/default/proxmox-monitor`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Where the database lives unless `DATABASE_PATH` says otherwise.
pub const DEFAULT_DATABASE: &str = "/var/lib/proxmox-monitor/monitor.db";

/// Everything `serve` needs, validated.
#[derive(Clone)]
pub struct ServerConfig {
    pub database: PathBuf,
    pub secret_key_base: String,
    pub password_hash: String,
    /// The public name agents and browsers use (for the agent.toml snippet).
    pub public_host: Option<String>,
    pub bind: IpAddr,
    /// HTTP: dashboard, API, `/health`, `/metrics` and MQTT over WebSocket at `/mqtt`.
    /// Here and in the two below, port 0 means any free port (reported by [`crate::Bound`]).
    pub port: u16,
    /// Plain MQTT; `None` when `MQTT_PORT=off`.
    pub mqtt_port: Option<u16>,
    /// MQTT over TLS, with its certificate and key.
    pub mqtts: Option<(u16, PathBuf, PathBuf)>,
    pub retention: recorder::Retention,
    /// `BACKUP_MAX_AGE_HOURS` (36): how old a daily backup job's last successful backup of
    /// a guest may get before `backup_age` warns (weekly jobs and others follow from it,
    /// docs/STATUS.md).
    pub backup_max_age_hours: u64,
    /// `ALERT_GROUP_WAIT_SECONDS`: how long a host's first notification waits to gather
    /// what else goes wrong; None: alerting's default (30 s). Tests shorten it.
    pub alert_group_wait: Option<Duration>,
    /// `ALERT_GROUP_INTERVAL_SECONDS`: the shortest time between two notifications of a
    /// host (a resolution after a firing one included); None: the default (5 min).
    pub alert_group_interval: Option<Duration>,
    /// `METRICS_PUBLIC` and `METRICS_GUESTS`.
    pub metrics: dashboard::MetricsOptions,
    /// `HA_DISCOVERY=1`: publish Home Assistant discovery and the `ha/` state topics.
    pub ha_discovery: bool,
    /// `HA_DISCOVERY_PREFIX` (default `homeassistant`): where Home Assistant reads
    /// discovery, the one prefix `ha` credentials may publish their status under.
    pub ha_prefix: wire::DiscoveryPrefix,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("database", &self.database)
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field("mqtt_port", &self.mqtt_port)
            .field("retention", &self.retention)
            .field("backup_max_age_hours", &self.backup_max_age_hours)
            .field("alert_group_wait", &self.alert_group_wait)
            .field("alert_group_interval", &self.alert_group_interval)
            .field("metrics", &self.metrics)
            .field("ha_discovery", &self.ha_discovery)
            .field("ha_prefix", &self.ha_prefix)
            .finish_non_exhaustive()
    }
}

/// Where settings come from: the process environment, or for `doctor` the environment
/// file with the process environment over it.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A variable's value, trimmed; unset and empty are the same.
fn get(env: Lookup, name: &str) -> Option<String> {
    env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// A switch: `1`, `true`, `yes` or `on` for on; `0`, `false`, `no`, `off` or unset for off.
fn switch(env: Lookup, name: &str) -> anyhow::Result<bool> {
    match get(env, name).map(|v| v.to_ascii_lowercase()).as_deref() {
        None | Some("0" | "false" | "no" | "off") => Ok(false),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some(v) => anyhow::bail!("{name}={v:?} is not valid; use 1 or 0"),
    }
}

fn parse<T: std::str::FromStr>(env: Lookup, name: &str, default: T) -> anyhow::Result<T> {
    match get(env, name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| anyhow::anyhow!("{name}={v:?} is not valid")),
    }
}

/// A number of days from `name` (default `default`, at most `max`), in milliseconds.
fn days(env: Lookup, name: &str, default: i64, max: i64) -> anyhow::Result<i64> {
    let days: i64 = parse(env, name, default)?;
    if !(1..=max).contains(&days) {
        anyhow::bail!("{name} must be between 1 and {max} days");
    }
    Ok(days * 86_400_000)
}

/// A number of seconds from `name`, if set.
fn seconds(env: Lookup, name: &str) -> anyhow::Result<Option<Duration>> {
    get(env, name).map(|_| parse(env, name, 0u64).map(Duration::from_secs)).transpose()
}

/// `HA_DISCOVERY_PREFIX` in `env`, validated (also for the CLI, which prints it).
pub fn ha_prefix(env: Lookup) -> anyhow::Result<wire::DiscoveryPrefix> {
    match get(env, "HA_DISCOVERY_PREFIX") {
        None => Ok(wire::DiscoveryPrefix::default()),
        Some(p) => wire::DiscoveryPrefix::parse(&p).map_err(|e| anyhow::anyhow!("HA_DISCOVERY_PREFIX: {e}")),
    }
}

/// Only the database path, for the commands that just touch the database.
pub fn database() -> PathBuf {
    database_in(&process_env)
}

/// `DATABASE_PATH` in `env`, or the default.
pub fn database_in(env: Lookup) -> PathBuf {
    get(env, "DATABASE_PATH").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE))
}

impl ServerConfig {
    pub fn from_env() -> anyhow::Result<ServerConfig> {
        ServerConfig::from_lookup(&process_env)
    }

    /// The same from any source of variables (`doctor` checks an environment file).
    pub fn from_lookup(env: Lookup) -> anyhow::Result<ServerConfig> {
        let var = |name: &str| get(env, name);
        let secret_key_base = var("SECRET_KEY_BASE").ok_or_else(|| {
            anyhow::anyhow!("SECRET_KEY_BASE is not set; generate one with `proxmox-monitor gen-secret`")
        })?;
        let password_hash = var("DASHBOARD_PASSWORD_HASH").ok_or_else(|| {
            anyhow::anyhow!(
                "DASHBOARD_PASSWORD_HASH is not set; make one with `proxmox-monitor hash-password` (reads the password from stdin)"
            )
        })?;
        let mqtt_port = match var("MQTT_PORT").as_deref() {
            // 0 is a port like any other (the system picks a free one); only `off` disables.
            Some("off") => None,
            _ => Some(parse(env, "MQTT_PORT", 1883u16)?),
        };
        let mqtts = match (var("MQTTS_PORT"), var("TLS_CERT"), var("TLS_KEY")) {
            (None, _, _) => None,
            (Some(_), Some(cert), Some(key)) => Some((parse(env, "MQTTS_PORT", 8883u16)?, cert.into(), key.into())),
            (Some(_), _, _) => anyhow::bail!("MQTTS_PORT is set but TLS_CERT or TLS_KEY is not; set both to PEM files"),
        };
        let hours = parse::<u64>(env, "RETENTION_HOURS", 48)?;
        let max = recorder::partitions::MAX_RETENTION_HOURS;
        if !(1..=max).contains(&hours) {
            anyhow::bail!(
                "RETENTION_HOURS must be between 1 and {max} ({} days); longer history belongs in Prometheus (/metrics)",
                max / 24
            );
        }
        let backup_max_age_hours = parse::<u64>(env, "BACKUP_MAX_AGE_HOURS", 36)?;
        if !(1..=24 * 31).contains(&backup_max_age_hours) {
            anyhow::bail!("BACKUP_MAX_AGE_HOURS must be between 1 and 744 (31 days)");
        }
        let rollups = recorder::rollup::Keep {
            minute_ms: days(env, "ROLLUP_MINUTE_DAYS", 30, 366)?,
            hour_ms: days(env, "ROLLUP_HOUR_DAYS", 730, 3660)?,
        };
        Ok(ServerConfig {
            database: database_in(env),
            secret_key_base,
            password_hash,
            public_host: get(env, "PUBLIC_HOST"),
            bind: parse(env, "BIND", IpAddr::from([127, 0, 0, 1]))?,
            port: parse(env, "PORT", 4000u16)?,
            mqtt_port,
            mqtts,
            retention: recorder::Retention { raw: Duration::from_secs(hours * 3600), rollups },
            backup_max_age_hours,
            alert_group_wait: seconds(env, "ALERT_GROUP_WAIT_SECONDS")?,
            alert_group_interval: seconds(env, "ALERT_GROUP_INTERVAL_SECONDS")?,
            metrics: dashboard::MetricsOptions {
                public: switch(env, "METRICS_PUBLIC")?,
                guests: switch(env, "METRICS_GUESTS")?,
            },
            ha_discovery: switch(env, "HA_DISCOVERY")?,
            ha_prefix: ha_prefix(env)?,
        })
    }

    /// The `server_url` an agent should use, given where HTTP is bound (`PORT=0` is
    /// resolved only then).
    /// The dashboard's base URL, for links from elsewhere (Home Assistant's device page).
    pub fn dashboard_url(&self, http: SocketAddr) -> String {
        match &self.public_host {
            Some(host) => format!("https://{host}"),
            None => format!("http://{http}"),
        }
    }

    pub fn public_url(&self, http: SocketAddr) -> String {
        match &self.public_host {
            Some(host) => format!("wss://{host}/mqtt"),
            None => format!("ws://{http}/mqtt"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &[(&str, &str)]) -> anyhow::Result<ServerConfig> {
        let env = |name: &str| {
            let base = [("SECRET_KEY_BASE", "x".repeat(64)), ("DASHBOARD_PASSWORD_HASH", "$argon2id$h".into())];
            let found = extra.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
            found.or_else(|| base.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()))
        };
        ServerConfig::from_lookup(&env)
    }

    #[test]
    fn backup_max_age_defaults_to_36_hours_and_is_checked() {
        assert_eq!(config(&[]).unwrap().backup_max_age_hours, 36);
        assert_eq!(config(&[("BACKUP_MAX_AGE_HOURS", "48")]).unwrap().backup_max_age_hours, 48);
        for bad in ["0", "745", "a day"] {
            let e = config(&[("BACKUP_MAX_AGE_HOURS", bad)]).err().unwrap().to_string();
            assert!(e.contains("BACKUP_MAX_AGE_HOURS"), "{bad}: {e}");
        }
    }
}
