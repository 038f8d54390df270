//! The agent's ZFS parsers: `zpool status` (text and JSON), `zpool list` and
//! `zfs list -t snapshot`, and the merge of the first two.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxmox_monitor_agent::collect::zpool_status::{json, text};
use proxmox_monitor_agent::collect::{snapshots, zpool_list};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let mut pools = text::parse(&input).unwrap_or_default();
    pools.extend(json::parse(&input).unwrap_or_default());
    if let Ok(rows) = zpool_list::parse(&input) {
        zpool_list::merge(&mut pools, rows);
    }
    for pool in &pools {
        let _ = (pool.vdev_errors(), pool.vdev_errors_by_type());
    }
    let _ = text::parse_scan(&input);
    let _ = text::parse_ctime(&input);
    let _ = snapshots::parse(&input);
});
