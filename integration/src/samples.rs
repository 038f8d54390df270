//! Realistic validated samples for the benchmarks, built as an agent would send them.

use recorder::ingest::{parse, Item};
use wire::now_ms;
use wire::{Guest, Medium, Payload, Pool, Scan, Storage, Vdev, SCHEMA_VERSION};

/// A fast payload of a 16-core host.
pub fn fast(host: &str, seq: u64, ts_ms: i64) -> Item {
    let json = format!(
        r#"{{"schema":1,"host_id":"{host}","ts_ms":{ts_ms},"boot_id":"bench","seq":{seq},"agent_version":"bench","data":{{"cpus":16,"load1":0.42,"load5":0.37,"load15":0.31,"cpu_pct":7.5,"iowait_pct":0.4,"mem_total":67350102016,"mem_used":26536796160,"arc_bytes":8589934592,"swap_total":8589930496,"swap_used":0,"rootfs_total":100861726720,"rootfs_used":12315713536,"uptime_s":1218237}}}}"#
    );
    parse(format!("pmon/v1/{host}/fast").as_bytes(), json.as_bytes(), now_ms()).unwrap()
}

/// A medium payload of a typical host: 2 pools (mirror of 2), 4 storages, 10 VMs, 5 CTs.
pub fn medium(host: &str, seq: u64, ts_ms: i64) -> Item {
    let disk = |n: &str| Vdev { name: n.into(), depth: 1, state: "ONLINE".into(), ..Vdev::default() };
    let pool = |n: &str| Pool {
        name: n.into(),
        state: "ONLINE".into(),
        size: Some(1 << 40),
        alloc: Some(1 << 39),
        free: Some(1 << 39),
        frag_pct: Some(12.0),
        cap_pct: Some(50.0),
        dedup_ratio: Some(1.0),
        vdevs: vec![
            Vdev { name: "mirror-0".into(), state: "ONLINE".into(), ..Vdev::default() },
            disk("sda3"),
            disk("sdb3"),
        ],
        scan: Some(Scan {
            function: "SCRUB".into(),
            state: "FINISHED".into(),
            start: Some(1),
            end: Some(2),
            errors: 0,
        }),
        ..Pool::default()
    };
    let storage = |n: &str| Storage {
        name: n.into(),
        kind: "dir".into(),
        active: true,
        enabled: true,
        total: Some(1 << 40),
        used: Some(1 << 38),
        avail: Some(1 << 39),
        content: "images".into(),
        shared: false,
    };
    let guest = |id: u32| Guest {
        vmid: id,
        name: format!("guest-{id}"),
        status: "running".into(),
        cpu: Some(0.05),
        cpus: Some(4.0),
        mem: Some(1 << 31),
        maxmem: Some(1 << 32),
        disk: Some(0),
        maxdisk: Some(1 << 35),
        uptime_s: Some(86_400),
        tags: vec!["prod".into()],
        lock: None,
    };
    let payload = Payload {
        schema: SCHEMA_VERSION,
        host_id: host.into(),
        ts_ms,
        boot_id: "bench".into(),
        seq,
        agent_version: "bench".into(),
        dropped: 0,
        errors: Default::default(),
        data: Medium {
            pools: Some(vec![pool("rpool"), pool("tank")]),
            storages: Some(["local", "local-zfs", "nfs-backup", "pbs"].iter().map(|n| storage(n)).collect()),
            vms: Some((100..110).map(guest).collect()),
            cts: Some((200..205).map(guest).collect()),
            ..Medium::default()
        },
    };
    let json = serde_json::to_vec(&payload).unwrap();
    parse(format!("pmon/v1/{host}/medium").as_bytes(), &json, now_ms()).unwrap()
}
