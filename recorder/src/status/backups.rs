//! Rules about backups: a guest in an enabled backup job whose last backup failed, or whose
//! last successful one is older than the job's schedule allows.
//!
//! The allowed age comes from the job's calendar event ([`allowed_age_s`]): a job that runs
//! every day (or more often) allows the daily maximum, 36 h unless the operator sets
//! `BACKUP_MAX_AGE_HOURS`; one that runs on some weekdays allows the longest gap between two
//! of its days plus a day (weekly: 8 days, Mon–Fri: 4 days); one with a date allows 32
//! days. A guest in several jobs gets the shortest. A node without jobs gives no finding.

use std::sync::atomic::{AtomicI64, Ordering};

use wire::{Backups, Medium};

use super::guests::guests;
use super::{Facts, Finding, Level, Rule};

const HOUR_S: i64 = 3_600;
const DAY_S: i64 = 86_400;
/// A daily job's allowed age unless the operator sets another.
pub const DEFAULT_DAILY_BACKUP_MAX_AGE_S: i64 = 36 * HOUR_S;

static DAILY_MAX_AGE_S: AtomicI64 = AtomicI64::new(DEFAULT_DAILY_BACKUP_MAX_AGE_S);

/// Sets the allowed age of a daily job's backups (the server's `BACKUP_MAX_AGE_HOURS`), once
/// at startup, before any host is evaluated.
pub fn set_daily_backup_max_age_s(seconds: i64) {
    DAILY_MAX_AGE_S.store(seconds.max(HOUR_S), Ordering::Relaxed);
}

/// The allowed age of a daily job's backups, as set.
pub fn daily_backup_max_age_s() -> i64 {
    DAILY_MAX_AGE_S.load(Ordering::Relaxed)
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// How old a backup may get under a job with calendar event `schedule` (systemd-like, as
/// Proxmox writes them: `daily`, `sat 02:00`, `mon..fri 21:00`, `*-01 03:00`, `02:00`);
/// None for an event this does not understand (then only failures are reported).
pub fn allowed_age_s(schedule: &str, daily_s: i64) -> Option<i64> {
    let event = schedule.trim().to_ascii_lowercase();
    match event.as_str() {
        "" => return None,
        "minutely" | "hourly" | "daily" => return Some(daily_s),
        "weekly" => return Some(8 * DAY_S),
        "monthly" => return Some(32 * DAY_S),
        "quarterly" => return Some(93 * DAY_S),
        "semiannually" | "semi-annually" => return Some(184 * DAY_S),
        "yearly" | "annually" => return Some(367 * DAY_S),
        _ => {}
    }
    let mut tokens = event.split_whitespace().peekable();
    let days = match tokens.peek() {
        Some(t) if t.starts_with(|c: char| c.is_ascii_alphabetic()) => weekdays(tokens.next()?)?,
        _ => [true; 7],
    };
    // A date part (`*-01`, `2024-*-1..7`) means a run a month or more apart.
    if tokens.any(|t| t.contains('-')) {
        return Some(32 * DAY_S);
    }
    let gap = longest_gap_days(&days)?;
    Some(if gap <= 1 { daily_s } else { gap * DAY_S + DAY_S })
}

/// The days of a weekday list such as `mon,wed`, `mon..fri` or `sat,sun`.
fn weekdays(spec: &str) -> Option<[bool; 7]> {
    let index = |name: &str| WEEKDAYS.iter().position(|d| name.starts_with(d));
    let mut days = [false; 7];
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        match part.split_once("..") {
            Some((from, to)) => {
                let (from, to) = (index(from)?, index(to)?);
                let mut d = from;
                loop {
                    days[d] = true;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[index(part)?] = true,
        }
    }
    Some(days)
}

/// The most days from one run day to the next, round the week; None for no day.
fn longest_gap_days(days: &[bool; 7]) -> Option<i64> {
    let on: Vec<usize> = (0..7).filter(|d| days[*d]).collect();
    let first = *on.first()?;
    let gaps = on.windows(2).map(|w| w[1] - w[0]);
    let around = 7 - on[on.len() - 1] + first;
    gaps.chain([around]).max().map(|g| g as i64)
}

/// Every guest covered by an enabled job: a failed last backup, a successful one too old.
pub(super) fn backups(f: &Facts, medium: &Medium, out: &mut Vec<Finding>) {
    let Some(b) = &medium.backups else { return };
    let now_s = f.now_ms / 1000;
    for (subject, guest) in guests(medium) {
        let jobs: Vec<_> = b.jobs_covering(guest.vmid).collect();
        if jobs.is_empty() {
            continue;
        }
        let last = b.guest(guest.vmid);
        let what = format!("guest {subject} ({})", guest.name);
        if let Some(failed) = last.filter(|l| !l.ok) {
            let why = failed.error.as_deref().unwrap_or("failed");
            let message = format!("{what}: last backup failed: {why}");
            out.push(Finding::new(Rule::BackupFailed, Some(&subject), Level::Warning, None, message));
        }
        let allowed = jobs.iter().filter_map(|j| allowed_age_s(&j.schedule, f.daily_backup_max_age_s).map(|a| (a, j)));
        let Some((allowed, job)) = allowed.min_by_key(|(a, _)| *a) else { continue };
        if let Some(message) = too_old(b, guest.vmid, now_s, allowed) {
            let age_h = (now_s - last_success_or_since(b, guest.vmid)) as f64 / HOUR_S as f64;
            let message = format!("{what}: {message}; job {} ({}) allows {}", job.id, job.schedule, span(allowed));
            out.push(Finding::new(Rule::BackupAge, Some(&subject), Level::Warning, Some(age_h.round()), message));
        }
    }
}

fn last_success_or_since(b: &Backups, vmid: u32) -> i64 {
    b.guest(vmid).and_then(|g| g.last_success()).unwrap_or(b.since)
}

/// Why the guest's last successful backup is too old, if it is.
fn too_old(b: &Backups, vmid: u32, now_s: i64, allowed: i64) -> Option<String> {
    let age = now_s - last_success_or_since(b, vmid);
    if age <= allowed {
        return None;
    }
    Some(match b.guest(vmid).and_then(|g| g.last_success()) {
        Some(_) => format!("last successful backup {} ago", span(age)),
        None => format!("no successful backup in the last {}", span(age)),
    })
}

/// `36 h` below three days, `8 days` from there.
fn span(seconds: i64) -> String {
    if seconds < 3 * DAY_S {
        format!("{} h", seconds / HOUR_S)
    } else {
        format!("{} days", seconds / DAY_S)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAILY: i64 = DEFAULT_DAILY_BACKUP_MAX_AGE_S;

    #[test]
    fn the_allowed_age_follows_the_calendar_event() {
        for daily in ["daily", "hourly", "02:00", "21:00", "*/15", "0/6:00", "mon..sun 01:30", "DAILY"] {
            assert_eq!(allowed_age_s(daily, DAILY), Some(DAILY), "{daily}");
        }
        assert_eq!(allowed_age_s("daily", 48 * HOUR_S), Some(48 * HOUR_S), "the operator's setting");
        for weekly in ["weekly", "sat 02:00", "sun", "Saturday 03:00"] {
            assert_eq!(allowed_age_s(weekly, DAILY), Some(8 * DAY_S), "{weekly}");
        }
        assert_eq!(allowed_age_s("mon..fri 21:00", DAILY), Some(4 * DAY_S), "friday to monday");
        assert_eq!(allowed_age_s("mon,wed,fri 23:30", DAILY), Some(4 * DAY_S));
        assert_eq!(allowed_age_s("fri..mon", DAILY), Some(5 * DAY_S), "a range round the week end");
        assert_eq!(allowed_age_s("monthly", DAILY), Some(32 * DAY_S));
        assert_eq!(allowed_age_s("*-01 03:00", DAILY), Some(32 * DAY_S));
        assert_eq!(allowed_age_s("sat *-1..7 02:00", DAILY), Some(32 * DAY_S));
        assert_eq!(allowed_age_s("", DAILY), None);
        assert_eq!(allowed_age_s("someday 02:00", DAILY), None);
    }
}
