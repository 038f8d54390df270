//! The state machine: findings → alerts (pending → firing → resolved), with hysteresis,
//! latching, inhibition by `host_offline`, acknowledgements, flap detection, and the
//! operator's rule overrides (disabled rules, changed thresholds and pending durations).
//! Pure: the clock is an argument, so tests drive it millisecond by millisecond.

use std::collections::{BTreeMap, HashMap, HashSet};

use recorder::state::HostState;
use recorder::status::{self, Finding, Latest, Level, Rule, Thresholds};
use wire::Medium;

use crate::alert::{Alert, Identity, State};
use crate::overrides::Overrides;
use crate::settings::{ms, Settings};
use crate::silence::Silence;

/// Every alert the server knows, and what the notifier needs between rounds.
pub struct Engine {
    pub(crate) settings: Settings,
    pub(crate) alerts: BTreeMap<Identity, Alert>,
    pub(crate) silences: Vec<Silence>,
    pub(crate) overrides: Overrides,
    /// Per host: the notifier's group state.
    pub(crate) groups: HashMap<String, Group>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Group {
    pub last_flush_ms: Option<i64>,
    /// When the group first had something new to say since its last flush.
    pub news_since_ms: Option<i64>,
}

/// A condition as the engine holds it: level, value, message.
type Condition = (Level, Option<f64>, String);

impl Engine {
    /// An engine that remembers `alerts` (as stored: a restart neither re-fires nor
    /// forgets what was sent or acknowledged).
    pub fn new(settings: Settings, alerts: Vec<Alert>) -> Engine {
        let mut groups: HashMap<String, Group> = HashMap::new();
        for a in &alerts {
            let g = groups.entry(a.identity.host.clone()).or_default();
            g.last_flush_ms = g.last_flush_ms.max(a.notified_ms);
        }
        let alerts = alerts.into_iter().map(|a| (a.identity.clone(), a)).collect();
        Engine { settings, alerts, silences: Vec::new(), overrides: Overrides::default(), groups }
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    pub fn get(&self, identity: &Identity) -> Option<&Alert> {
        self.alerts.get(identity)
    }

    pub fn set_silences(&mut self, silences: Vec<Silence>) {
        self.silences = silences;
    }

    /// The operator's rule overrides, read by every later evaluation.
    pub fn set_overrides(&mut self, overrides: Overrides) {
        self.overrides = overrides;
    }

    /// Marks the active alerts whose ids are in `acked` as acknowledged (set by the CLI).
    pub fn set_acked(&mut self, acked: &HashSet<i64>) {
        for a in self.alerts.values_mut() {
            if a.state.is_active() && acked.contains(&a.id) && !a.acked {
                a.acked = true;
            }
        }
    }

    /// Forgets the alerts of hosts no longer registered (their rows went with the host).
    pub fn retain_hosts(&mut self, registered: &HashSet<String>) {
        self.alerts.retain(|id, _| registered.contains(&id.host));
        self.groups.retain(|host, _| registered.contains(host));
    }

    /// Evaluates one host's state at `now_ms`, its findings judged under this engine's
    /// overrides (the ones the cards read too, set in the same round).
    pub fn evaluate(&mut self, state: &HostState, now_ms: i64) {
        // Decoded once: the findings and the hysteresis read the same payloads.
        let decoded = state.decoded();
        let findings = decoded.findings_under(now_ms, &self.overrides);
        self.apply_latest(&state.host_id, &findings, decoded.latest(), now_ms);
    }

    /// Applies `findings` of `host` (and its `medium`, for hysteresis and latches).
    pub fn apply(&mut self, host: &str, findings: &[Finding], medium: Option<&Medium>, now_ms: i64) {
        self.apply_latest(host, findings, Latest { medium, ..Latest::default() }, now_ms);
    }

    /// Applies `findings` of `host`, with its latest tier data for the hysteresis of the
    /// numeric rules and for latches.
    pub fn apply_latest(&mut self, host: &str, findings: &[Finding], latest: Latest, now_ms: i64) {
        let offline = findings.iter().any(|f| f.rule == Rule::HostOffline);
        let identity = |rule, subject: &str| Identity { host: host.to_owned(), rule, subject: subject.to_owned() };
        let mut conditions: BTreeMap<Identity, Condition> = findings
            .iter()
            .map(|f| (identity(f.rule, f.subject.as_deref().unwrap_or("")), (f.level, f.value, f.message.clone())))
            .collect();
        let active: Vec<Identity> = self
            .alerts_of(host)
            .filter(|a| a.state.is_active())
            // An offline host's other alerts are frozen: nothing is known about them.
            .filter(|a| !offline || a.identity.rule == Rule::HostOffline)
            .map(|a| a.identity.clone())
            .collect();
        for id in &active {
            let alert = &self.alerts[id];
            let builtin = latest.builtin(id.rule, &id.subject);
            if let Some(thresholds) = self.overrides.resolve_from(host, id.rule, &id.subject, builtin).thresholds {
                let value =
                    conditions.get(id).and_then(|c| c.1).or_else(|| latest.measure(id.rule, &id.subject, now_ms));
                match value.and_then(|v| hysteresis(thresholds, v, alert.severity)) {
                    Some(level) => {
                        let message = conditions.get(id).map_or_else(|| alert.message.clone(), |c| c.2.clone());
                        conditions.insert(id.clone(), (level, value, message));
                    }
                    None => {
                        conditions.remove(id);
                    }
                }
            } else if id.rule == Rule::GuestStopped
                && !conditions.contains_key(id)
                && latest.medium.is_some_and(|m| status::guest_still_stopped(m, &id.subject))
            {
                // The stop is news once; the alert holds until the guest runs again.
                conditions.insert(id.clone(), (alert.severity, alert.value, alert.message.clone()));
            }
        }
        for (id, condition) in conditions {
            if offline && id.rule != Rule::HostOffline || !id.effective(&self.overrides).enabled {
                continue;
            }
            self.hold(id, condition, now_ms);
        }
        for id in active {
            let still = findings_hold(&self.alerts[&id], now_ms);
            if still {
                continue;
            }
            if id.effective(&self.overrides).enabled {
                self.clear(&id, now_ms);
            } else {
                self.clear_quietly(&id, now_ms);
            }
        }
    }

    /// The alerts of `host`: a range of the map, which is ordered by host first (a scan of
    /// every alert for every host made a round quadratic: 1.4 s at 10,000 hosts with two
    /// alerts each).
    fn alerts_of<'a>(&'a self, host: &'a str) -> impl Iterator<Item = &'a Alert> + 'a {
        // Rule::ALL is not empty: the smallest rule exists.
        let first_rule = Rule::ALL.into_iter().min().expect("Rule::ALL is not empty");
        let first = Identity { host: host.to_owned(), rule: first_rule, subject: String::new() };
        self.alerts.range(first..).take_while(move |(id, _)| id.host == host).map(|(_, a)| a)
    }

    /// The condition of `id` holds at `now_ms`.
    fn hold(&mut self, id: Identity, (level, value, message): Condition, now_ms: i64) {
        let for_ms = id.effective(&self.overrides).pending_ms.unwrap_or_else(|| self.settings.for_duration(id.rule));
        let alert = self.alerts.entry(id.clone()).or_insert_with(|| {
            let mut a = Alert::new(id, level, value, message.clone(), now_ms);
            // A brand-new alert is resolved until the code below starts its episode.
            a.state = State::Resolved;
            a
        });
        let before = alert.clone();
        if alert.state == State::Resolved {
            alert.restart(level, value, message, now_ms);
        } else {
            if level > alert.severity {
                alert.clear_ack();
            }
            alert.severity = level;
            alert.value = value;
            alert.message = message;
        }
        if alert.state == State::Pending && now_ms - alert.started_ms >= for_ms {
            alert.state = State::Firing;
            alert.changed_ms = now_ms;
            record_change(alert, &self.settings, now_ms);
        }
        if alert.state == State::Firing && alert.worse_than_notified() {
            alert.clear_ack();
        }
        if *alert != before {
            alert.dirty = true;
        }
        // The last sighting, after the comparison: it changes every round.
        alert.seen_ms = now_ms;
    }

    /// The condition of `id` no longer holds.
    fn clear(&mut self, id: &Identity, now_ms: i64) {
        let Some(alert) = self.alerts.get_mut(id) else { return };
        match alert.state {
            State::Resolved => return,
            // Never fired: nothing to tell.
            State::Pending => alert.resolved_notified = true,
            State::Firing => {
                // Receivers that never heard of it need no resolution either.
                alert.resolved_notified = alert.notified_ms.is_none();
                record_change(alert, &self.settings, now_ms);
            }
        }
        alert.state = State::Resolved;
        alert.changed_ms = now_ms;
        alert.clear_ack();
        alert.dirty = true;
    }

    /// A rule the operator disabled: its active alert resolves without a "resolved"
    /// notification (nobody should read it as "fixed") and without counting as a flap;
    /// the MQTT transition and the retained set still say it.
    fn clear_quietly(&mut self, id: &Identity, now_ms: i64) {
        let Some(alert) = self.alerts.get_mut(id) else { return };
        alert.state = State::Resolved;
        alert.changed_ms = now_ms;
        alert.resolved_notified = true;
        alert.clear_ack();
        alert.dirty = true;
    }

    /// Whether a silence covers `alert` at `now_ms`.
    pub(crate) fn silenced(&self, alert: &Alert, now_ms: i64) -> bool {
        self.silences.iter().any(|s| s.matches(&alert.identity, now_ms))
    }

    /// The alerts changed since the last call, to store; ids come back through [`Engine::set_id`].
    pub fn take_dirty(&mut self) -> Vec<Alert> {
        let mut out = Vec::new();
        for a in self.alerts.values_mut().filter(|a| a.dirty) {
            out.push(a.clone());
            a.dirty = false;
            a.ack_cleared = false;
        }
        out
    }

    pub fn set_id(&mut self, identity: &Identity, id: i64) {
        if let Some(a) = self.alerts.get_mut(identity) {
            a.id = id;
        }
    }
}

/// Whether `alert`'s condition was held up to date at `now_ms` (by `hold` in this round).
fn findings_hold(alert: &Alert, now_ms: i64) -> bool {
    alert.seen_ms == now_ms
}

/// The level of an active numeric alert at `value`: its hysteresis, from its severity.
fn hysteresis(thresholds: Thresholds, value: f64, active: Level) -> Option<Level> {
    thresholds.level_with_hysteresis(value, Some(active))
}

/// Counts a firing/resolved change for flap detection.
fn record_change(alert: &mut Alert, settings: &Settings, now_ms: i64) {
    let window = ms(settings.flap_window);
    alert.changes.retain(|t| now_ms - t < window);
    alert.changes.push(now_ms);
    if !alert.flapping && alert.changes.len() >= settings.flap_changes {
        alert.flapping = true;
        alert.flap_notified = false;
    }
}
