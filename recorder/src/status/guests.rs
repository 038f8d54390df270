//! Rules about guests (VMs and containers): one that stopped when nothing explains it.

use wire::{Guest, GuestStatus, Medium};

use super::{Facts, Finding, Level, Rule};

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
        let before = guests(previous).find(|(s, _)| *s == subject).map(|(_, g)| g);
        // A lock (backup, migrate, snapshot) on either side explains the stop.
        let unexpected = guest.status == GuestStatus::Stopped
            && guest.lock.is_none()
            && before.is_some_and(|b| b.status == GuestStatus::Running && b.lock.is_none());
        if unexpected {
            let message = format!("guest {subject} ({}) stopped", guest.name);
            out.push(Finding::new(Rule::GuestStopped, Some(&subject), Level::Warning, None, message));
        }
    }
}
