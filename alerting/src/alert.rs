//! An alert: its identity, its state, and what its receivers last heard of it.

use recorder::status::{Level, Rule};
use serde::Serialize;

/// What an alert is about; one row and one id per identity, reused when it fires again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Identity {
    pub host: String,
    pub rule: Rule,
    /// The pool, storage or guest; empty for the host itself.
    pub subject: String,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.rule)?;
        if !self.subject.is_empty() {
            write!(f, "/{}", self.subject)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The condition holds, for less than its rule's for-duration.
    Pending,
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [State::Pending, State::Firing, State::Resolved].into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_active(self) -> bool {
        self != State::Resolved
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The row id (`alert ack ID`); 0 until first stored.
    pub id: i64,
    pub identity: Identity,
    pub state: State,
    /// Warning, Critical or Offline.
    pub severity: Level,
    pub value: Option<f64>,
    pub message: String,
    /// When this episode's condition was first seen (pending included).
    pub started_ms: i64,
    /// The last state change.
    pub changed_ms: i64,
    /// Acknowledged: no re-notification until it resolves or gets worse.
    pub acked: bool,
    /// What the receivers last heard in this episode; None: nothing yet.
    pub notified_ms: Option<i64>,
    pub notified_severity: Option<Level>,
    pub notified_value: Option<f64>,
    pub resolved_notified: bool,
    /// Times of the recent firing/resolved changes, oldest first (flap detection).
    pub changes: Vec<i64>,
    pub flapping: bool,
    pub flap_notified: bool,
    /// Changed since last stored.
    #[serde(skip)]
    pub dirty: bool,
    /// The engine took the acknowledgement back (resolved or worse); the store must
    /// clear it even though the CLI may have set it meanwhile.
    #[serde(skip)]
    pub ack_cleared: bool,
    /// The round that last saw the condition hold (in memory only).
    #[serde(skip)]
    pub seen_ms: i64,
}

impl Alert {
    pub fn new(identity: Identity, severity: Level, value: Option<f64>, message: String, now_ms: i64) -> Alert {
        Alert {
            id: 0,
            identity,
            state: State::Pending,
            severity,
            value,
            message,
            started_ms: now_ms,
            changed_ms: now_ms,
            acked: false,
            notified_ms: None,
            notified_severity: None,
            notified_value: None,
            resolved_notified: false,
            changes: Vec::new(),
            flapping: false,
            flap_notified: false,
            dirty: true,
            ack_cleared: false,
            seen_ms: now_ms,
        }
    }

    /// Starts a new episode on this identity's row: pending again, nothing sent yet;
    /// unless the receivers never heard the last episode resolve (its resolution was still
    /// waiting for the group interval): to them it is still firing, so the new episode
    /// continues what they heard rather than being news again.
    pub fn restart(&mut self, severity: Level, value: Option<f64>, message: String, now_ms: i64) {
        let (id, changes, flapping, flap_notified) =
            (self.id, std::mem::take(&mut self.changes), self.flapping, self.flap_notified);
        let held = (self.notified_ms.is_some() && !self.resolved_notified).then_some((
            self.notified_ms,
            self.notified_severity,
            self.notified_value,
        ));
        *self = Alert::new(self.identity.clone(), severity, value, message, now_ms);
        self.id = id;
        self.changes = changes;
        self.flapping = flapping;
        self.flap_notified = flap_notified;
        self.ack_cleared = true;
        if let Some((ms, severity, value)) = held {
            (self.notified_ms, self.notified_severity, self.notified_value) = (ms, severity, value);
        }
    }

    pub fn clear_ack(&mut self) {
        if self.acked {
            self.acked = false;
            self.ack_cleared = true;
        }
    }

    /// Whether the current state is worse than what receivers last heard: a higher
    /// severity, or pool errors that grew again.
    pub fn worse_than_notified(&self) -> bool {
        let Some(notified) = self.notified_severity else { return false };
        if self.severity > notified {
            return true;
        }
        self.identity.rule == Rule::PoolErrors
            && matches!((self.value, self.notified_value), (Some(v), Some(n)) if v > n)
    }
}
