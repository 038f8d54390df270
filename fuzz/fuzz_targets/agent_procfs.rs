//! The agent's `/proc` parsers, each on the same text (read as the agent reads files: UTF-8,
//! here lossily so that every input reaches them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxmox_monitor_agent::collect::{arcstats, diskstats, loadavg, meminfo, net_dev, proc_stat, uptime};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = meminfo::parse(&text);
    if let (Ok(a), Ok(b)) = (proc_stat::parse(&text), proc_stat::parse(&text.replacen("cpu ", "cpu  1 ", 1))) {
        let _ = proc_stat::usage(a, b);
    }
    let _ = loadavg::parse(&text);
    let _ = uptime::parse(&text);
    let _ = arcstats::parse(&text);
    if let Ok(ifaces) = net_dev::parse(&text) {
        let prev = ifaces.iter().map(|(n, c)| (n.clone(), *c)).collect();
        let now: Vec<_> = ifaces.into_iter().map(|(n, c)| (n, wire::NetKind::Physical, c)).collect();
        let _ = net_dev::rates(&prev, &now, 0.5);
    }
    if let Ok(disks) = diskstats::parse(&text) {
        let prev = disks.iter().map(|(n, ..)| (n.clone(), diskstats::Counters::default())).collect();
        let _ = diskstats::rates(&prev, &disks, 0.5);
    }
});
