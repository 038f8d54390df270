//! Property tests of every collector parser (issue 15, "Fuzzing"): any text gives a value or
//! a `ParseError`, never a panic, and well-formed generated input parses to the values it
//! was generated from. This file has the shared strategies and the `/proc` and `/sys`
//! parsers; [`commands`] has the parsers of command output. `fuzz/` runs the same parsers
//! for longer (docs/RELIABILITY.md).

use std::collections::HashMap;

use proptest::array::{uniform3, uniform4};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::{arcstats, diskstats, hwmon, loadavg, meminfo, net_dev, proc_stat, uptime, ParseError};

mod commands;

pub(super) fn config() -> ProptestConfig {
    ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() }
}

/// Text made of the formats' own tokens (extreme numbers, separators, keywords), or any text.
pub(super) fn noise() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "18446744073709551615",
            "99999999999999999999999",
            "-1",
            "0",
            "1e308",
            "NaN",
            "inf",
            "kB",
            ":",
            "\t",
            " ",
            "  ",
            "\n",
            "-",
            "%",
            "x",
            "@",
            "/",
            "cpu",
            "cpu0",
            "pool:",
            "state:",
            "scan:",
            "config:",
            "errors:",
            "NAME",
            "{",
            "}",
            "[",
            "]",
            "\"",
            ",",
            "null",
            "true",
            "sda",
            "nvme0n1",
            "zd0",
            "size",
            "name type data",
            "pve-manager/",
            "zfs-kmod-",
            "Mon Jan  1 00:00:00 2024",
            " in ",
            " with ",
            " errors on ",
            "h",
            "m",
            " days ",
        ])
        .prop_map(String::from),
        "[0-9]{1,25}",
        ".{1,3}",
    ];
    prop_oneof![vec(token, 0..60).prop_map(|t| t.concat()), ".{0,200}"]
}

/// A captured fixture with a few of its spans replaced by [`noise`]-like tokens, so that the
/// deep branches of a parser (a mangled vdev row, a bad counter in line 40) are reached.
pub(super) fn mutated(original: &'static str) -> impl Strategy<Value = String> {
    let replacement = prop_oneof![Just(String::new()), "[0-9]{1,22}", ".{1,4}", Just("\n".to_string())];
    vec((any::<Index>(), 0..12usize, replacement), 1..5).prop_map(move |edits| {
        let mut text = original.to_string();
        for (at, len, with) in edits {
            let start = char_floor(&text, at.index(text.len() + 1));
            let end = char_floor(&text, (start + len).min(text.len()));
            text.replace_range(start..end, &with);
        }
        text
    })
}

fn char_floor(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Runs a parser on any input; the property is that it returns at all.
pub(super) fn total<T>(parse: fn(&str) -> Result<T, ParseError>, text: &str) {
    let _ = parse(text);
}

fn fixture(name: &str) -> &'static str {
    match name {
        "meminfo" => include_str!("../../../tests/fixtures/meminfo.txt"),
        "proc_stat" => include_str!("../../../tests/fixtures/proc_stat_1.txt"),
        "net_dev" => include_str!("../../../tests/fixtures/proc_net_dev_pve_1.txt"),
        "diskstats" => include_str!("../../../tests/fixtures/proc_diskstats_pve_1.txt"),
        "arcstats" => include_str!("../../../tests/fixtures/arcstats.txt"),
        _ => "",
    }
}

fn procfs_text() -> impl Strategy<Value = String> {
    prop_oneof![
        noise(),
        mutated(fixture("meminfo")),
        mutated(fixture("proc_stat")),
        mutated(fixture("net_dev")),
        mutated(fixture("diskstats")),
        mutated(fixture("arcstats")),
    ]
}

/// `/proc/meminfo` lines for the four values read, among others, in any order.
fn meminfo_text(kib: [u64; 4], order: Vec<usize>) -> String {
    let keys = ["MemTotal", "MemAvailable", "SwapTotal", "SwapFree"];
    let mut lines: Vec<String> = keys.iter().zip(kib).map(|(k, v)| format!("{k}:{v:>16} kB")).collect();
    lines.extend(["MemFree:         123 kB".into(), "HugePages_Total:       0".into()]);
    order.iter().map(|&i| lines[i % lines.len()].clone()).chain(lines.clone()).collect::<Vec<_>>().join("\n")
}

fn sensor() -> impl Strategy<Value = hwmon::Sensor> {
    let label = prop::option::of(prop_oneof![
        "(Package|Physical) id [0-9]{1,2}",
        "Core [0-9]{1,2}",
        prop::sample::select(vec!["Tdie", "Tctl", "Tccd1", "Composite", ""]).prop_map(String::from),
        ".{0,6}",
    ]);
    (0u32..10, label, any::<i64>()).prop_map(|(index, label, millidegrees)| hwmon::Sensor {
        index,
        label,
        millidegrees,
    })
}

fn chip() -> impl Strategy<Value = hwmon::Chip> {
    let name = prop::sample::select(vec!["coretemp", "k10temp", "zenpower", "nvme", "acpitz"]);
    (name, prop::option::of("nvme[0-9]"), vec(sensor(), 0..6)).prop_map(|(name, device, sensors)| hwmon::Chip {
        name: name.into(),
        device,
        sensors,
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn procfs_parsers_take_any_text(text in procfs_text()) {
        total(meminfo::parse, &text);
        total(proc_stat::parse, &text);
        total(loadavg::parse, &text);
        total(uptime::parse, &text);
        total(arcstats::parse, &text);
        total(net_dev::parse, &text);
        total(diskstats::parse, &text);
    }

    #[test]
    fn meminfo_reads_what_was_written(kib in uniform4(0..=u64::MAX / 1024), order in vec(0..6usize, 0..6)) {
        let m = meminfo::parse(&meminfo_text(kib, order)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let [total, available, swap_total, swap_free] = kib.map(|k| k * 1024);
        prop_assert_eq!(m, meminfo::Memory {
            mem_total: total,
            mem_used: total.saturating_sub(available),
            swap_total,
            swap_used: swap_total.saturating_sub(swap_free),
        });
    }

    #[test]
    fn meminfo_values_too_large_for_bytes_are_an_error(big in u64::MAX / 1024 + 1..=u64::MAX, which in 0..4usize) {
        let mut kib = [1u64; 4];
        kib[which] = big;
        prop_assert!(meminfo::parse(&meminfo_text(kib, vec![])).is_err());
    }

    #[test]
    fn proc_stat_sums_the_first_eight_fields(
        fields in vec(0..=u64::MAX / 16, 8..=11),
        cpus in 0usize..70,
        big in any::<bool>(),
    ) {
        let mut fields = fields;
        if big {
            // Counters whose sum does not fit: an error, not a wrapped total.
            fields[0] = u64::MAX - 1;
            fields[7] = 2;
        }
        let cpu_lines: String = (0..cpus).map(|i| format!("cpu{i} 1 2 3 4 5 6 7 8\n")).collect();
        let numbers: Vec<String> = fields.iter().map(u64::to_string).collect();
        let text = format!("cpu  {}\n{cpu_lines}intr 12 3\nctxt 5\n", numbers.join(" "));
        let result = proc_stat::parse(&text);
        let total = fields[..8].iter().try_fold(0u64, |a, b| a.checked_add(*b));
        match (total, fields[3].checked_add(fields[4])) {
            (Some(total), Some(idle)) => prop_assert_eq!(
                result.map_err(|e| TestCaseError::fail(e.to_string()))?,
                proc_stat::CpuSample { total, idle, iowait: fields[4], cpus: cpus as u32 }
            ),
            _ => prop_assert!(result.is_err()),
        }
    }

    #[test]
    fn loadavg_and_uptime_read_what_was_written(hundredths in uniform3(0u32..100_000_000), up in any::<u32>()) {
        let [a, b, c] = hundredths.map(|h| format!("{}.{:02}", h / 100, h % 100));
        let load = loadavg::parse(&format!("{a} {b} {c} 2/1234 5678\n")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(load, hundredths.map(|h| f64::from(h) / 100.0));
        let secs = uptime::parse(&format!("{up}.{:02} 1704.31\n", up % 100)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(secs, u64::from(up));
    }

    #[test]
    fn arcstats_reads_the_size_row(size in any::<u64>(), rows in vec(("[a-z_]{1,12}", any::<u64>()), 0..8)) {
        let mut text = String::from("13 1 0x01 123 33456 1234 5678\nname                            type data\n");
        for (name, value) in rows.iter().filter(|(n, _)| n != "size") {
            text.push_str(&format!("{name:<32}4    {value}\n"));
        }
        text.push_str(&format!("size                            4    {size}\n"));
        prop_assert_eq!(arcstats::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?, size);
    }

    #[test]
    fn net_dev_reads_every_interface(ifaces in vec(("[a-z][a-z0-9.]{0,12}", [any::<u64>(); 16]), 1..6)) {
        let mut text = String::from("Inter-|   Receive\n face |bytes    packets\n");
        for (name, c) in &ifaces {
            let numbers: Vec<String> = c.iter().map(u64::to_string).collect();
            text.push_str(&format!("{name:>6}: {}\n", numbers.join(" ")));
        }
        let parsed = net_dev::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want: Vec<(String, net_dev::Counters)> = ifaces
            .iter()
            .map(|(n, c)| {
                let counters = net_dev::Counters {
                    rx_bytes: c[0], rx_packets: c[1], rx_errors: c[2], rx_drops: c[3],
                    tx_bytes: c[8], tx_packets: c[9], tx_errors: c[10], tx_drops: c[11],
                };
                (n.clone(), counters)
            })
            .collect();
        prop_assert_eq!(parsed, want);
    }

    #[test]
    fn diskstats_keeps_whole_disks_and_zvols(
        rows in vec(("(sd[a-z]{1,2}[0-9]?|nvme[0-9]n[0-9](p[0-9])?|zd[0-9]{1,3}|loop[0-9]|dm-[0-9])", [any::<u64>(); 15]), 1..8),
    ) {
        let mut text = String::new();
        for (name, c) in &rows {
            let numbers: Vec<String> = c.iter().map(u64::to_string).collect();
            text.push_str(&format!("   8       0 {name} {}\n", numbers.join(" ")));
        }
        let parsed = diskstats::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want: Vec<_> = rows
            .iter()
            .filter_map(|(name, c)| {
                let counters = diskstats::Counters {
                    reads: c[0], read_sectors: c[2], writes: c[4], write_sectors: c[6], busy_ms: c[9],
                };
                diskstats::classify(name).map(|d| (name.clone(), d, counters))
            })
            .collect();
        prop_assert_eq!(parsed, want);
    }

    #[test]
    fn rates_take_any_counters(
        before in vec(("(sda|sdb|zd0|zd16|eth0)", [any::<u64>(); 8]), 0..5),
        after in vec(("(sda|sdb|zd0|zd16|eth0)", [any::<u64>(); 8]), 0..5),
        secs in prop_oneof![Just(0.0), Just(-1.0), 0.001..1e6f64],
    ) {
        let disk = |c: &[u64; 8]| diskstats::Counters {
            reads: c[0], read_sectors: c[1], writes: c[2], write_sectors: c[3], busy_ms: c[4],
        };
        let prev: HashMap<String, diskstats::Counters> = before.iter().map(|(n, c)| (n.clone(), disk(c))).collect();
        let now: Vec<_> = after.iter().filter_map(|(n, c)| Some((n.clone(), diskstats::classify(n)?, disk(c)))).collect();
        for d in diskstats::rates(&prev, &now, secs) {
            prop_assert!(d.busy_pct >= 0.0 && d.busy_pct <= 100.0, "{:?}", d);
        }
        let net = |c: &[u64; 8]| net_dev::Counters {
            rx_bytes: c[0], rx_packets: c[1], rx_errors: c[2], rx_drops: c[3],
            tx_bytes: c[4], tx_packets: c[5], tx_errors: c[6], tx_drops: c[7],
        };
        let prev: HashMap<String, net_dev::Counters> = before.iter().map(|(n, c)| (n.clone(), net(c))).collect();
        let now: Vec<_> = after.iter().map(|(n, c)| (n.clone(), wire::NetKind::Physical, net(c))).collect();
        let _ = net_dev::rates(&prev, &now, secs);
    }

    #[test]
    fn hwmon_summarizes_any_chips(chips in vec(chip(), 0..5)) {
        let temps = hwmon::summarize(&chips);
        let cpu_chips = chips.iter().filter(|c| c.name != "nvme" && c.name != "acpitz").count();
        prop_assert!(temps.len() <= cpu_chips + chips.iter().filter(|c| c.name == "nvme").count());
        for t in &temps {
            prop_assert!(!t.celsius.is_nan());
        }
    }

    #[test]
    fn a_coretemp_package_is_reported_in_tenths(id in 0u8..8, millidegrees in -300_000i64..300_000) {
        let s = hwmon::Sensor { index: 1, label: Some(format!("Package id {id}")), millidegrees };
        let temps = hwmon::summarize(&[hwmon::Chip { name: "coretemp".into(), device: None, sensors: vec![s] }]);
        prop_assert_eq!(temps.len(), 1);
        prop_assert_eq!(&temps[0].name, &format!("cpu{id}"));
        prop_assert!((temps[0].celsius * 1000.0 - millidegrees as f64).abs() <= 50.0 + 1e-6, "{:?}", temps[0]);
    }
}
