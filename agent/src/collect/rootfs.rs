//! The root filesystem's size and use from `statvfs(2)`, as pve-manager's node status computes
//! them: `df('/', 1)` of Filesys::Df (0.92, `Df.pm`), whose `blocks` is `f_blocks × f_frsize`
//! and whose `used` is `blocks - bfree` (so blocks reserved for root count as free, not used).

use std::io;
use std::path::Path;

/// Bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub total: u64,
    pub used: u64,
}

/// `statvfs` of `path`: a system call, no child process and no file to parse.
pub fn read(path: &Path) -> io::Result<Usage> {
    let s = rustix::fs::statvfs(path)?;
    Ok(usage(s.f_frsize, s.f_blocks, s.f_bfree))
}

/// Pure, for tests: fragment size, total and free fragments.
pub fn usage(frsize: u64, blocks: u64, bfree: u64) -> Usage {
    let total = blocks.saturating_mul(frsize);
    Usage { total, used: total.saturating_sub(bfree.saturating_mul(frsize)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_counts_reserved_blocks_as_free() {
        // 4 KiB fragments, 1000 in all, 300 free (of which some reserved for root).
        assert_eq!(usage(4096, 1000, 300), Usage { total: 4_096_000, used: 2_867_200 });
    }

    #[test]
    fn reads_a_real_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let u = read(dir.path()).unwrap();
        assert!(u.total > 0 && u.used <= u.total, "{u:?}");
        assert!(read(&dir.path().join("missing")).is_err());
    }
}
