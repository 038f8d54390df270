//! Topic names: `pmon/v1/<host_id>/{status,fast,medium,slow}` (a host's own, [`Kind`]),
//! `pmon/v1/<host_id>/{alerts,alerts/events,ha/fast,ha/medium,ha/slow}` (published by the server
//! only, [`ServerKind`]) and Home Assistant's discovery topics under a configurable prefix
//! ([`DiscoveryPrefix`]).

use std::fmt;

/// Every topic of this protocol starts with this prefix (no trailing slash).
pub const PREFIX: &str = "pmon/v1";

/// Payload of a `status` topic while the host is connected.
pub const ONLINE: &str = "online";
/// Payload of a `status` topic once the host's connection ended.
pub const OFFLINE: &str = "offline";

/// Longest host id we accept; keeps topics and client ids short.
pub const MAX_HOST_ID_LEN: usize = 63;

/// A validated host id: 1 to 63 ASCII letters, digits, `-`, `_` or `.`, starting with a
/// letter or digit. This excludes `/`, `+`, `#`, `$` and NUL, so a host id can never widen
/// a topic or a filter, and it is safe as an MQTT client id (rumqttd panics on some ids
/// containing `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostIdError {
    Empty,
    TooLong,
    BadChar(char),
    BadStart,
}

impl fmt::Display for HostIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostIdError::Empty => write!(f, "host id is empty"),
            HostIdError::TooLong => write!(f, "host id is longer than {MAX_HOST_ID_LEN} characters"),
            HostIdError::BadChar(c) => write!(f, "host id contains {c:?}; use letters, digits, '-', '_' or '.'"),
            HostIdError::BadStart => write!(f, "host id must start with a letter or digit"),
        }
    }
}

impl std::error::Error for HostIdError {}

impl HostId {
    pub fn parse(s: &str) -> Result<HostId, HostIdError> {
        let first = s.chars().next().ok_or(HostIdError::Empty)?;
        if s.len() > MAX_HOST_ID_LEN {
            return Err(HostIdError::TooLong);
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
            return Err(HostIdError::BadChar(c));
        }
        if !first.is_ascii_alphanumeric() {
            return Err(HostIdError::BadStart);
        }
        Ok(HostId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The topic of one of this host's messages.
    pub fn topic(&self, kind: Kind) -> String {
        format!("{PREFIX}/{}/{}", self.0, kind.as_str())
    }

    /// The topic of a message the server publishes about this host.
    pub fn server_topic(&self, kind: ServerKind) -> String {
        format!("{PREFIX}/{}/{}", self.0, kind.as_str())
    }

    /// The filter that matches every topic of this host.
    pub fn filter(&self) -> String {
        format!("{PREFIX}/{}/#", self.0)
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for HostId {
    type Err = HostIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostId::parse(s)
    }
}

/// The last level of a topic: what the message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Status,
    Fast,
    Medium,
    Slow,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Status, Kind::Fast, Kind::Medium, Kind::Slow];
    pub const TIERS: [Kind; 3] = [Kind::Fast, Kind::Medium, Kind::Slow];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Status => "status",
            Kind::Fast => "fast",
            Kind::Medium => "medium",
            Kind::Slow => "slow",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the server publishes about a host. Not a [`Kind`] on purpose: [`Topic::parse`]
/// refuses these, so the gateway's ACL never lets a host publish them and the recorder
/// never takes them for a host's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerKind {
    /// The host's firing alerts, retained.
    Alerts,
    /// Each alert transition, not retained.
    AlertEvents,
    /// Home Assistant's flat view of the fast tier (and the host's status), retained.
    HaFast,
    /// Home Assistant's flat view of the medium tier, retained.
    HaMedium,
    /// Home Assistant's flat view of the slow tier (disks' SMART health), retained.
    HaSlow,
}

impl ServerKind {
    pub const ALL: [ServerKind; 5] =
        [ServerKind::Alerts, ServerKind::AlertEvents, ServerKind::HaFast, ServerKind::HaMedium, ServerKind::HaSlow];

    /// The topic levels after the host id.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Alerts => "alerts",
            ServerKind::AlertEvents => "alerts/events",
            ServerKind::HaFast => "ha/fast",
            ServerKind::HaMedium => "ha/medium",
            ServerKind::HaSlow => "ha/slow",
        }
    }

    /// Whether `topic` is one the server publishes (of any host).
    pub fn matches(topic: &str) -> bool {
        let Some(rest) = topic.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('/')) else { return false };
        let Some((host, kind)) = rest.split_once('/') else { return false };
        HostId::parse(host).is_ok() && ServerKind::ALL.iter().any(|k| k.as_str() == kind)
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Home Assistant's discovery prefix (`HA_DISCOVERY_PREFIX`, default `homeassistant`):
/// one or more topic levels, no wildcards, never overlapping `pmon/`. Only the server
/// publishes under it, except Home Assistant's own birth and will on [`Self::status_topic`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiscoveryPrefix(String);

/// Home Assistant's default discovery prefix.
pub const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";

impl DiscoveryPrefix {
    pub fn parse(s: &str) -> Result<DiscoveryPrefix, String> {
        let bad = |why: &str| Err(format!("discovery prefix {s:?} {why}"));
        if s.is_empty() || s.len() > 64 {
            return bad("must be 1 to 64 characters");
        }
        if s.starts_with(['/', '$']) || s.ends_with('/') || s.contains("//") {
            return bad("must not start with '/' or '$', end with '/' or have an empty level");
        }
        if s.contains(['+', '#', '\0']) || s.chars().any(char::is_whitespace) {
            return bad("must not contain '+', '#', NUL or whitespace");
        }
        let first = s.split('/').next().unwrap_or(s);
        if PREFIX.split('/').next() == Some(first) {
            return bad("must not overlap pmon/");
        }
        Ok(DiscoveryPrefix(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Home Assistant's birth and will (`online` / `offline`).
    pub fn status_topic(&self) -> String {
        format!("{}/status", self.0)
    }

    /// The retained device-discovery config of `host` (Home Assistant 2024.11+).
    pub fn device_topic(&self, host: &HostId) -> String {
        format!("{}/device/{}/config", self.0, device_id(host))
    }

    /// Whether `topic` is under this prefix.
    pub fn covers(&self, topic: &str) -> bool {
        topic.strip_prefix(self.0.as_str()).is_some_and(|rest| rest.starts_with('/'))
    }
}

impl Default for DiscoveryPrefix {
    fn default() -> Self {
        DiscoveryPrefix(DEFAULT_DISCOVERY_PREFIX.to_owned())
    }
}

impl fmt::Display for DiscoveryPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `pmon_<host>` with the host id made of `[A-Za-z0-9_-]` only, as Home Assistant wants
/// for object ids: `_` becomes `__` and `.` becomes `_d`, so two host ids never share one.
pub fn device_id(host: &HostId) -> String {
    let mut id = String::from("pmon_");
    for c in host.as_str().chars() {
        match c {
            '_' => id.push_str("__"),
            '.' => id.push_str("_d"),
            c => id.push(c),
        }
    }
    id
}

/// A parsed topic of this protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub host: HostId,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicError {
    /// Not under `pmon/v1/`.
    Foreign,
    BadHost(HostIdError),
    UnknownKind,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Foreign => write!(f, "topic is not under {PREFIX}/"),
            TopicError::BadHost(e) => write!(f, "bad host id in topic: {e}"),
            TopicError::UnknownKind => {
                write!(f, "topic must end in /status, /fast, /medium or /slow")
            }
        }
    }
}

impl std::error::Error for TopicError {}

impl Topic {
    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        let rest = topic.strip_prefix(PREFIX).and_then(|r| r.strip_prefix('/')).ok_or(TopicError::Foreign)?;
        let (host, kind) = rest.split_once('/').ok_or(TopicError::UnknownKind)?;
        let host = HostId::parse(host).map_err(TopicError::BadHost)?;
        let kind = Kind::parse(kind).ok_or(TopicError::UnknownKind)?;
        Ok(Topic { host, kind })
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}/{}/{}", self.host, self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_that_could_widen_a_topic_are_refused() {
        for bad in ["", "a/b", "+", "#", "$SYS", "a\0b", "-lead", "a b", "ü"] {
            assert!(HostId::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(HostId::parse(&"a".repeat(64)), Err(HostIdError::TooLong));
        assert_eq!(HostId::parse("pve-host_01.dc").unwrap().as_str(), "pve-host_01.dc");
    }

    #[test]
    fn topics_round_trip() {
        let host = HostId::parse("pve1").unwrap();
        for kind in Kind::ALL {
            let t = host.topic(kind);
            assert_eq!(Topic::parse(&t).unwrap(), Topic { host: host.clone(), kind });
        }
        assert_eq!(host.topic(Kind::Fast), "pmon/v1/pve1/fast");
        assert_eq!(host.filter(), "pmon/v1/pve1/#");
    }

    #[test]
    fn server_topics_are_not_host_topics() {
        let host = HostId::parse("pve1").unwrap();
        assert_eq!(host.server_topic(ServerKind::Alerts), "pmon/v1/pve1/alerts");
        assert_eq!(host.server_topic(ServerKind::AlertEvents), "pmon/v1/pve1/alerts/events");
        for kind in ServerKind::ALL {
            let t = host.server_topic(kind);
            assert!(ServerKind::matches(&t), "{t}");
            assert_eq!(Topic::parse(&t), Err(TopicError::UnknownKind), "{t} must not parse as a host's topic");
        }
        assert_eq!(host.server_topic(ServerKind::HaFast), "pmon/v1/pve1/ha/fast");
        assert_eq!(host.server_topic(ServerKind::HaMedium), "pmon/v1/pve1/ha/medium");
        assert_eq!(host.server_topic(ServerKind::HaSlow), "pmon/v1/pve1/ha/slow");
        for other in
            ["pmon/v1/pve1/fast", "pmon/v1/+/alerts", "pmon/v1/pve1/alerts/x", "x/pve1/alerts", "pmon/v1/pve1/ha"]
        {
            assert!(!ServerKind::matches(other), "{other}");
        }
    }

    #[test]
    fn discovery_prefixes_and_device_ids() {
        let p = DiscoveryPrefix::default();
        let host = HostId::parse("pve-1").unwrap();
        assert_eq!(p.status_topic(), "homeassistant/status");
        assert_eq!(p.device_topic(&host), "homeassistant/device/pmon_pve-1/config");
        assert!(p.covers("homeassistant/status") && !p.covers("homeassistantx/status") && !p.covers("homeassistant"));
        for bad in ["", "/ha", "ha/", "a//b", "ha/+", "#", "$SYS", "pmon", "pmon/x", "h a"] {
            assert!(DiscoveryPrefix::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(DiscoveryPrefix::parse("site/ha").unwrap().status_topic(), "site/ha/status");
        let ids: Vec<String> =
            ["a.b", "a_b", "a_d", "a__b"].iter().map(|h| device_id(&HostId::parse(h).unwrap())).collect();
        assert_eq!(ids, ["pmon_a_db", "pmon_a__b", "pmon_a__d", "pmon_a____b"]);
    }

    #[test]
    fn foreign_and_malformed_topics_are_refused() {
        assert_eq!(Topic::parse("other/pve1/fast"), Err(TopicError::Foreign));
        assert_eq!(Topic::parse("pmon/v1/pve1/extra"), Err(TopicError::UnknownKind));
        assert_eq!(Topic::parse("pmon/v1/pve1/fast/x"), Err(TopicError::UnknownKind));
        assert_eq!(Topic::parse("pmon/v1/pve1"), Err(TopicError::UnknownKind));
        assert!(matches!(Topic::parse("pmon/v1/+/fast"), Err(TopicError::BadHost(_))));
    }
}
