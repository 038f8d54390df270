//! A guest's backup as the host page and fleet search show it: its last backup (time,
//! result), "not covered" when no enabled job backs it up, and whether it counts as "not
//! backed up" (fleet search's `backup=missing`). Pure: a host's state in, text out.

use std::collections::HashSet;

use recorder::state::Decoded;
use recorder::status::Rule;
use wire::{Backups, Coverage, Medium};

use crate::format::ago;

/// The subjects (`vm/101`) with a `backup_failed` or `backup_age` finding: the same rules
/// that colour the card and raise the alerts.
pub fn flagged(host: &Decoded, now_ms: i64) -> HashSet<String> {
    host.findings(now_ms)
        .into_iter()
        .filter(|f| matches!(f.rule, Rule::BackupFailed | Rule::BackupAge))
        .filter_map(|f| f.subject)
        .collect()
}

/// The host's backups section, if its agent sent one.
pub fn of(medium: Option<&Medium>) -> Option<&Backups> {
    medium.and_then(|m| m.backups.as_ref())
}

/// The backup cell of guest `vmid`: "ok, 5 h ago", "FAILED 2 h ago: why", "not covered",
/// "none seen since 10 d ago", or "–" when the agent sent no backups.
pub fn cell(backups: Option<&Backups>, vmid: u32, now_ms: i64) -> String {
    let Some(b) = backups else { return "–".into() };
    let when = |s: i64| ago(Some(s * 1000), now_ms);
    let coverage = b.coverage(vmid);
    let last = match b.guest(vmid) {
        Some(g) if g.ok => format!("ok, {}", when(g.end)),
        Some(g) => {
            let why = g.error.as_deref().unwrap_or("failed");
            let before = g.last_ok.map_or_else(String::new, |t| format!(" (last ok {})", when(t)));
            format!("FAILED {}: {why}{before}", when(g.end))
        }
        None => format!("none seen since {}", when(b.since)),
    };
    match coverage {
        Coverage::Yes => last,
        Coverage::Unknown => format!("{last}; in no job unless in its pool job"),
        Coverage::No => format!("not covered ({last})"),
    }
}

/// Not backed up: in no enabled job, or flagged by the backup rules. A guest that only a
/// pool job might cover, or of a host whose agent sent no backups, is not counted.
pub fn missing(backups: Option<&Backups>, vmid: u32, flagged: bool) -> bool {
    backups.is_some_and(|b| flagged || b.coverage(vmid) == Coverage::No)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::{BackupJob, GuestBackup};

    const NOW: i64 = 1_789_912_000_000;

    #[test]
    fn each_guest_gets_its_last_backup_or_why_it_has_none() {
        let b = Backups {
            jobs: vec![
                BackupJob {
                    id: "j".into(),
                    schedule: "daily".into(),
                    vmids: vec![100, 101, 102],
                    ..Default::default()
                },
                BackupJob { id: "p".into(), schedule: "daily".into(), pool: Some("prod".into()), ..Default::default() },
            ],
            guests: vec![
                GuestBackup { vmid: 100, end: NOW / 1000 - 5 * 3600, ok: true, error: None, last_ok: None },
                GuestBackup {
                    vmid: 101,
                    end: NOW / 1000 - 7200,
                    ok: false,
                    error: Some("got timeout".into()),
                    last_ok: Some(NOW / 1000 - 2 * 86_400),
                },
            ],
            since: NOW / 1000 - 10 * 86_400,
        };
        assert_eq!(cell(Some(&b), 100, NOW), "ok, 5 h ago");
        assert_eq!(cell(Some(&b), 101, NOW), "FAILED 2 h ago: got timeout (last ok 2 d ago)");
        assert_eq!(cell(Some(&b), 102, NOW), "none seen since 10 d ago");
        assert_eq!(cell(Some(&b), 103, NOW), "none seen since 10 d ago; in no job unless in its pool job");
        assert_eq!(cell(None, 100, NOW), "–");
        let no_pool = Backups { jobs: vec![b.jobs[0].clone()], ..b.clone() };
        assert_eq!(cell(Some(&no_pool), 103, NOW), "not covered (none seen since 10 d ago)");
        assert!(missing(Some(&no_pool), 103, false));
        assert!(!missing(Some(&b), 103, false), "a pool job may cover it");
        assert!(missing(Some(&b), 101, true));
        assert!(!missing(Some(&b), 100, false));
        assert!(!missing(None, 100, true), "nothing is known without the section");
    }
}
