//! The topic ACL: a host publishes only its own four topics (never the server's `alerts`
//! and `ha` topics, which `Topic::parse` refuses); an observer only reads; Home Assistant
//! reads `pmon/v1/` and its discovery prefix and publishes only its birth and will on
//! `<prefix>/status`. Nobody else publishes under the prefix: the server reserves it.

use wire::{Kind, Topic};

use crate::auth::Identity;

/// Why a packet was refused; each closes the connection and is counted by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// A host published outside its own `pmon/v1/<id>/{status,fast,medium,slow}`, or Home
    /// Assistant elsewhere than `<prefix>/status`.
    ForeignTopic,
    /// A topic name with a wildcard, a leading `$` or a NUL.
    InvalidTopic,
    /// A payload over the configured maximum.
    Oversized,
    /// An observer tried to publish.
    ReadOnly,
    /// A subscription outside what the identity may read.
    ForeignFilter,
    /// A will aimed at another topic than the host's own status.
    ForeignWill,
}

impl Violation {
    pub const ALL: [Violation; 6] = [
        Violation::ForeignTopic,
        Violation::InvalidTopic,
        Violation::Oversized,
        Violation::ReadOnly,
        Violation::ForeignFilter,
        Violation::ForeignWill,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Violation::ForeignTopic => "foreign_topic",
            Violation::InvalidTopic => "invalid_topic",
            Violation::Oversized => "oversized",
            Violation::ReadOnly => "read_only",
            Violation::ForeignFilter => "foreign_filter",
            Violation::ForeignWill => "foreign_will",
        }
    }
}

fn is_valid_topic_name(topic: &str) -> bool {
    !topic.is_empty() && !topic.starts_with('$') && !topic.contains(['+', '#', '\0'])
}

/// May `who` publish `payload_len` bytes to `topic`?
pub fn check_publish(who: &Identity, topic: &str, payload_len: usize, max_payload: usize) -> Result<(), Violation> {
    if !is_valid_topic_name(topic) {
        return Err(Violation::InvalidTopic);
    }
    match who {
        Identity::Observer(_) => return Err(Violation::ReadOnly),
        Identity::HomeAssistant(_, prefix) if topic != prefix.status_topic() => return Err(Violation::ForeignTopic),
        Identity::HomeAssistant(..) => {}
        Identity::Host(host) => match Topic::parse(topic) {
            Ok(t) if t.host == *host => {}
            _ => return Err(Violation::ForeignTopic),
        },
    }
    if payload_len > max_payload {
        return Err(Violation::Oversized);
    }
    Ok(())
}

/// May `who` leave a will on `topic`? A host only on its own status topic, Home Assistant
/// only on `<prefix>/status`.
pub fn check_will(who: &Identity, topic: &str) -> Result<(), Violation> {
    match who {
        Identity::Host(host) if topic == host.topic(Kind::Status) => Ok(()),
        Identity::HomeAssistant(_, prefix) if topic == prefix.status_topic() => Ok(()),
        _ => Err(Violation::ForeignWill),
    }
}

/// May `who` subscribe to `filter`? Observers read under `pmon/v1/`, hosts only their own,
/// Home Assistant under `pmon/v1/` and its discovery prefix.
pub fn check_subscribe(who: &Identity, filter: &str) -> Result<(), Violation> {
    if filter.contains('\0') || filter.starts_with('$') {
        return Err(Violation::InvalidTopic);
    }
    let pmon = format!("{}/", wire::PREFIX);
    let allowed = match who {
        Identity::Observer(_) => vec![pmon],
        Identity::Host(host) => vec![format!("{}/{}/", wire::PREFIX, host)],
        Identity::HomeAssistant(_, prefix) => vec![pmon, format!("{prefix}/")],
    };
    // A wildcard before the end of the allowed prefix would widen it (`pmon/+/...`, `#`).
    match allowed.iter().any(|p| filter.starts_with(p.as_str())) {
        true => Ok(()),
        false => Err(Violation::ForeignFilter),
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use wire::HostId;

    fn host(id: &str) -> Identity {
        Identity::Host(HostId::parse(id).unwrap())
    }

    #[test]
    fn a_host_publishes_only_its_own_topics() {
        let me = host("pve1");
        for kind in Kind::ALL {
            assert_eq!(check_publish(&me, &format!("pmon/v1/pve1/{kind}"), 10, 100), Ok(()));
        }
        assert_eq!(check_publish(&me, "pmon/v1/pve2/fast", 10, 100), Err(Violation::ForeignTopic));
        assert_eq!(check_publish(&me, "pmon/v1/pve1/other", 10, 100), Err(Violation::ForeignTopic));
        assert_eq!(check_publish(&me, "elsewhere", 10, 100), Err(Violation::ForeignTopic));
        assert_eq!(check_publish(&me, "pmon/v1/pve1/fast", 101, 100), Err(Violation::Oversized));
        for bad in ["pmon/v1/+/fast", "pmon/v1/#", "$SYS/x", "pmon/v1/pve1/fast\0", ""] {
            assert_eq!(check_publish(&me, bad, 1, 100), Err(Violation::InvalidTopic), "{bad:?}");
        }
    }

    #[test]
    fn a_host_cannot_publish_the_servers_alert_topics() {
        let me = host("pve1");
        for kind in wire::ServerKind::ALL {
            let own = HostId::parse("pve1").unwrap().server_topic(kind);
            assert_eq!(check_publish(&me, &own, 10, 100), Err(Violation::ForeignTopic), "{own}");
        }
        let o = Identity::Observer("ops".into());
        assert_eq!(check_publish(&o, "pmon/v1/pve1/alerts", 1, 100), Err(Violation::ReadOnly));
        assert_eq!(check_subscribe(&o, "pmon/v1/+/alerts/events"), Ok(()), "observers read them");
    }

    fn home_assistant() -> Identity {
        Identity::HomeAssistant("ha".into(), std::sync::Arc::new(wire::DiscoveryPrefix::default()))
    }

    #[test]
    fn only_home_assistant_publishes_under_the_prefix_and_only_its_status() {
        let ha = home_assistant();
        assert_eq!(check_publish(&ha, "homeassistant/status", 6, 100), Ok(()));
        assert_eq!(check_will(&ha, "homeassistant/status"), Ok(()));
        for other in ["homeassistant/device/pmon_pve1/config", "homeassistant/sensor/x/config", "pmon/v1/pve1/status"] {
            assert_eq!(check_publish(&ha, other, 6, 100), Err(Violation::ForeignTopic), "{other}");
            assert_eq!(check_will(&ha, other), Err(Violation::ForeignWill), "{other}");
        }
        assert_eq!(check_publish(&ha, "homeassistant/status", 101, 100), Err(Violation::Oversized));
        assert_eq!(check_subscribe(&ha, "homeassistant/#"), Ok(()));
        assert_eq!(check_subscribe(&ha, "homeassistant/+/+/config"), Ok(()));
        assert_eq!(check_subscribe(&ha, "pmon/v1/#"), Ok(()));
        for bad in ["#", "+/status", "homeassistantx/#", "other/#"] {
            assert_eq!(check_subscribe(&ha, bad), Err(Violation::ForeignFilter), "{bad}");
        }
        // Hosts and observers never publish under the prefix, nor the server's ha topics.
        let (me, o) = (host("pve1"), Identity::Observer("ops".into()));
        for topic in [
            "homeassistant/status",
            "homeassistant/device/pmon_pve1/config",
            "pmon/v1/pve1/ha/fast",
            "pmon/v1/pve1/ha/medium",
            "pmon/v1/pve1/ha/slow",
        ] {
            assert_eq!(check_publish(&me, topic, 6, 100), Err(Violation::ForeignTopic), "{topic}");
            assert_eq!(check_publish(&o, topic, 6, 100), Err(Violation::ReadOnly), "{topic}");
        }
        assert_eq!(check_will(&me, "homeassistant/status"), Err(Violation::ForeignWill));
        assert_eq!(check_subscribe(&o, "homeassistant/#"), Err(Violation::ForeignFilter));
    }

    #[test]
    fn observers_never_publish() {
        let o = Identity::Observer("ops".into());
        assert_eq!(check_publish(&o, "pmon/v1/pve1/fast", 1, 100), Err(Violation::ReadOnly));
        assert_eq!(check_will(&o, "pmon/v1/pve1/status"), Err(Violation::ForeignWill));
    }

    #[test]
    fn wills_only_on_the_own_status_topic() {
        assert_eq!(check_will(&host("pve1"), "pmon/v1/pve1/status"), Ok(()));
        assert_eq!(check_will(&host("pve1"), "pmon/v1/pve2/status"), Err(Violation::ForeignWill));
        assert_eq!(check_will(&host("pve1"), "pmon/v1/pve1/fast"), Err(Violation::ForeignWill));
    }

    #[test]
    fn subscriptions_stay_inside_what_may_be_read() {
        let o = Identity::Observer("ops".into());
        assert_eq!(check_subscribe(&o, "pmon/v1/#"), Ok(()));
        assert_eq!(check_subscribe(&o, "pmon/v1/+/status"), Ok(()));
        assert_eq!(check_subscribe(&o, "#"), Err(Violation::ForeignFilter));
        assert_eq!(check_subscribe(&o, "pmon/+/x"), Err(Violation::ForeignFilter));
        assert_eq!(check_subscribe(&o, "$SYS/#"), Err(Violation::InvalidTopic));
        let me = host("pve1");
        assert_eq!(check_subscribe(&me, "pmon/v1/pve1/#"), Ok(()));
        assert_eq!(check_subscribe(&me, "pmon/v1/#"), Err(Violation::ForeignFilter));
        assert_eq!(check_subscribe(&me, "pmon/v1/pve2/#"), Err(Violation::ForeignFilter));
    }
}
