//! Rules about guests (VMs and containers): one that stopped when nothing explains it.
//!
//! Explanations: a lock (backup, migrate, snapshot) on either sample, or an operator's
//! stop, shutdown or suspend task for that guest (`medium.operator_stops`) that ended
//! between the two medium samples, give or take [`OPERATOR_STOP_SLACK_S`].

use wire::{Guest, GuestStatus, Medium, OperatorStop};

use super::{Facts, Finding, Level, Rule};

/// Slack around the two samples' times for an operator's stop task: the task's end is on
/// the agent's clock, and a shutdown can end just after the sample that saw it stopped.
pub const OPERATOR_STOP_SLACK_S: i64 = 60;
/// Without the previous sample's time, a stop this recent still explains the stop.
const OPERATOR_STOP_FALLBACK_S: i64 = 30 * 60;

/// Every guest of `medium` with its subject (`vm/<vmid>` or `ct/<vmid>`).
pub fn guests(medium: &Medium) -> impl Iterator<Item = (String, &Guest)> {
    let vms = medium.vms.iter().flatten().map(|g| (format!("vm/{}", g.vmid), g));
    let cts = medium.cts.iter().flatten().map(|g| (format!("ct/{}", g.vmid), g));
    vms.chain(cts)
}

/// Whether the guest `subject` is in `medium` and not running: what keeps a
/// [`Rule::GuestStopped`] alert active after the stop itself is no longer news.
pub fn guest_still_stopped(medium: &Medium, subject: &str) -> bool {
    guests(medium).any(|(s, g)| s == subject && g.status != GuestStatus::Running)
}

/// A guest that was running in the previous medium sample and is stopped now.
pub(super) fn stopped(f: &Facts, medium: &Medium, out: &mut Vec<Finding>) {
    let Some(previous) = f.previous_medium else { return };
    for (subject, guest) in guests(medium) {
        // A lock (backup, migrate, snapshot) on either side explains the stop.
        let unexpected = guest.status == GuestStatus::Stopped
            && guest.lock.is_none()
            && previous.was_running(&subject)
            && operator_stop(f, medium, guest.vmid).is_none();
        if unexpected {
            let message = format!("guest {subject} ({}) stopped", guest.name);
            out.push(Finding::new(Rule::GuestStopped, Some(&subject), Level::Warning, None, message));
        }
    }
}

/// An operator's stop task for `vmid` that ended between the previous medium sample and
/// this one.
fn operator_stop<'a>(f: &Facts, medium: &'a Medium, vmid: u32) -> Option<&'a OperatorStop> {
    let now_s = f.medium_ts_ms.unwrap_or(f.now_ms) / 1000;
    let from = f.previous_medium_ts_ms.map_or(now_s - OPERATOR_STOP_FALLBACK_S, |t| t / 1000);
    // Task times are on the agent's clock: bring them to the server's.
    let skew_s = f.clock_skew_ms.unwrap_or(0) / 1000;
    medium.operator_stops.iter().flatten().find(|s| {
        let end = s.end - skew_s;
        s.vmid == vmid && end >= from - OPERATOR_STOP_SLACK_S && end <= now_s + OPERATOR_STOP_SLACK_S
    })
}
