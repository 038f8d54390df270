//! Numbers for people.

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn opt_bytes(n: Option<u64>) -> String {
    n.map(bytes).unwrap_or_else(|| "–".into())
}

/// The same percentage the status rules use.
pub use recorder::status::pct;

pub fn opt_f(v: Option<f64>, decimals: usize) -> String {
    v.map(|v| format!("{v:.decimals$}")).unwrap_or_else(|| "–".into())
}

/// Milliseconds ago → "5 s ago", "3 min ago", "2 h ago", "4 d ago".
pub fn ago(then_ms: Option<i64>, now_ms: i64) -> String {
    let Some(then) = then_ms else { return "never".into() };
    let s = ((now_ms - then) / 1000).max(0);
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// Seconds → "3 d 4 h", "5 h 12 min", "7 min".
pub fn duration(secs: Option<u64>) -> String {
    let Some(s) = secs else { return "–".into() };
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else {
        format!("{m} min")
    }
}

/// `value` percent-encoded for a query string: every byte but the unreserved ones.
pub fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 30), "64.0 GiB");
        assert_eq!(ago(Some(0), 5_000), "5 s ago");
        assert_eq!(ago(Some(0), 7_200_000), "2 h ago");
        assert_eq!(ago(None, 1), "never");
        assert_eq!(duration(Some(90_061)), "1 d 1 h");
        assert_eq!(pct(Some(1), Some(4)), Some(25.0));
        assert_eq!(pct(Some(1), Some(0)), None);
        assert_eq!(query_value("web 01&x=é"), "web%2001%26x%3D%C3%A9");
    }
}
