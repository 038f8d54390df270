//! Property tests of the parsers of command output: `zpool`, `zfs`, `pvesh`, `pveversion`
//! and `smartctl`.

use proptest::array::uniform3;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use serde_json::{json, Value};
use wire::{Guest, Storage};

use super::{config, mutated, noise, total};
use crate::collect::zpool_status::{json as status_json, text as status_text};
use crate::collect::{guests, smart, snapshots, storage, versions, zpool_list};

fn fixture(name: &str) -> &'static str {
    match name {
        "zpool_list" => include_str!("../../../tests/fixtures/zpool_list.txt"),
        "status_text" => include_str!("../../../tests/fixtures/zpool_status_degraded_scrub.txt"),
        "status_resilver" => include_str!("../../../tests/fixtures/zpool_status_resilver_logs_cache.txt"),
        "status_json" => include_str!("../../../tests/fixtures/zpool_status_manpage.json"),
        "snapshots" => include_str!("../../../tests/fixtures/zfs_list_snapshots.txt"),
        "qemu" => include_str!("../../../tests/fixtures/qemu.json"),
        "storage" => include_str!("../../../tests/fixtures/storage.json"),
        "smart" => include_str!("../../../tests/fixtures/smartctl_ata_failing.json"),
        "scan" => include_str!("../../../tests/fixtures/smartctl_scan_open_host.json"),
        _ => "",
    }
}

fn command_text() -> impl Strategy<Value = String> {
    let names = ["zpool_list", "status_text", "status_resilver", "status_json", "snapshots", "qemu", "storage"];
    prop_oneof![
        noise(),
        mutated(fixture(names[0])),
        mutated(fixture(names[1])),
        mutated(fixture(names[2])),
        mutated(fixture(names[3])),
        mutated(fixture(names[4])),
        mutated(fixture(names[5])),
        mutated(fixture(names[6])),
        mutated(fixture("smart")),
        mutated(fixture("scan")),
    ]
}

/// A number as pvesh may send it: a JSON number or a string of digits.
fn lenient(n: u64, as_text: bool) -> Value {
    if as_text {
        Value::from(n.to_string())
    } else {
        Value::from(n)
    }
}

fn storage_entry() -> impl Strategy<Value = (Value, Storage)> {
    let flags = (any::<bool>(), of(any::<bool>()), any::<bool>(), any::<bool>());
    ("[a-z][a-z0-9-]{0,10}", "[a-z]{2,8}", flags, uniform3(0..=1u64 << 53)).prop_map(
        |(name, kind, (active, enabled, shared, as_text), sizes)| {
            let flag = |b: bool| Value::from(u8::from(b));
            let mut v = json!({"storage": name, "type": kind, "active": flag(active), "shared": flag(shared),
                "content": "images", "total": lenient(sizes[0], as_text), "used": lenient(sizes[1], as_text),
                "avail": lenient(sizes[2], as_text)});
            if let Some(e) = enabled {
                v["enabled"] = flag(e);
            }
            let size = |i: usize| active.then_some(sizes[i]);
            let want = Storage {
                name,
                kind,
                active,
                enabled: enabled.unwrap_or(true),
                shared,
                content: "images".into(),
                total: size(0),
                used: size(1),
                avail: size(2),
            };
            (v, want)
        },
    )
}

fn guest_entry() -> impl Strategy<Value = (Value, Guest)> {
    let status = prop::sample::select(vec!["running", "stopped", "paused", "prelaunch"]);
    let tags = vec("[a-z0-9]{1,6}", 0..4);
    (
        1u32..1_000_000,
        "[a-z0-9-]{0,12}",
        status,
        (0u32..100_000, 1u32..64),
        uniform3(0..=1u64 << 53),
        tags,
        any::<bool>(),
    )
        .prop_map(|(vmid, name, status, (cpu_milli, cpus), sizes, tags, as_text)| {
            let cpu = f64::from(cpu_milli) / 1000.0;
            let v = json!({"vmid": lenient(u64::from(vmid), as_text), "name": name, "status": status,
                "cpu": cpu, "cpus": cpus, "mem": sizes[0], "maxmem": lenient(sizes[1], as_text),
                "uptime": sizes[2], "tags": tags.join(";")});
            let want = Guest {
                vmid,
                name,
                status: status.into(),
                cpu: Some(cpu),
                cpus: Some(f64::from(cpus)),
                mem: Some(sizes[0]),
                maxmem: Some(sizes[1]),
                uptime_s: Some(sizes[2]),
                tags,
                ..Guest::default()
            };
            (v, want)
        })
}

/// A ctime as `zpool status` prints it, for a time from 1970 to 2199, and that time.
fn ctime() -> impl Strategy<Value = (String, i64)> {
    (0i64..83_000, 0i64..86_400).prop_map(|(days, secs)| {
        const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let (y, m, d) = wire::civil_from_days(days);
        let (h, min, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        (format!("Sun {} {d:>2} {h:02}:{min:02}:{s:02} {y}", MONTHS[m as usize - 1]), days * 86_400 + secs)
    })
}

fn vdev_tree(depth: u32) -> BoxedStrategy<Value> {
    let leaf = ("[a-z0-9-]{1,10}", any::<u32>()).prop_map(|(name, errors)| {
        json!({"name": name, "state": "ONLINE", "read_errors": errors.to_string(), "write_errors": "0",
            "checksum_errors": errors})
    });
    if depth == 0 {
        return leaf.boxed();
    }
    (leaf, vec(vdev_tree(depth - 1), 0..3))
        .prop_map(|(mut v, children)| {
            let named: serde_json::Map<String, Value> =
                children.into_iter().enumerate().map(|(i, c)| (format!("{}-{i}", c["name"]), c)).collect();
            v["vdevs"] = Value::Object(named);
            v
        })
        .boxed()
}

/// Names and depths of a tree as `json::parse` flattens it (the root's children at depth 0).
fn flatten(v: &Value, depth: u8, out: &mut Vec<(String, u8)>) {
    out.push((v["name"].as_str().unwrap_or_default().to_string(), depth));
    for child in v["vdevs"].as_object().into_iter().flat_map(|m| m.values()) {
        flatten(child, depth + 1, out);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn command_parsers_take_any_text(text in command_text(), status in any::<i32>()) {
        total(zpool_list::parse, &text);
        total(status_text::parse, &text);
        total(status_json::parse, &text);
        total(snapshots::parse, &text);
        total(storage::parse, &text);
        total(guests::parse, &text);
        total(versions::parse_pveversion, &text);
        total(versions::parse_zfs_version, &text);
        total(versions::parse_one_line, &text);
        total(smart::parse_scan, &text);
        let entry = smart::ScanEntry { path: "/dev/sda".into(), kind: "sat".into(), protocol: String::new(), open_error: None };
        let _ = smart::parse_disk(&entry, Some(status), &text);
        let _ = status_text::parse_scan(&text);
        let _ = status_text::parse_ctime(&text);
    }

    #[test]
    fn zpool_list_reads_every_row(rows in vec(("[a-z][a-z0-9_-]{0,10}", uniform3(of(any::<u64>())), uniform3(of(0u32..10_000))), 0..5)) {
        let mut text = String::new();
        let mut want = Vec::new();
        for (name, sizes, hundredths) in &rows {
            let size = |s: Option<u64>| s.map_or("-".into(), |n| n.to_string());
            // `-p` output has no suffixes; a wrapper without `-p` adds them (`12%`, `1.00x`).
            let suffixes = ["%", "", "x"];
            let [frag, cap, dedup] = [0, 1, 2].map(|i| {
                hundredths[i].map_or("-".into(), |p| format!("{}.{:02}{}", p / 100, p % 100, suffixes[i]))
            });
            text.push_str(&format!("{name}\t{}\t{}\t{}\t{frag}\t{cap}\t{dedup}\tONLINE\n", size(sizes[0]), size(sizes[1]), size(sizes[2])));
            let number = |p: Option<u32>| p.map(|p| f64::from(p) / 100.0);
            want.push(zpool_list::ListRow {
                name: name.clone(),
                size: sizes[0],
                alloc: sizes[1],
                free: sizes[2],
                frag_pct: number(hundredths[0]),
                cap_pct: number(hundredths[1]),
                dedup_ratio: number(hundredths[2]),
                health: "ONLINE".into(),
            });
        }
        prop_assert_eq!(zpool_list::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?, want);
    }

    #[test]
    fn a_finished_scrub_line_gives_its_times((on, end) in ctime(), secs in 0i64..10 * 86_400, errors in any::<u32>()) {
        let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
        let line = format!("scrub repaired 0B in {d} days {h:02}:{m:02}:{s:02} with {errors} errors on {on}");
        let scan = status_text::parse_scan(&line).ok_or_else(|| TestCaseError::fail(line.clone()))?;
        prop_assert_eq!((scan.start, scan.end, scan.errors), (Some(end - secs), Some(end), u64::from(errors)));
        prop_assert_eq!(status_text::parse_ctime(&on), Some(end));
    }

    #[test]
    fn zpool_status_json_flattens_the_vdev_tree(trees in vec(vdev_tree(3), 0..3), errors in any::<u64>()) {
        let root: serde_json::Map<String, Value> = trees.iter().enumerate().map(|(i, t)| (format!("k{i}"), t.clone())).collect();
        let doc = json!({"pools": {"tank": {"name": "tank", "state": "DEGRADED", "error_count": errors.to_string(),
            "vdevs": {"tank": {"name": "tank", "vdevs": root}}}}});
        let pools = status_json::parse(&doc.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut want = Vec::new();
        for t in &trees {
            flatten(t, 0, &mut want);
        }
        let got: Vec<(String, u8)> = pools[0].vdevs.iter().map(|v| (v.name.clone(), v.depth)).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(pools[0].error_count, errors);
    }

    #[test]
    fn storages_and_guests_read_what_pvesh_printed(s in vec(storage_entry(), 0..5), g in vec(guest_entry(), 0..5)) {
        let (values, mut want): (Vec<Value>, Vec<Storage>) = s.into_iter().unzip();
        want.sort_by(|a, b| a.name.cmp(&b.name));
        let got = storage::parse(&Value::Array(values).to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got.iter().map(|s| &s.name).collect::<Vec<_>>(), want.iter().map(|s| &s.name).collect::<Vec<_>>());
        prop_assert_eq!(got.len(), want.len());
        for w in &want {
            prop_assert!(got.contains(w), "{:?} missing", w);
        }
        let (values, mut want): (Vec<Value>, Vec<Guest>) = g.into_iter().unzip();
        want.sort_by_key(|g| g.vmid);
        let got = guests::parse(&Value::Array(values).to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got.iter().map(|g| g.vmid).collect::<Vec<_>>(), want.iter().map(|g| g.vmid).collect::<Vec<_>>());
        for w in &want {
            prop_assert!(got.contains(w), "{:?} missing", w);
        }
    }

    #[test]
    fn snapshots_are_counted_per_dataset(snaps in vec(("(tank|rpool/data|rpool/ROOT)", "[a-z0-9_:-]{1,12}", any::<u64>(), any::<i64>()), 0..30)) {
        let text: String = snaps.iter().map(|(d, s, used, at)| format!("{d}@{s}\t{used}\t{at}\n")).collect();
        let summary = snapshots::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(summary.total, snaps.len() as u64);
        for ds in &summary.datasets {
            let mine: Vec<_> = snaps.iter().filter(|(d, ..)| *d == ds.dataset).collect();
            prop_assert_eq!(ds.count, mine.len() as u64);
            let used = mine.iter().fold(0u64, |a, (_, _, u, _)| a.saturating_add(*u));
            prop_assert_eq!(ds.used, used, "sizes add up, saturating rather than wrapping");
            prop_assert_eq!(Some(ds.newest), mine.iter().map(|s| s.3).max());
        }
    }

    #[test]
    fn versions_are_read_from_their_lines(v in "[0-9]{1,2}\\.[0-9]{1,2}\\.[0-9]{1,3}", k in "[0-9]\\.[0-9]{1,2}\\.[0-9]{1,2}-[0-9]-pve") {
        let line = format!("pve-manager/{v}/deb1ca707ec72a89 (running kernel: {k})\n");
        prop_assert_eq!(versions::parse_pveversion(&line).ok(), Some(v.clone()));
        prop_assert_eq!(versions::parse_zfs_version(&format!("zfs-{v}-pve1\nzfs-kmod-{k}\n")).ok(), Some(k.clone()));
        prop_assert_eq!(versions::parse_one_line(&format!("  {k}  \n")).ok(), Some(k));
    }

    #[test]
    fn smartctl_json_gives_the_disks_values(
        (model, serial) in ("[A-Za-z0-9 -]{1,20}", "[A-Z0-9]{4,12}"),
        (capacity, hours, realloc) in (any::<u64>(), any::<u64>(), any::<u64>()),
        (passed, temp, status) in (any::<bool>(), -40i32..120, 0u8..64),
    ) {
        let doc = json!({"device": {"protocol": "ATA"}, "model_name": model, "serial_number": serial,
            "user_capacity": {"bytes": capacity}, "smart_status": {"passed": passed},
            "temperature": {"current": temp}, "power_on_time": {"hours": hours},
            "ata_smart_attributes": {"table": [{"id": 5, "raw": {"value": realloc}}]}});
        let entry = smart::ScanEntry { path: "/dev/sdq".into(), kind: "sat".into(), protocol: String::new(), open_error: None };
        let reading = smart::parse_disk(&entry, Some(i32::from(status) << 2), &doc.to_string());
        let Ok(smart::Reading::Disk(d)) = reading else { return Err(TestCaseError::fail(format!("{reading:?}"))) };
        prop_assert_eq!((d.name.as_str(), d.model.as_deref(), d.serial.as_deref()), ("sdq", Some(model.trim()), Some(serial.as_str())));
        prop_assert_eq!((d.capacity, d.power_on_hours, d.smart_passed), (Some(capacity), Some(hours), Some(passed)));
        prop_assert_eq!((d.temp_c, d.smartctl_status), (Some(f64::from(temp)), status << 2));
        prop_assert_eq!(d.ata.and_then(|a| a.reallocated), Some(realloc));
    }
}
