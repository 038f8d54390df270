//! What to tell whom and when: per-host groups (group wait, group interval), repeats,
//! resolutions once, flap notices, acknowledgements and silences. Pure, like the engine:
//! [`Engine::flush`] takes the clock as an argument and returns the messages to send.

use recorder::status::{Level, Rule};
use serde::Serialize;

use crate::alert::{Alert, Identity, State};
use crate::engine::Engine;
use crate::settings::ms;

/// One host's message: every alert it reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outgoing {
    pub host: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    Firing,
    Resolved,
    /// Changing too often: this notice, then nothing until it is stable.
    Flapping,
}

/// One alert in a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub id: i64,
    pub identity: Identity,
    pub kind: ItemKind,
    pub severity: Level,
    pub message: String,
    pub started_ms: i64,
    /// When it resolved.
    pub ended_ms: Option<i64>,
}

impl Item {
    fn of(alert: &Alert, kind: ItemKind) -> Item {
        Item {
            id: alert.id,
            identity: alert.identity.clone(),
            kind,
            severity: alert.severity,
            message: alert.message.clone(),
            started_ms: alert.started_ms,
            ended_ms: (alert.state == State::Resolved).then_some(alert.changed_ms),
        }
    }
}

/// What an alert asks of its group this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Nothing,
    /// Something receivers have not heard: waits for the group's timing.
    News,
    /// Unchanged and unacknowledged past its repeat interval: sent at once.
    Repeat,
}

impl Engine {
    /// Ends flapping for alerts that have been stable for the quiet period, then returns
    /// each host's message that is due at `now_ms` and marks what it reports as sent.
    pub fn flush(&mut self, now_ms: i64) -> Vec<Outgoing> {
        self.settle_flapping(now_ms);
        let hosts: Vec<String> = {
            let mut h: Vec<String> = self.alerts.keys().map(|id| id.host.clone()).collect();
            h.dedup();
            h
        };
        let mut out = Vec::new();
        for host in hosts {
            if let Some(message) = self.flush_host(&host, now_ms) {
                out.push(message);
            }
        }
        out
    }

    fn flush_host(&mut self, host: &str, now_ms: i64) -> Option<Outgoing> {
        let inhibited = self
            .alerts
            .values()
            .any(|a| a.identity.host == host && a.identity.rule == Rule::HostOffline && a.state.is_active());
        let eligible: Vec<Identity> = self
            .alerts
            .values()
            .filter(|a| a.identity.host == host)
            .filter(|a| !inhibited || a.identity.rule == Rule::HostOffline)
            .filter(|a| !self.silenced(a, now_ms))
            .map(|a| a.identity.clone())
            .collect();
        let asks: Vec<Ask> = eligible.iter().map(|id| self.ask(&self.alerts[id], now_ms)).collect();
        let news = asks.contains(&Ask::News);
        let repeat = asks.contains(&Ask::Repeat);
        // Open: receivers already hold firing alerts of this host (or a resolution due).
        let open = eligible.iter().any(|id| {
            let a = &self.alerts[id];
            a.notified_ms.is_some() && (a.state == State::Firing || !a.resolved_notified)
        });
        let (group_wait, group_interval) = (ms(self.settings.group_wait), ms(self.settings.group_interval));
        let group = self.groups.entry(host.to_owned()).or_default();
        if !news && !repeat {
            group.news_since_ms = None;
            return None;
        }
        let since = *group.news_since_ms.get_or_insert(now_ms);
        let due = repeat
            || match group.last_flush_ms {
                Some(last) if open => now_ms - last >= group_interval,
                _ => now_ms - since >= group_wait,
            };
        if !due {
            return None;
        }
        group.last_flush_ms = Some(now_ms);
        group.news_since_ms = None;
        let mut items = Vec::new();
        for id in eligible {
            // The key was listed from the map just above.
            let Some(a) = self.alerts.get_mut(&id) else { continue };
            let kind = match a.state {
                _ if a.flapping && !a.flap_notified => {
                    a.flap_notified = true;
                    Some(ItemKind::Flapping)
                }
                _ if a.flapping => None,
                State::Firing if !a.acked => {
                    a.notified_ms = Some(now_ms);
                    a.notified_severity = Some(a.severity);
                    a.notified_value = a.value;
                    Some(ItemKind::Firing)
                }
                State::Resolved if !a.resolved_notified => {
                    a.resolved_notified = true;
                    Some(ItemKind::Resolved)
                }
                _ => None,
            };
            if let Some(kind) = kind {
                a.dirty = true;
                items.push(Item::of(a, kind));
            }
        }
        // Worst first, then by identity.
        items.sort_by(|x, y| y.severity.cmp(&x.severity).then_with(|| x.identity.cmp(&y.identity)));
        (!items.is_empty()).then(|| Outgoing { host: host.to_owned(), items })
    }

    fn ask(&self, a: &Alert, now_ms: i64) -> Ask {
        if a.flapping {
            return if a.flap_notified { Ask::Nothing } else { Ask::News };
        }
        match a.state {
            State::Pending => Ask::Nothing,
            State::Firing if a.acked => Ask::Nothing,
            State::Firing => match a.notified_ms {
                None => Ask::News,
                Some(_) if a.worse_than_notified() => Ask::News,
                Some(t) if now_ms - t >= self.settings.repeat_for(a.severity) => Ask::Repeat,
                Some(_) => Ask::Nothing,
            },
            State::Resolved if !a.resolved_notified => Ask::News,
            State::Resolved => Ask::Nothing,
        }
    }

    /// A flapping alert that has not changed for `flap_quiet` is stable again: receivers
    /// that got the flap notice then hear its current state once.
    fn settle_flapping(&mut self, now_ms: i64) {
        let quiet = ms(self.settings.flap_quiet);
        for a in self.alerts.values_mut().filter(|a| a.flapping) {
            if a.changes.last().is_some_and(|last| now_ms - last < quiet) {
                continue;
            }
            a.flapping = false;
            if a.flap_notified {
                match a.state {
                    State::Firing => a.notified_ms = None,
                    State::Resolved => a.resolved_notified = false,
                    State::Pending => {}
                }
            }
            a.flap_notified = false;
            a.changes.clear();
            a.dirty = true;
        }
    }
}
