//! The host page's `?range=` choices.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How far back a chart looks, as the host page offers it in its `?range=` links.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Range {
    Hour,
    SixHours,
    /// The default: what the host page shows without `?range=`.
    #[default]
    Day,
    TwoDays,
    Week,
    Month,
    Year,
}

/// A `?range=` value that is not one of [`Range::ALL`]; the page answers 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown range {given:?}, expected one of 1h, 6h, 24h, 48h, 7d, 30d, 1y")]
pub struct UnknownRangeError {
    /// What the query string held, cut to 16 characters so the message stays short.
    pub given: String,
}

impl Range {
    /// Every range, shortest first, in the order the links are shown.
    pub const ALL: [Range; 7] =
        [Range::Hour, Range::SixHours, Range::Day, Range::TwoDays, Range::Week, Range::Month, Range::Year];

    /// The query string value: "1h", "6h", "24h", "48h", "7d", "30d", "1y".
    pub const fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::SixHours => "6h",
            Range::Day => "24h",
            Range::TwoDays => "48h",
            Range::Week => "7d",
            Range::Month => "30d",
            Range::Year => "1y",
        }
    }

    /// For people: "1 hour", "24 hours", "7 days", "1 year".
    pub const fn label(self) -> &'static str {
        match self {
            Range::Hour => "1 hour",
            Range::SixHours => "6 hours",
            Range::Day => "24 hours",
            Range::TwoDays => "48 hours",
            Range::Week => "7 days",
            Range::Month => "30 days",
            Range::Year => "1 year",
        }
    }

    /// A year is 365 days; a month is 30.
    pub const fn duration(self) -> Duration {
        const HOUR: u64 = 3600;
        Duration::from_secs(match self {
            Range::Hour => HOUR,
            Range::SixHours => 6 * HOUR,
            Range::Day => 24 * HOUR,
            Range::TwoDays => 48 * HOUR,
            Range::Week => 7 * 24 * HOUR,
            Range::Month => 30 * 24 * HOUR,
            Range::Year => 365 * 24 * HOUR,
        })
    }

    pub const fn duration_ms(self) -> i64 {
        self.duration().as_millis() as i64
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Range {
    type Err = UnknownRangeError;

    fn from_str(s: &str) -> Result<Range, UnknownRangeError> {
        Range::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRangeError { given: s.chars().take(16).collect() })
    }
}
