//! The demo's backups: one nightly job (21:00) of every guest of a host, each guest backed
//! up at the last 21:00 before the sample, one after the other; on every fourth host the
//! last guest is excluded from the job, so the host page shows "not covered" and search's
//! "not backed up" finds it. No backup fails: the demo's warnings stay the ones of its
//! pools and disks.

use wire::{BackupJob, Backups, GuestBackup};

const MIN_S: i64 = 60;
const HOUR_S: i64 = 3_600;
const DAY_S: i64 = 86_400;

/// The backups section of host `index` at `t_ms`, for its guests `vmids`.
pub fn at(t_ms: i64, index: usize, vmids: &[u32]) -> Backups {
    let t = t_ms / 1000;
    let mut start = t - t.rem_euclid(DAY_S) + 21 * HOUR_S;
    if start + (vmids.len() as i64 + 1) * 4 * MIN_S > t {
        start -= DAY_S;
    }
    let excluded = (index % 4 == 0).then(|| vmids.last().copied()).flatten();
    let guests = vmids
        .iter()
        .enumerate()
        .filter(|(_, v)| Some(**v) != excluded)
        .map(|(i, &vmid)| GuestBackup {
            vmid,
            end: start + (i as i64 + 1) * 4 * MIN_S,
            ok: true,
            ..GuestBackup::default()
        })
        .collect();
    let job = BackupJob {
        id: "backup-nightly".into(),
        schedule: "21:00".into(),
        all: true,
        exclude: excluded.into_iter().collect(),
        ..BackupJob::default()
    };
    Backups { jobs: vec![job], guests, since: t - 10 * DAY_S }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guest_was_backed_up_at_the_last_nightly_job_but_the_excluded_one() {
        // 2025-11-25 10:00 UTC: the last job was the evening before.
        let t = 1_764_064_800;
        let b = at(t * 1000, 4, &[100, 101, 102]);
        assert_eq!(b.jobs[0].exclude, [102]);
        let ends: Vec<(u32, i64)> = b.guests.iter().map(|g| (g.vmid, t - g.end)).collect();
        assert_eq!(ends, [(100, 13 * HOUR_S - 4 * MIN_S), (101, 13 * HOUR_S - 8 * MIN_S)]);
        assert!(at(t * 1000, 1, &[100, 101, 102]).jobs[0].exclude.is_empty());
    }
}
