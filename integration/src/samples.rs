//! Realistic validated samples for the benchmarks, built as an agent would send them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use recorder::ingest::{parse, Item};
use recorder::writer::Writer;
use recorder::{Retention, Stats};
use wire::now_ms;
use wire::{
    DatasetSnapshots, Fast, Guest, Medium, Payload, Pool, Scan, Slow, Snapshot, Snapshots, Storage, Vdev, Versions,
    SCHEMA_VERSION,
};

/// A fast payload of a 16-core host.
pub fn fast(host: &str, seq: u64, ts_ms: i64) -> Item {
    let json = format!(
        r#"{{"schema":1,"host_id":"{host}","ts_ms":{ts_ms},"boot_id":"bench","seq":{seq},"agent_version":"bench","data":{{"cpus":16,"load1":0.42,"load5":0.37,"load15":0.31,"cpu_pct":7.5,"iowait_pct":0.4,"mem_total":67350102016,"mem_used":26536796160,"arc_bytes":8589934592,"swap_total":8589930496,"swap_used":0,"rootfs_total":100861726720,"rootfs_used":12315713536,"uptime_s":1218237}}}}"#
    );
    parse(format!("pmon/v1/{host}/fast").as_bytes(), json.as_bytes(), now_ms()).unwrap()
}

/// A medium payload of a typical host: 2 pools (mirror of 2), 4 storages, 10 VMs, 5 CTs.
pub fn medium(host: &str, seq: u64, ts_ms: i64) -> Item {
    item(host, "medium", seq, ts_ms, medium_data())
}

/// A slow payload of a typical host: versions and 20 datasets' snapshots (see [`slow_data`]).
pub fn slow(host: &str, seq: u64, ts_ms: i64) -> Item {
    item(host, "slow", seq, ts_ms, slow_data())
}

/// `data` as the agent would publish it on `pmon/v1/<host>/<tier>`, parsed by the recorder.
fn item<T: serde::Serialize>(host: &str, tier: &str, seq: u64, ts_ms: i64, data: T) -> Item {
    let payload = Payload {
        schema: SCHEMA_VERSION,
        host_id: host.into(),
        ts_ms,
        boot_id: "bench".into(),
        seq,
        agent_version: "bench".into(),
        dropped: 0,
        errors: Default::default(),
        data,
    };
    let json = serde_json::to_vec(&payload).unwrap();
    parse(format!("pmon/v1/{host}/{tier}").as_bytes(), &json, now_ms()).unwrap()
}

/// Writes one sample of each of `tiers` ("fast", "medium", "slow") for every host into
/// the stopped server's database `db`, through the recorder's own writer, as if each host
/// had sent them in an earlier run.
pub fn seed(db: &Path, hosts: &[String], tiers: &[&str]) {
    let conn = recorder::db::open_writer(db).unwrap();
    let (live, _) = tokio::sync::broadcast::channel(16);
    let retention = Retention::raw(Duration::from_secs(48 * 3600));
    let mut writer = Writer::new(conn, live, Arc::new(Stats::default()), retention).unwrap();
    for chunk in hosts.chunks(1000) {
        let now = now_ms();
        let mut batch: Vec<Item> = chunk
            .iter()
            .flat_map(|h| {
                tiers.iter().map(move |tier| match *tier {
                    "fast" => fast(h, 1, now),
                    "medium" => medium(h, 1, now),
                    "slow" => slow(h, 1, now),
                    other => panic!("no tier {other}"),
                })
            })
            .collect();
        writer.write_and_settle(&mut batch);
    }
}

/// The medium tier's data of a typical host (see [`medium`]).
pub fn medium_data() -> Medium {
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
    Medium {
        pools: Some(vec![pool("rpool"), pool("tank")]),
        storages: Some(["local", "local-zfs", "nfs-backup", "pbs"].iter().map(|n| storage(n)).collect()),
        vms: Some((100..110).map(guest).collect()),
        cts: Some((200..205).map(guest).collect()),
        ..Medium::default()
    }
}

/// The fast tier's data of a 16-core host with 64 GiB (as [`fast`] sends it).
pub fn fast_data(seq: u64) -> Fast {
    Fast {
        cpus: Some(16),
        load1: Some(0.42),
        load5: Some(0.37),
        load15: Some(0.31),
        cpu_pct: Some(7.5 + (seq % 10) as f64),
        iowait_pct: Some(0.4),
        mem_total: Some(67_350_102_016),
        mem_used: Some(26_536_796_160),
        arc_bytes: Some(8_589_934_592),
        swap_total: Some(8_589_930_496),
        swap_used: Some(0),
        rootfs_total: Some(100_861_726_720),
        rootfs_used: Some(12_315_713_536),
        uptime_s: Some(1_218_237 + seq),
        ..Fast::default()
    }
}

/// The slow tier's data: versions and the snapshots of 20 datasets, 40 listed.
pub fn slow_data() -> Slow {
    let datasets = (0..20)
        .map(|i| DatasetSnapshots {
            dataset: format!("rpool/data/vm-{}-disk-0", 100 + i),
            count: 24,
            oldest: 1_763_000_000,
            newest: 1_764_000_000,
            used: 1 << 30,
        })
        .collect();
    let recent = (0..40)
        .map(|i| Snapshot {
            name: format!("rpool/data/vm-{}-disk-0@auto-{i}", 100 + i % 20),
            used: 1 << 20,
            creation: 1_764_000_000 - i,
        })
        .collect();
    Slow {
        snapshots: Some(Snapshots { total: 480, datasets, recent, truncated: false }),
        versions: Some(Versions {
            pve_manager: Some("pve-manager/8.3.0/c1689ccb1065a83b".into()),
            kernel: Some("6.8.12-4-pve".into()),
            zfs: Some("zfs-2.2.6-pve1".into()),
        }),
        disks: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::Held;

    fn envelope<T>(data: T) -> Payload<T> {
        let head = Payload {
            schema: SCHEMA_VERSION,
            host_id: "pve-host-01".into(),
            ts_ms: now_ms(),
            boot_id: "bench".into(),
            seq: 1,
            agent_version: "0.1.0".into(),
            dropped: 0,
            errors: Default::default(),
            data: (),
        };
        head.with_data(data)
    }

    /// What the recorder holds per host (issue 15, docs/PERFORMANCE.md "Held payloads"): the
    /// typical host's payloads held encoded are under a third of their JSON (and the medium
    /// about a sixth of the heap the parsed value took).
    #[test]
    fn the_typical_hosts_held_payloads_are_a_fraction_of_their_json() {
        let medium = envelope(medium_data());
        let (held, json) = (Held::new(&medium).bytes().len(), serde_json::to_vec(&medium).unwrap().len());
        eprintln!("medium: held {held} bytes, JSON {json} bytes");
        assert!(held * 3 < json, "held {held} bytes, JSON {json} bytes");
        let mut slow = envelope(slow_data());
        let slow_json = serde_json::to_vec(&slow).unwrap().len();
        slow.data.snapshots.as_mut().unwrap().recent.clear();
        let slow_held = Held::new(&slow).bytes().len();
        eprintln!("slow: held {slow_held} bytes (without snapshots.recent), JSON {slow_json} bytes");
        assert!(slow_held * 3 < slow_json, "held {slow_held} bytes, JSON {slow_json} bytes");
        let fast = Held::new(&envelope(fast_data(1))).bytes().len();
        eprintln!("fast: {fast} bytes encoded (held parsed)");
    }
}
