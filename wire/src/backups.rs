//! The medium tier's `backups` and `operator_stops` sections: vzdump backup jobs, each
//! guest's last backup, and the stops and shutdowns an operator asked for, all read from
//! the node's task list and `/cluster/backup`.

use serde::{Deserialize, Serialize};

/// The backup jobs that run on this node and the last backup of each guest the agent knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Backups {
    /// Enabled vzdump jobs whose `node` is unset or this node, at most [`Backups::JOBS_CAP`].
    pub jobs: Vec<BackupJob>,
    /// One entry per guest of this node with a backup task seen, by vmid, at most
    /// [`Backups::GUESTS_CAP`].
    pub guests: Vec<GuestBackup>,
    /// How far back the agent's knowledge reaches (Unix seconds): a guest with no entry has
    /// had no backup on this node since then.
    pub since: i64,
}

impl Backups {
    // The caps keep a medium payload within the broker's 256 KiB even at their worst
    // (about 150 KiB of backups); a real node's section is a few KiB (topics.md).
    pub const JOBS_CAP: usize = 32;
    pub const GUESTS_CAP: usize = 512;
    /// Vmids listed per job (`vmids`, `exclude`).
    pub const VMIDS_CAP: usize = 128;
    /// Characters kept of a failure's message.
    pub const ERROR_CAP: usize = 120;

    /// The last backup known for `vmid`.
    pub fn guest(&self, vmid: u32) -> Option<&GuestBackup> {
        self.guests.iter().find(|g| g.vmid == vmid)
    }

    /// The enabled jobs that back up `vmid`.
    pub fn jobs_covering(&self, vmid: u32) -> impl Iterator<Item = &BackupJob> {
        self.jobs.iter().filter(move |j| j.covers(vmid) == Coverage::Yes)
    }

    /// Whether any enabled job backs up `vmid`: `Unknown` when none names it but a job
    /// selects a pool whose members the agent could not read.
    pub fn coverage(&self, vmid: u32) -> Coverage {
        self.jobs.iter().map(|j| j.covers(vmid)).max().unwrap_or(Coverage::No)
    }
}

/// Whether a job backs up a guest. Ordered so that the best answer of several jobs is the
/// maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Coverage {
    No,
    Unknown,
    Yes,
}

/// One enabled vzdump job from `/cluster/backup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupJob {
    pub id: String,
    /// The job's calendar event (`daily`, `sat 02:00`, `mon..fri 21:00`); for a job in the
    /// pre-7.1 form, its `dow` and `starttime` as one (`mon,tue 02:00`).
    pub schedule: String,
    /// Every guest of the node but `exclude`.
    pub all: bool,
    /// The guests it names (when not `all`); for a pool job, the pool's guests as the agent
    /// read them (`pvesh get /pools/<pool>`).
    #[serde(default)]
    pub vmids: Vec<u32>,
    #[serde(default)]
    pub exclude: Vec<u32>,
    /// The pool whose guests it backs up.
    #[serde(default)]
    pub pool: Option<String>,
}

impl BackupJob {
    pub fn covers(&self, vmid: u32) -> Coverage {
        if self.all {
            return if self.exclude.contains(&vmid) { Coverage::No } else { Coverage::Yes };
        }
        if self.vmids.contains(&vmid) {
            Coverage::Yes
        } else if self.pool.is_some() && self.vmids.is_empty() {
            // A pool whose members the agent could not read (or an empty pool).
            Coverage::Unknown
        } else {
            Coverage::No
        }
    }
}

/// A guest's last backup task seen on this node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestBackup {
    pub vmid: u32,
    /// When the task that backed it up ended (Unix seconds). For a job of several guests,
    /// the job's end: the task list has no per-guest time.
    pub end: i64,
    /// False when the task or its log says this guest's backup failed.
    pub ok: bool,
    /// The failure, when `ok` is false (at most [`Backups::ERROR_CAP`] characters).
    #[serde(default)]
    pub error: Option<String>,
    /// When `ok` is false, the end of its last successful backup, if one is known (when
    /// `ok`, that is `end`, not repeated: see [`GuestBackup::last_success`]).
    #[serde(default)]
    pub last_ok: Option<i64>,
}

impl GuestBackup {
    /// The end of its last successful backup.
    pub fn last_success(&self) -> Option<i64> {
        if self.ok {
            Some(self.end)
        } else {
            self.last_ok
        }
    }
}

/// A stop, shutdown or suspend task an operator ran for a guest (`qmstop`, `qmshutdown`,
/// `qmsuspend`, `vzstop`, `vzshutdown`, `vzsuspend`), from the node's task list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorStop {
    pub vmid: u32,
    /// The task type.
    pub task: String,
    /// Who ran it (`root@pam`, `admin@pve!token`).
    pub user: String,
    /// When the task ended (Unix seconds).
    pub end: i64,
}

impl OperatorStop {
    /// The task types that stop or pause a guest on an operator's request.
    pub const TASKS: [&'static str; 6] = ["qmstop", "qmshutdown", "qmsuspend", "vzstop", "vzshutdown", "vzsuspend"];
    /// At most this many are sent.
    pub const CAP: usize = 64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_covers_what_it_names_or_all_but_its_exclusions() {
        let all = BackupJob { all: true, exclude: vec![105], ..BackupJob::default() };
        assert_eq!(all.covers(100), Coverage::Yes);
        assert_eq!(all.covers(105), Coverage::No);
        let named = BackupJob { vmids: vec![100, 101], ..BackupJob::default() };
        assert_eq!(named.covers(101), Coverage::Yes);
        assert_eq!(named.covers(102), Coverage::No);
        let pool = BackupJob { pool: Some("prod".into()), ..BackupJob::default() };
        assert_eq!(pool.covers(102), Coverage::Unknown);
        let read = BackupJob { pool: Some("prod".into()), vmids: vec![104], ..BackupJob::default() };
        assert_eq!((read.covers(104), read.covers(102)), (Coverage::Yes, Coverage::No), "members read");
        let backups = Backups { jobs: vec![named, pool], ..Backups::default() };
        assert_eq!(backups.coverage(100), Coverage::Yes);
        assert_eq!(backups.coverage(102), Coverage::Unknown);
        assert_eq!(Backups::default().coverage(100), Coverage::No);
    }
}
