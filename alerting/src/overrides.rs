//! Per-rule settings an operator changed: a rule disabled, or its numbers (trigger,
//! critical, clear, pending duration) changed, for everyone, for one host, or for one
//! subject on a host. The resolution lives with the status rules
//! (`recorder::status::limits`), which judge with the same numbers, so a card and an
//! alert never disagree; the engine adds the pending duration and the hysteresis.

pub use recorder::status::limits::{Effective, Override, OverrideError, Overrides, Scope};

use crate::alert::Identity;

impl Identity {
    /// What the overrides set for this alert.
    pub fn effective(&self, overrides: &Overrides) -> Effective {
        overrides.resolve(&self.host, self.rule, &self.subject)
    }
}

/// A pending duration as the CLI and the admin page take it: `0s` (fire at once), `90s`,
/// `5m`, `1h30m`; in milliseconds.
pub fn parse_pending(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.trim_end_matches(['s', 'm', 'h', 'd']).chars().all(|c| c == '0') {
        return Some(0);
    }
    crate::silence::parse_duration(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_durations_take_zero() {
        assert_eq!(parse_pending("0s"), Some(0));
        assert_eq!(parse_pending("0"), Some(0));
        assert_eq!(parse_pending("5m"), Some(300_000));
        assert_eq!(parse_pending(""), None);
        assert_eq!(parse_pending("soon"), None);
    }
}
