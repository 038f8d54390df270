//! Silences: no notification for matching alerts until the end time.

use serde::Serialize;

use crate::alert::Identity;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Silence {
    pub id: i64,
    pub host: String,
    /// None matches every rule (subject).
    pub rule: Option<String>,
    pub subject: Option<String>,
    pub ends_ms: i64,
    pub comment: String,
}

impl Silence {
    pub fn matches(&self, alert: &Identity, now_ms: i64) -> bool {
        now_ms < self.ends_ms
            && self.host == alert.host
            && self.rule.as_ref().is_none_or(|r| r == alert.rule.as_str())
            && self.subject.as_ref().is_none_or(|s| *s == alert.subject)
    }
}

/// Parses `90s`, `30m`, `2h`, `7d` (or a sum such as `1h30m`) into milliseconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            _ => return None,
        };
        let n: i64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
    }
    (number.is_empty() && total > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recorder::status::Rule;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h"), Some(7_200_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("90s"), Some(90_000));
        assert_eq!(parse_duration("2"), None);
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("2w"), None);
    }

    #[test]
    fn matching() {
        let id = Identity { host: "pve1".into(), rule: Rule::PoolState, subject: "rpool".into() };
        let s = Silence { id: 1, host: "pve1".into(), rule: None, subject: None, ends_ms: 100, comment: String::new() };
        assert!(s.matches(&id, 99));
        assert!(!s.matches(&id, 100), "ended");
        let other_rule = Silence { rule: Some("pool_capacity".into()), ..s.clone() };
        assert!(!other_rule.matches(&id, 0));
        let this_subject = Silence { rule: Some("pool_state".into()), subject: Some("rpool".into()), ..s };
        assert!(this_subject.matches(&id, 0));
    }
}
