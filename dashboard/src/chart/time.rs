//! Timestamps as chart labels. Everything is UTC: the server does not know the viewer's
//! time zone without JavaScript, and UTC is the same for every viewer of a shared link.

pub const MINUTE: i64 = 60_000;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// A UTC calendar date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
}

impl Civil {
    pub fn from_ms(ts_ms: i64) -> Civil {
        let days = ts_ms.div_euclid(DAY);
        let in_day = ts_ms.rem_euclid(DAY);
        let (year, month, day) = civil_from_days(days);
        Civil { year, month, day, hour: (in_day / HOUR) as u32, minute: (in_day % HOUR / MINUTE) as u32 }
    }
}

/// "14:05".
pub fn hour_minute(ts_ms: i64) -> String {
    let c = Civil::from_ms(ts_ms);
    format!("{:02}:{:02}", c.hour, c.minute)
}

/// "3 Mar".
pub fn day_month(ts_ms: i64) -> String {
    let c = Civil::from_ms(ts_ms);
    format!("{} {}", c.day, MONTHS[c.month as usize - 1])
}

/// "2025-03-03 14:05" (no zone: the caller says UTC once).
pub fn date_time(ts_ms: i64) -> String {
    let c = Civil::from_ms(ts_ms);
    format!("{}-{:02}-{:02} {:02}:{:02}", c.year, c.month, c.day, c.hour, c.minute)
}

/// "2025-03-03 14:05 UTC", or a span "2025-03-03 14:05–14:35 UTC" (the date once when
/// both ends share it).
pub fn span(first_ms: i64, last_ms: i64) -> String {
    if first_ms == last_ms {
        format!("{} UTC", date_time(first_ms))
    } else if first_ms.div_euclid(DAY) == last_ms.div_euclid(DAY) {
        format!("{}–{} UTC", date_time(first_ms), hour_minute(last_ms))
    } else {
        format!("{} – {} UTC", date_time(first_ms), date_time(last_ms))
    }
}

pub use wire::civil_from_days;

/// (year, month, day) → days since 1970-01-01 (Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
