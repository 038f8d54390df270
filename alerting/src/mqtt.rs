//! The alerts on MQTT: each host's firing set, retained on `pmon/v1/<host>/alerts`, and
//! each transition on `pmon/v1/<host>/alerts/events`. Pure: [`Mirror`] compares the
//! engine's alerts with what it last published and says what to publish now.

use std::collections::{BTreeMap, HashSet};

use recorder::status::Level;
use wire::alerts::{AlertEvent, AlertSet, FiringAlert, Transition};
use wire::{HostId, ServerKind};

use crate::alert::{Alert, State};

/// One message for the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// What was last published per host: its firing set.
#[derive(Debug, Default)]
pub struct Mirror {
    published: BTreeMap<String, Vec<FiringAlert>>,
}

fn entry(a: &Alert) -> FiringAlert {
    FiringAlert {
        id: a.id,
        rule: a.identity.rule.as_str().to_owned(),
        subject: (!a.identity.subject.is_empty()).then(|| a.identity.subject.clone()),
        severity: a.severity.as_str().to_owned(),
        since: a.started_ms / 1000,
        acked: a.acked,
        message: a.message.clone(),
    }
}

/// The firing alerts of every host in `hosts`, worst first, then by id.
fn firing<'a>(alerts: impl Iterator<Item = &'a Alert>, hosts: &HashSet<String>) -> BTreeMap<String, Vec<FiringAlert>> {
    let mut sets: BTreeMap<String, Vec<(Level, FiringAlert)>> = hosts.iter().map(|h| (h.clone(), Vec::new())).collect();
    for a in alerts.filter(|a| a.state == State::Firing) {
        if let Some(set) = sets.get_mut(&a.identity.host) {
            set.push((a.severity, entry(a)));
        }
    }
    sets.into_iter()
        .map(|(host, mut set)| {
            set.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.id.cmp(&y.1.id)));
            (host, set.into_iter().map(|(_, e)| e).collect())
        })
        .collect()
}

impl Mirror {
    /// Every registered host's firing set, retained (an empty list for a host with none):
    /// rumqttd forgets retained messages on restart. No events: nothing changed.
    pub fn start<'a>(
        alerts: impl Iterator<Item = &'a Alert>,
        hosts: &HashSet<String>,
        now_ms: i64,
    ) -> (Mirror, Vec<Publication>) {
        let published = firing(alerts, hosts);
        let out = published.iter().filter_map(|(host, set)| set_publication(host, set, now_ms)).collect();
        (Mirror { published }, out)
    }

    /// The transitions since the last call, then the changed firing sets. A host removed
    /// from the registry gets an empty set and no events.
    pub fn update<'a>(
        &mut self,
        alerts: impl Iterator<Item = &'a Alert>,
        hosts: &HashSet<String>,
        now_ms: i64,
    ) -> Vec<Publication> {
        let alerts: Vec<&Alert> = alerts.collect();
        let mut current = firing(alerts.iter().copied(), hosts);
        for host in self.published.keys() {
            current.entry(host.clone()).or_default();
        }
        let mut events = Vec::new();
        let mut sets = Vec::new();
        for (host, now) in &current {
            let before = self.published.get(host).map(Vec::as_slice).unwrap_or_default();
            if before == now.as_slice() && self.published.contains_key(host) {
                continue;
            }
            if hosts.contains(host) {
                for e in now {
                    let event = match before.iter().find(|b| b.id == e.id) {
                        None => Some(Transition::Firing),
                        Some(b) if !b.acked && e.acked => Some(Transition::Acknowledged),
                        Some(b) if b.severity != e.severity || b.acked != e.acked => Some(Transition::Changed),
                        Some(_) => None,
                    };
                    events.extend(event.and_then(|t| event_publication(host, t, e.clone(), now_ms)));
                }
                for b in before.iter().filter(|b| !now.iter().any(|e| e.id == b.id)) {
                    // As it was when it resolved, but no longer acknowledged.
                    let resolved = alerts.iter().find(|a| a.id == b.id).map_or_else(|| b.clone(), |a| entry(a));
                    events.extend(event_publication(host, Transition::Resolved, resolved, now_ms));
                }
            }
            sets.extend(set_publication(host, now, now_ms));
        }
        current.retain(|host, set| hosts.contains(host) || !set.is_empty());
        self.published = current;
        events.extend(sets);
        events
    }
}

fn set_publication(host: &str, alerts: &[FiringAlert], now_ms: i64) -> Option<Publication> {
    let id = HostId::parse(host).ok()?;
    let set =
        AlertSet { schema: wire::SCHEMA_VERSION, host_id: host.to_owned(), ts_ms: now_ms, alerts: alerts.to_vec() };
    Some(Publication {
        topic: id.server_topic(ServerKind::Alerts),
        // Serializing plain strings and numbers cannot fail.
        payload: serde_json::to_vec(&set).unwrap_or_default(),
        retain: true,
    })
}

fn event_publication(host: &str, event: Transition, alert: FiringAlert, now_ms: i64) -> Option<Publication> {
    let id = HostId::parse(host).ok()?;
    let e = AlertEvent { schema: wire::SCHEMA_VERSION, host_id: host.to_owned(), ts_ms: now_ms, event, alert };
    Some(Publication {
        topic: id.server_topic(ServerKind::AlertEvents),
        // Serializing plain strings and numbers cannot fail.
        payload: serde_json::to_vec(&e).unwrap_or_default(),
        retain: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Identity;
    use recorder::status::Rule;

    fn alert(id: i64, state: State, acked: bool) -> Alert {
        let identity = Identity { host: "pve1".into(), rule: Rule::PoolState, subject: "tank".into() };
        let mut a = Alert::new(identity, Level::Warning, None, "pool tank is DEGRADED".into(), 60_000);
        (a.id, a.state, a.acked) = (id, state, acked);
        a
    }

    fn decode(p: &Publication) -> serde_json::Value {
        serde_json::from_slice(&p.payload).unwrap()
    }

    fn hosts() -> HashSet<String> {
        ["pve1".to_owned(), "pve2".to_owned()].into()
    }

    #[test]
    fn start_retains_every_hosts_set_and_sends_no_event() {
        let firing = alert(7, State::Firing, false);
        let (_, out) = Mirror::start([&firing].into_iter(), &hosts(), 1_000);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|p| p.retain));
        assert_eq!(out[0].topic, "pmon/v1/pve1/alerts");
        let set = decode(&out[0]);
        assert_eq!(set["alerts"][0]["id"], 7);
        assert_eq!(set["alerts"][0]["since"], 60);
        assert_eq!(set["alerts"][0]["subject"], "tank");
        assert_eq!(decode(&out[1])["alerts"], serde_json::json!([]), "an empty list when none");
    }

    #[test]
    fn transitions_are_events_and_each_changes_the_retained_set() {
        let (mut mirror, _) = Mirror::start(std::iter::empty(), &hosts(), 0);
        let pending = alert(7, State::Pending, false);
        assert!(mirror.update([&pending].into_iter(), &hosts(), 1).is_empty(), "pending is not firing");
        let steps = [
            (alert(7, State::Firing, false), "firing"),
            (alert(7, State::Firing, true), "acknowledged"),
            (alert(7, State::Resolved, false), "resolved"),
        ];
        for (a, event) in steps {
            let out = mirror.update([&a].into_iter(), &hosts(), 2);
            assert_eq!(out.len(), 2, "{event}: one event, one set");
            assert_eq!((out[0].topic.as_str(), out[0].retain), ("pmon/v1/pve1/alerts/events", false));
            assert_eq!(decode(&out[0])["event"], event);
            assert_eq!(decode(&out[0])["alert"]["id"], 7);
            assert_eq!((out[1].topic.as_str(), out[1].retain), ("pmon/v1/pve1/alerts", true));
            assert!(mirror.update([&a].into_iter(), &hosts(), 3).is_empty(), "{event}: said once");
        }
    }
}
