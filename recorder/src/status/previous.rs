//! What the rules keep of a host's samples before the latest ones, to see error counts
//! grow and guests stop. A summary, not the payloads: a host's state is read (decoded) on
//! every card and alerting round, and two more payloads to decode would double that.

use wire::{AtaHealth, Disk, GuestStatus, Medium, Slow};

use super::guests::guests;

/// Of the medium sample before the latest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreviousMedium {
    /// Each pool's read, write and checksum errors together ([`wire::Pool::vdev_errors`]).
    pub pool_errors: Vec<(String, u64)>,
    /// The guests (`vm/101`, `ct/105`) that were running with no lock.
    pub running: Vec<String>,
}

impl PreviousMedium {
    pub fn of(medium: &Medium) -> PreviousMedium {
        let unlocked_running = |g: &wire::Guest| g.status == GuestStatus::Running && g.lock.is_none();
        PreviousMedium {
            pool_errors: medium.pools.iter().flatten().map(|p| (p.name.clone(), p.vdev_errors())).collect(),
            running: guests(medium).filter(|(_, g)| unlocked_running(g)).map(|(subject, _)| subject).collect(),
        }
    }

    pub fn pool_errors(&self, pool: &str) -> Option<u64> {
        self.pool_errors.iter().find(|(name, _)| name == pool).map(|(_, errors)| *errors)
    }

    pub fn was_running(&self, subject: &str) -> bool {
        self.running.iter().any(|s| s == subject)
    }
}

/// Of the slow sample before the latest: each disk's error counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreviousSlow {
    pub disks: Vec<DiskCounters>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskCounters {
    pub name: String,
    pub serial: Option<String>,
    /// Reallocated and pending sectors, among others.
    pub ata: Option<AtaHealth>,
    pub media_errors: Option<u64>,
}

impl PreviousSlow {
    pub fn of(slow: &Slow) -> PreviousSlow {
        let counters = |d: &Disk| DiskCounters {
            name: d.name.clone(),
            serial: d.serial.clone(),
            ata: d.ata.clone(),
            media_errors: d.nvme.as_ref().and_then(|n| n.media_errors),
        };
        PreviousSlow { disks: slow.disks.iter().flatten().map(counters).collect() }
    }

    /// The same disk: by serial when it has one, else by name.
    pub fn same_disk(&self, disk: &Disk) -> Option<&DiskCounters> {
        match &disk.serial {
            Some(serial) => self.disks.iter().find(|d| d.serial.as_ref() == Some(serial)),
            None => self.disks.iter().find(|d| d.name == disk.name),
        }
    }
}
