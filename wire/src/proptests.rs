//! Property tests of the wire contract (issue 15, "Fuzzing"): the topic parser on any
//! string, and every payload type through JSON and back. The cargo-fuzz targets in `fuzz/`
//! run the same entry points for longer (docs/RELIABILITY.md).

use proptest::collection::{btree_map, vec};
use proptest::option::of;
use proptest::prelude::*;

use crate::signals::{AtaHealth, Disk, DiskIo, NetIf, NetKind, NvmeHealth, Temp, TempKind};
use crate::topic::MAX_HOST_ID_LEN;
use crate::*;

/// Cases are cheap here (pure parsing); the suite runs on every `scripts/test`, `fuzz/` runs longer.
fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

/// A valid host id, as `HostId::parse` documents it.
fn host_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,62}"
}

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

/// Topic-like strings: mostly near the real shape, so the parser's branches are all reached.
fn topic_like() -> impl Strategy<Value = String> {
    let level = prop_oneof![
        Just("pmon".to_string()),
        Just("v1".to_string()),
        Just("fast".to_string()),
        Just("alerts".to_string()),
        Just("+".to_string()),
        Just("#".to_string()),
        Just(String::new()),
        "[a-z0-9._-]{1,8}",
        ".{0,4}",
    ];
    prop_oneof![vec(level, 0..6).prop_map(|levels| levels.join("/")), ".{0,80}"]
}

/// Finite floats of every magnitude (JSON has no NaN or infinity).
fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO,
        (0u32..10_000).prop_map(|n| f64::from(n) / 100.0),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", "[a-zA-Z0-9 _./-]{0,24}"]
}

fn envelope<T: std::fmt::Debug>(data: impl Strategy<Value = T>) -> impl Strategy<Value = Payload<T>> {
    let head = (any::<u32>(), host_id(), any::<i64>(), text(), any::<u64>(), text(), any::<u64>());
    (head, btree_map(text(), text(), 0..3), data).prop_map(
        |((schema, host_id, ts_ms, boot_id, seq, agent_version, dropped), errors, data)| Payload {
            schema,
            host_id,
            ts_ms,
            boot_id,
            seq,
            agent_version,
            dropped,
            errors,
            data,
        },
    )
}

fn net_if() -> impl Strategy<Value = NetIf> {
    let kind = prop::sample::select(vec![NetKind::Physical, NetKind::Bond, NetKind::Bridge, NetKind::Other]);
    let counts = (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>());
    let rates = (finite(), finite(), finite(), finite());
    (text(), kind, counts, rates).prop_map(|(name, kind, (rxb, txb, rxp, txp), (rxe, txe, rxd, txd))| NetIf {
        name,
        kind,
        rx_bytes: rxb,
        tx_bytes: txb,
        rx_packets: rxp,
        tx_packets: txp,
        rx_errors: rxe,
        tx_errors: txe,
        rx_drops: rxd,
        tx_drops: txd,
    })
}

fn disk_io() -> impl Strategy<Value = DiskIo> {
    (text(), any::<u64>(), any::<u64>(), finite(), finite(), finite()).prop_map(
        |(name, read_bytes, write_bytes, reads, writes, busy_pct)| DiskIo {
            name,
            read_bytes,
            write_bytes,
            reads,
            writes,
            busy_pct,
        },
    )
}

fn temp() -> impl Strategy<Value = Temp> {
    let kind = prop::sample::select(vec![TempKind::Cpu, TempKind::Nvme, TempKind::Other]);
    (text(), kind, finite(), of(finite())).prop_map(|(name, kind, celsius, cores_max)| Temp {
        name,
        kind,
        celsius,
        cores_max,
    })
}

fn fast() -> impl Strategy<Value = Fast> {
    let loads = (of(any::<u32>()), of(finite()), of(finite()), of(finite()), of(finite()), of(finite()));
    let sizes = (of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(any::<u64>()));
    let rest = (of(any::<u64>()), of(any::<u64>()), of(any::<u64>()));
    let signals = (of(vec(net_if(), 0..4)), of(vec(disk_io(), 0..4)), of(vec(temp(), 0..3)));
    (loads, sizes, rest, signals).prop_map(
        |(
            (cpus, load1, load5, load15, cpu_pct, iowait_pct),
            (mem_total, mem_used, arc_bytes, swap_total, swap_used),
            (rootfs_total, rootfs_used, uptime_s),
            (net, diskio, temps),
        )| Fast {
            cpus,
            load1,
            load5,
            load15,
            cpu_pct,
            iowait_pct,
            mem_total,
            mem_used,
            arc_bytes,
            swap_total,
            swap_used,
            rootfs_total,
            rootfs_used,
            uptime_s,
            net,
            diskio,
            temps,
        },
    )
}

/// Known and unknown enumerated strings, built as a payload decoder builds them.
fn state() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["ONLINE", "DEGRADED", "FAULTED", "SCRUB", "FINISHED", "running", "stopped"])
            .prop_map(String::from),
        text(),
    ]
}

fn vdev() -> impl Strategy<Value = Vdev> {
    (text(), any::<u8>(), state(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(name, depth, state, read_errors, write_errors, checksum_errors)| Vdev {
            name,
            depth,
            state: state.into(),
            read_errors,
            write_errors,
            checksum_errors,
        },
    )
}

fn pool() -> impl Strategy<Value = Pool> {
    let texts = (text(), state(), of(text()), of(text()));
    let sizes = (of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(finite()), of(finite()), of(finite()));
    let scan = of((state(), state(), of(any::<i64>()), of(any::<i64>()), any::<u64>()).prop_map(
        |(function, state, start, end, errors)| Scan {
            function: function.into(),
            state: state.into(),
            start,
            end,
            errors,
        },
    ));
    (texts, sizes, vec(vdev(), 0..4), scan, any::<u64>()).prop_map(
        |((name, state, status, action), (size, alloc, free, frag_pct, cap_pct, dedup_ratio), vdevs, scan, errors)| {
            Pool {
                name,
                state: state.into(),
                status,
                action,
                size,
                alloc,
                free,
                frag_pct,
                cap_pct,
                dedup_ratio,
                vdevs,
                scan,
                error_count: errors,
            }
        },
    )
}

fn storage() -> impl Strategy<Value = Storage> {
    let flags = (any::<bool>(), any::<bool>(), any::<bool>());
    let sizes = (of(any::<u64>()), of(any::<u64>()), of(any::<u64>()));
    (text(), text(), flags, text(), sizes).prop_map(
        |(name, kind, (active, enabled, shared), content, (total, used, avail))| Storage {
            name,
            kind,
            active,
            enabled,
            shared,
            content,
            total,
            used,
            avail,
        },
    )
}

fn guest() -> impl Strategy<Value = Guest> {
    let head = (any::<u32>(), text(), state(), of(finite()), of(finite()));
    let sizes = (of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(any::<u64>()));
    (head, sizes, vec(text(), 0..3), of(text())).prop_map(
        |((vmid, name, status, cpu, cpus), (mem, maxmem, disk, maxdisk, uptime_s), tags, lock)| Guest {
            vmid,
            name,
            status: status.into(),
            cpu,
            cpus,
            mem,
            maxmem,
            disk,
            maxdisk,
            uptime_s,
            tags,
            lock,
        },
    )
}

fn backups() -> impl Strategy<Value = Backups> {
    let job = (text(), text(), any::<bool>(), vec(any::<u32>(), 0..3), vec(any::<u32>(), 0..3), of(text()))
        .prop_map(|(id, schedule, all, vmids, exclude, pool)| BackupJob { id, schedule, all, vmids, exclude, pool });
    let guest = (any::<u32>(), any::<i64>(), any::<bool>(), of(text()), of(any::<i64>()))
        .prop_map(|(vmid, end, ok, error, last_ok)| GuestBackup { vmid, end, ok, error, last_ok });
    (vec(job, 0..3), vec(guest, 0..3), any::<i64>()).prop_map(|(jobs, guests, since)| Backups { jobs, guests, since })
}

fn operator_stop() -> impl Strategy<Value = OperatorStop> {
    (any::<u32>(), text(), text(), any::<i64>()).prop_map(|(vmid, task, user, end)| OperatorStop {
        vmid,
        task,
        user,
        end,
    })
}

fn medium() -> impl Strategy<Value = Medium> {
    let guests = (of(vec(guest(), 0..3)), of(vec(guest(), 0..3)));
    let backups = (of(backups()), of(vec(operator_stop(), 0..3)));
    (of(vec(pool(), 0..3)), of(vec(storage(), 0..3)), guests, backups).prop_map(
        |(pools, storages, (vms, cts), (backups, operator_stops))| Medium {
            pools,
            storages,
            vms,
            cts,
            backups,
            operator_stops,
        },
    )
}

fn disk() -> impl Strategy<Value = Disk> {
    let ids = (text(), text(), vec(text(), 0..3), of(text()), of(text()), of(any::<u64>()));
    let health = (any::<bool>(), of(any::<bool>()), of(finite()), of(any::<u64>()), any::<u8>());
    let ata = of((of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(any::<u64>())).prop_map(
        |(reallocated, pending, offline_uncorrectable, crc_errors)| AtaHealth {
            reallocated,
            pending,
            offline_uncorrectable,
            crc_errors,
        },
    ));
    let nvme = of((of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(any::<u64>()), of(any::<u64>())).prop_map(
        |(critical_warning, percentage_used, media_errors, available_spare, available_spare_threshold)| NvmeHealth {
            critical_warning,
            percentage_used,
            media_errors,
            available_spare,
            available_spare_threshold,
        },
    ));
    (ids, health, ata, nvme).prop_map(
        |(
            (name, protocol, ids, model, serial, capacity),
            (standby, smart_passed, temp_c, power_on_hours, smartctl_status),
            ata,
            nvme,
        )| Disk {
            name,
            protocol,
            ids,
            model,
            serial,
            capacity,
            standby,
            smart_passed,
            temp_c,
            power_on_hours,
            smartctl_status,
            ata,
            nvme,
        },
    )
}

fn slow() -> impl Strategy<Value = Slow> {
    let snapshot =
        (text(), any::<u64>(), any::<i64>()).prop_map(|(name, used, creation)| Snapshot { name, used, creation });
    let dataset = (text(), any::<u64>(), any::<i64>(), any::<i64>(), any::<u64>())
        .prop_map(|(dataset, count, oldest, newest, used)| DatasetSnapshots { dataset, count, oldest, newest, used });
    let snapshots = (any::<u64>(), vec(dataset, 0..3), vec(snapshot, 0..3), any::<bool>())
        .prop_map(|(total, datasets, recent, truncated)| Snapshots { total, datasets, recent, truncated });
    let versions = (of(text()), of(text()), of(text())).prop_map(|(pve_manager, kernel, zfs)| Versions {
        pve_manager,
        kernel,
        zfs,
    });
    (of(snapshots), of(versions), of(vec(disk(), 0..3))).prop_map(|(snapshots, versions, disks)| Slow {
        snapshots,
        versions,
        disks,
    })
}

/// Serializes and parses back; the value must come back equal, floats to the bit (which
/// needs serde_json's `float_roundtrip`: its default parser is off by an ulp or two on some
/// 17-digit numbers, the first thing these tests found).
fn round_trip<T>(payload: &Payload<T>) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let fail = |e: serde_json::Error| TestCaseError::fail(e.to_string());
    let json = serde_json::to_vec(payload).map_err(fail)?;
    let back: Payload<T> = serde_json::from_slice(&json).map_err(fail)?;
    prop_assert_eq!(&back, payload);
    Ok(())
}

/// Encodes as the recorder holds it and decodes; the value must come back equal (postcard is
/// not self-describing: a field skipped when serializing would fail the decode).
fn held_round_trip<T>(payload: &Payload<T>) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    prop_assert_eq!(&Held::new(payload).get(), payload);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_string_parses_or_is_refused_without_panic(s in topic_like()) {
        let parsed = Topic::parse(&s);
        if let Ok(t) = &parsed {
            // What parses is exactly one host's own topic, spelled canonically.
            prop_assert_eq!(t.to_string(), s.clone());
            prop_assert!(!s.contains(['+', '#', '\0']));
        }
        if ServerKind::matches(&s) {
            prop_assert!(parsed.is_err(), "a server topic parsed as a host's: {}", s);
        }
        let _ = DiscoveryPrefix::parse(&s);
    }

    #[test]
    fn host_ids_are_exactly_the_documented_set(s in prop_oneof![host_id(), ".{0,70}"]) {
        let documented = (1..=MAX_HOST_ID_LEN).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        prop_assert_eq!(HostId::parse(&s).is_ok(), documented, "{:?}", s);
    }

    #[test]
    fn every_hosts_topics_round_trip(host in host_id(), kind in kind()) {
        let host = HostId::parse(&host).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(Topic::parse(&host.topic(kind)), Ok(Topic { host: host.clone(), kind }));
        for server in ServerKind::ALL {
            prop_assert!(Topic::parse(&host.server_topic(server)).is_err());
        }
    }

    #[test]
    fn fast_payloads_round_trip(p in envelope(fast())) {
        round_trip(&p)?;
        held_round_trip(&p)?;
    }

    #[test]
    fn medium_payloads_round_trip(p in envelope(medium())) {
        round_trip(&p)?;
        held_round_trip(&p)?;
    }

    #[test]
    fn slow_payloads_round_trip(p in envelope(slow())) {
        round_trip(&p)?;
        held_round_trip(&p)?;
    }

    #[test]
    fn any_bytes_decode_or_fail_without_panic(bytes in vec(any::<u8>(), 0..256)) {
        let _ = serde_json::from_slice::<FastPayload>(&bytes);
        let _ = serde_json::from_slice::<MediumPayload>(&bytes);
        let _ = serde_json::from_slice::<SlowPayload>(&bytes);
        let _ = serde_json::from_slice::<alerts::AlertSet>(&bytes);
    }
}
