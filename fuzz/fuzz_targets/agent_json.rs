//! The agent's parsers of `pvesh` JSON (storages, VMs, containers), of `smartctl` JSON with
//! any exit status, and of the version commands.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxmox_monitor_agent::collect::{guests, smart, storage, versions};

fuzz_target!(|data: &[u8]| {
    let Some((&status, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let _ = storage::parse(&text);
    let _ = guests::parse(&text);
    let entries = smart::parse_scan(&text).unwrap_or_default();
    let sda =
        smart::ScanEntry { path: "/dev/sda".into(), kind: "sat".into(), protocol: "ATA".into(), open_error: None };
    for entry in entries.iter().chain([&sda]) {
        let _ = (entry.name(), entry.args());
        let _ = smart::parse_disk(entry, Some(i32::from(status)), &text);
    }
    let _ = versions::parse_pveversion(&text);
    let _ = versions::parse_zfs_version(&text);
    let _ = versions::parse_one_line(&text);
});
