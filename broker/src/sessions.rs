//! The live sessions, keyed as MQTT keys them: by credential and client id.
//!
//! A host has one session (its client id is its host id): a new one replaces the old.
//! An observer credential may hold several (two terminals running `mosquitto_sub`, a
//! dashboard and a script): the same client id reconnecting replaces its old session,
//! different client ids coexist, up to a cap per credential, over which the credential's
//! oldest session is closed. An empty client id (MQTT 3.1.1 lets the server pick one) is
//! never the same as another.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::auth::Identity;

/// One live session.
#[derive(Debug)]
pub(crate) struct Session {
    pub id: u64,
    pub token_hash: [u8; 32],
    /// The client's address (the forwarded one behind a trusted proxy).
    pub addr: IpAddr,
    /// Notified to close the session: rotated token, removed host, a newer session, or
    /// eviction over the cap.
    pub kick: Arc<Notify>,
}

/// Why a session was closed to make room for a new one.
#[derive(Debug)]
pub(crate) enum Displaced {
    /// The same key connected again (MQTT's session takeover).
    Replaced(Session),
    /// The credential was over its cap: its oldest session, with its client id.
    Evicted(Session, String),
}

/// Every live session.
#[derive(Debug)]
pub(crate) struct Sessions {
    /// Most sessions of one observer credential.
    observer_cap: usize,
    hosts: HashMap<String, Session>,
    /// Per observer (or Home Assistant) credential: (client id, session), oldest first. A
    /// few per credential,
    /// so a scan is cheaper than a second index.
    observers: HashMap<String, Vec<(String, Session)>>,
}

impl Sessions {
    pub fn new(observer_cap: usize) -> Sessions {
        Sessions { observer_cap: observer_cap.max(1), hosts: HashMap::new(), observers: HashMap::new() }
    }

    /// Adds `session` of `who` as `client_id`; returns the session it displaced, if any,
    /// which the caller kicks.
    pub fn join(&mut self, who: &Identity, client_id: &str, session: Session) -> Option<Displaced> {
        match who {
            Identity::Host(host) => self.hosts.insert(host.to_string(), session).map(Displaced::Replaced),
            Identity::Observer(name) | Identity::HomeAssistant(name, _) => {
                let live = self.observers.entry(name.clone()).or_default();
                let same = live.iter().position(|(id, _)| !client_id.is_empty() && id == client_id);
                live.push((client_id.to_owned(), session));
                if let Some(i) = same {
                    return Some(Displaced::Replaced(live.remove(i).1));
                }
                if live.len() > self.observer_cap {
                    let (id, oldest) = live.remove(0);
                    return Some(Displaced::Evicted(oldest, id));
                }
                None
            }
        }
    }

    /// Removes the session `id` of `who`; true if it was still live (not displaced).
    pub fn leave(&mut self, who: &Identity, id: u64) -> bool {
        match who {
            Identity::Host(host) => {
                let live = self.hosts.get(host.as_str()).is_some_and(|s| s.id == id);
                if live {
                    self.hosts.remove(host.as_str());
                }
                live
            }
            Identity::Observer(name) | Identity::HomeAssistant(name, _) => {
                let Some(live) = self.observers.get_mut(name) else { return false };
                let before = live.len();
                live.retain(|(_, s)| s.id != id);
                let removed = live.len() < before;
                if live.is_empty() {
                    self.observers.remove(name);
                }
                removed
            }
        }
    }

    /// The live session of `host`.
    pub fn host(&self, host: &str) -> Option<&Session> {
        self.hosts.get(host)
    }

    /// Host ids with a live session.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(String::as_str)
    }

    /// Every live session with its username.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Session)> {
        let hosts = self.hosts.iter().map(|(user, s)| (user.as_str(), s));
        let observers =
            self.observers.iter().flat_map(|(user, live)| live.iter().map(move |(_, s)| (user.as_str(), s)));
        hosts.chain(observers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::HostId;

    fn session(id: u64) -> Session {
        Session { id, token_hash: [0; 32], addr: [127, 0, 0, 1].into(), kick: Arc::new(Notify::new()) }
    }

    fn observer() -> Identity {
        Identity::Observer("ops".into())
    }

    fn displaced_id(d: Option<Displaced>) -> Option<(&'static str, u64)> {
        d.map(|d| match d {
            Displaced::Replaced(s) => ("replaced", s.id),
            Displaced::Evicted(s, _) => ("evicted", s.id),
        })
    }

    #[test]
    fn one_observer_credential_holds_sessions_by_client_id() {
        let mut t = Sessions::new(16);
        assert_eq!(displaced_id(t.join(&observer(), "term-1", session(1))), None);
        assert_eq!(displaced_id(t.join(&observer(), "term-2", session(2))), None, "different ids coexist");
        assert_eq!(t.all().count(), 2);
        assert_eq!(displaced_id(t.join(&observer(), "term-1", session(3))), Some(("replaced", 1)));
        assert_eq!(t.all().count(), 2);
        // The replaced session's end does not remove its successor.
        assert!(!t.leave(&observer(), 1));
        assert!(t.leave(&observer(), 3));
        assert!(t.leave(&observer(), 2));
        assert_eq!(t.all().count(), 0);
        assert!(t.observers.is_empty());
    }

    #[test]
    fn empty_client_ids_never_replace_each_other() {
        let mut t = Sessions::new(16);
        assert!(t.join(&observer(), "", session(1)).is_none());
        assert!(t.join(&observer(), "", session(2)).is_none());
        assert_eq!(t.all().count(), 2);
    }

    #[test]
    fn over_the_cap_the_credentials_oldest_session_is_evicted() {
        let mut t = Sessions::new(16);
        for id in 1..=16 {
            assert!(t.join(&observer(), &format!("c{id}"), session(id)).is_none());
        }
        let other = Identity::Observer("script".into());
        assert!(t.join(&other, "c1", session(100)).is_none(), "another credential has its own cap");
        match t.join(&observer(), "c17", session(17)) {
            Some(Displaced::Evicted(s, client)) => assert_eq!((s.id, client.as_str()), (1, "c1")),
            d => panic!("{d:?}"),
        }
        assert_eq!(displaced_id(t.join(&observer(), "c18", session(18))), Some(("evicted", 2)));
        // Reconnecting a live id replaces rather than evicts.
        assert_eq!(displaced_id(t.join(&observer(), "c10", session(19))), Some(("replaced", 10)));
        assert_eq!(t.all().filter(|(u, _)| *u == "ops").count(), 16);
    }

    #[test]
    fn a_host_has_one_session() {
        let mut t = Sessions::new(16);
        let host = Identity::Host(HostId::parse("pve1").unwrap());
        assert!(t.join(&host, "pve1", session(1)).is_none());
        assert_eq!(displaced_id(t.join(&host, "pve1", session(2))), Some(("replaced", 1)));
        assert_eq!(t.host("pve1").map(|s| s.id), Some(2));
        assert_eq!(t.hosts().collect::<Vec<_>>(), ["pve1"]);
        assert!(!t.leave(&host, 1), "the replaced session leaves the host online");
        assert!(t.leave(&host, 2));
        assert!(t.host("pve1").is_none());
    }
}
