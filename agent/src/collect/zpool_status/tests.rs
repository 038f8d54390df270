use wire::{Pool, PoolState, Scan, ScanState, Vdev};

use super::text::{parse_ctime, parse_scan};
use super::{json, text};

const HEALTHY: &str = include_str!("../../../tests/fixtures/zpool_status_healthy.txt");
const RESILVER: &str = include_str!("../../../tests/fixtures/zpool_status_resilver_logs_cache.txt");
const FAULTED: &str = include_str!("../../../tests/fixtures/zpool_status_faulted.txt");
const DEGRADED_SCRUB: &str = include_str!("../../../tests/fixtures/zpool_status_degraded_scrub.txt");
const DEGRADED_MIRROR: &str = include_str!("../../../tests/fixtures/zpool_status_degraded_mirror.txt");
const DEGRADED_MIRROR_JSON: &str = include_str!("../../../tests/fixtures/zpool_status_degraded_mirror.json");
const MANPAGE_JSON: &str = include_str!("../../../tests/fixtures/zpool_status_manpage.json");

fn vdev(name: &str, depth: u8, state: &str, errors: [u64; 3]) -> Vdev {
    Vdev {
        name: name.into(),
        depth,
        state: state.into(),
        read_errors: errors[0],
        write_errors: errors[1],
        checksum_errors: errors[2],
    }
}

/// `(name, depth, state)` of every vdev, for compact tree assertions.
fn tree(pool: &Pool) -> Vec<(&str, u8, &str)> {
    pool.vdevs.iter().map(|v| (v.name.as_str(), v.depth, v.state.as_str())).collect()
}

#[test]
fn healthy_raidz2_after_a_resilver() {
    let pools = text::parse(HEALTHY).unwrap();
    assert_eq!(pools.len(), 1);
    let pool = &pools[0];
    assert_eq!((pool.name.as_str(), pool.state.as_str()), ("lwastor04", "ONLINE"));
    assert_eq!((pool.status.as_deref(), pool.action.as_deref()), (None, None));
    assert_eq!(
        pool.scan,
        Some(Scan {
            function: "RESILVER".into(),
            state: "FINISHED".into(),
            start: Some(1_702_920_094 - 64),
            end: Some(1_702_920_094),
            errors: 0,
        })
    );
    assert_eq!(pool.vdevs.len(), 13);
    assert_eq!(pool.vdevs[0], vdev("raidz2-0", 0, "ONLINE", [0, 0, 0]));
    assert!(pool.vdevs[1..].iter().all(|v| v.depth == 1 && v.state == PoolState::Online));
    assert_eq!(pool.vdevs[12].name, "wwn-0x5000cca2b6659e30");
    assert_eq!(pool.error_count, 0);
    assert_eq!(pool.size, None, "sizes come from zpool list");
}

#[test]
fn resilver_in_progress_with_logs_and_cache_sections() {
    let pool = &text::parse(RESILVER).unwrap()[0];
    assert_eq!(pool.state, PoolState::Online);
    assert_eq!(
        pool.status.as_deref(),
        Some("One or more devices is currently being resilvered. The pool will continue to function, possibly in a degraded state.")
    );
    assert_eq!(pool.action.as_deref(), Some("Wait for the resilver to complete."));
    let scan = pool.scan.as_ref().unwrap();
    assert_eq!((scan.function.as_str(), scan.state.as_str()), ("RESILVER", "SCANNING"));
    assert_eq!((scan.start, scan.end), (Some(1_428_535_418), None));
    assert_eq!(
        tree(pool),
        [
            ("mirror-0", 0, "ONLINE"),
            ("sdc", 1, "ONLINE"),
            ("sdd", 1, "ONLINE"),
            ("logs", 0, ""),
            ("mirror-1", 1, "ONLINE"),
            ("sda3", 2, "ONLINE"),
            ("sdb3", 2, "ONLINE"),
            ("cache", 0, ""),
            ("sda4", 1, "ONLINE"),
            ("sdb4", 1, "ONLINE"),
        ]
    );
}

#[test]
fn faulted_mirror_member_keeps_its_error_counters() {
    let pool = &text::parse(FAULTED).unwrap()[0];
    assert_eq!(pool.state, PoolState::Online);
    assert_eq!(
        pool.action.as_deref(),
        Some("Replace the faulted device, or use 'zpool clear' to mark the device repaired.")
    );
    assert_eq!(pool.vdevs[2], vdev("ata-TOSHIBA_MG08ACA16TE_64M0A0xxxxxx", 1, "FAULTED", [12, 753, 83]));
    assert_eq!(pool.scan.as_ref().map(|s| (s.start, s.end)), Some((Some(1_752_534_619), Some(1_752_534_620))));
}

#[test]
fn degraded_mirror_with_an_unavailable_disk_during_a_scrub() {
    let pool = &text::parse(DEGRADED_SCRUB).unwrap()[0];
    assert_eq!((pool.name.as_str(), pool.state.as_str()), ("rpool", "DEGRADED"));
    assert!(pool.status.as_deref().unwrap().starts_with("One or more devices could not be used because"));
    assert!(pool.status.as_deref().unwrap().ends_with("functioning in a degraded state."));
    let scan = pool.scan.as_ref().unwrap();
    assert_eq!((scan.function.as_str(), scan.state.as_str(), scan.start), ("SCRUB", "SCANNING", Some(1_628_030_434)));
    assert_eq!(
        pool.vdevs,
        [
            vdev("mirror-0", 0, "DEGRADED", [0, 0, 0]),
            vdev("ata-KINGSTON_SV300S37A60G_50026B774C0A1E2F-part3", 1, "ONLINE", [14, 0, 27]),
            vdev("2748102309263418421", 1, "UNAVAIL", [0, 0, 104]),
        ]
    );
    assert_eq!(pool.error_count, 2);
}

#[test]
fn several_pools_in_one_output() {
    let both = format!("{HEALTHY}\n{DEGRADED_SCRUB}");
    let pools = text::parse(&both).unwrap();
    let names: Vec<(&str, &str)> = pools.iter().map(|p| (p.name.as_str(), p.state.as_str())).collect();
    assert_eq!(names, [("lwastor04", "ONLINE"), ("rpool", "DEGRADED")]);
    assert_eq!(pools[1].vdevs.len(), 3);
}

#[test]
fn json_degraded_mirror() {
    let pools = json::parse(DEGRADED_MIRROR_JSON).unwrap();
    assert_eq!(pools.len(), 1);
    let pool = &pools[0];
    assert_eq!((pool.name.as_str(), pool.state.as_str()), ("tank", "DEGRADED"));
    assert_eq!(
        pool.scan,
        Some(Scan {
            function: "SCRUB".into(),
            state: "SCANNING".into(),
            start: Some(1_767_782_105),
            end: None,
            errors: 0
        })
    );
    assert_eq!(pool.error_count, 2);
    assert_eq!(pool.vdevs[0], vdev("mirror-0", 0, "DEGRADED", [0, 0, 0]));
    assert_eq!(pool.vdevs[2], vdev("/home/hutter/json/file2", 1, "FAULTED", [0, 0, 7]));
    assert_eq!(
        tree(pool),
        [
            ("mirror-0", 0, "DEGRADED"),
            ("/home/hutter/json/file1", 1, "ONLINE"),
            ("/home/hutter/json/file2", 1, "FAULTED"),
            ("logs", 0, ""),
            ("nvme0n1p4", 1, "ONLINE"),
            ("cache", 0, ""),
            ("nvme0n1p5", 1, "ONLINE"),
            ("spares", 0, ""),
            ("sde", 1, "AVAIL"),
        ]
    );
}

#[test]
fn json_and_text_forms_of_the_same_pool_agree() {
    let from_text = &text::parse(DEGRADED_MIRROR).unwrap()[0];
    let from_json = &json::parse(DEGRADED_MIRROR_JSON).unwrap()[0];
    assert_eq!(from_text.status, from_json.status);
    assert_eq!(from_text.action, from_json.action);
    assert_eq!(from_text.state, from_json.state);
    assert_eq!(tree(from_text), tree(from_json)[..3]);
    // The quoted text has no scan: or errors: line.
    assert_eq!((from_text.scan.as_ref(), from_text.error_count), (None, 0));
}

#[test]
fn json_with_string_numbers_and_allocation_classes() {
    let pool = &json::parse(MANPAGE_JSON).unwrap()[0];
    assert_eq!((pool.name.as_str(), pool.state.as_str()), ("tank", "ONLINE"));
    assert_eq!(pool.status, None, "the pre-release \"OK\" status code is no message");
    assert_eq!(pool.scan, None);
    assert_eq!(
        tree(pool),
        [
            ("raidz1-0", 0, "HEALTHY"),
            ("ca1eb824-c371-491d-ac13-37637e35c683", 1, "HEALTHY"),
            ("97cd98fb-8fb8-4ac4-bc84-bd8950a7ace7", 1, "HEALTHY"),
            ("e9ddba5f-f948-4734-a472-cb8aa5f0ff65", 1, "HEALTHY"),
            ("dedup", 0, ""),
            ("mirror-2", 1, "HEALTHY"),
            ("db017360-d8e9-4163-961b-144ca75293a3", 2, "HEALTHY"),
            ("952c3baf-b08a-4a8c-b7fa-33a07af5fe6f", 2, "HEALTHY"),
            ("special", 0, ""),
            ("25d418f8-92bd-4327-b59f-7ef5d5f50d81", 1, "HEALTHY"),
        ]
    );
}

#[test]
fn scan_line_forms() {
    let finished = parse_scan("scrub repaired 0B in 00:01:23 with 0 errors on Sun Nov  9 00:25:24 2025").unwrap();
    assert_eq!(
        finished,
        Scan {
            function: "SCRUB".into(),
            state: "FINISHED".into(),
            start: Some(1_762_647_924 - 83),
            end: Some(1_762_647_924),
            errors: 0
        }
    );
    let with_errors =
        parse_scan("scrub repaired 0B in 05:17:38 with 1014870 errors on Sat Feb  4 23:21:52 2023").unwrap();
    assert_eq!((with_errors.errors, with_errors.start), (1_014_870, Some(1_675_552_912 - 19_058)));
    let days = parse_scan("resilvered 10.9T in 1 days 11:05:07 with 0 errors on Mon Jan 10 11:34:02 2022").unwrap();
    assert_eq!(days.end.zip(days.start).map(|(e, s)| e - s), Some(86_400 + 11 * 3600 + 5 * 60 + 7));
    let old = parse_scan("scrub repaired 0 in 1h18m with 0 errors on Tue Nov  6 22:47:38 2012").unwrap();
    assert_eq!(old.end.zip(old.start).map(|(e, s)| e - s), Some(78 * 60));
    let canceled = parse_scan("scrub canceled on Mon Jul 16 16:30:35 2018").unwrap();
    assert_eq!((canceled.state.as_str(), canceled.start.is_none(), canceled.end.is_some()), ("CANCELED", true, true));
    let paused = parse_scan("scrub paused since Mon Jul 16 16:30:35 2018").unwrap();
    assert_eq!(paused.state, ScanState::Scanning);
    assert_eq!(parse_scan("none requested"), None);
    assert_eq!(parse_scan("something new in OpenZFS 3.0"), None);
}

#[test]
fn ctime_parsing_is_exact_utc() {
    assert_eq!(parse_ctime("Thu Feb 29 12:00:00 2024"), Some(1_709_208_000));
    assert_eq!(parse_ctime("Thu Jan  1 00:00:00 1970"), Some(0));
    assert_eq!(parse_ctime("Sun Nov  9 00:25:24 2025"), Some(1_762_647_924));
    assert_eq!(parse_ctime("Sun Foo  9 00:25:24 2025"), None);
    assert_eq!(parse_ctime("Sun Nov 99 00:25:24 2025"), None);
    assert_eq!(parse_ctime("Sun Nov  9 00:25 2025"), None);
}

#[test]
fn no_pools_is_an_empty_list() {
    assert_eq!(text::parse("no pools available\n").unwrap(), vec![]);
    assert_eq!(text::parse("").unwrap(), vec![]);
    assert_eq!(json::parse(r#"{"output_version":{},"pools":{}}"#).unwrap(), vec![]);
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    assert!(text::parse("usage:\n\tstatus [-DegiLpPstvx] ...\n").is_err());
    assert!(text::parse("  pool: tank\nconfig:\n\n\tNAME STATE\n").is_err(), "no state line");
    assert!(text::parse(" state: ONLINE\n").is_err(), "no pool line");
    assert!(text::parse("  pool: tank\n state: ONLINE\nconfig:\n\n\tbogus header\n").is_err());
    assert!(text::parse("  pool: tank\n state: ONLINE\nconfig:\n\n\t\tNAME STATE\n\tsda ONLINE 0 0 0\n").is_err());
    assert!(
        text::parse("  pool: tank\n state: ONLINE\nconfig:\n\n\tNAME STATE\n\ttank ONLINE\n\t sda ONLINE\n").is_err()
    );
    // Truncated output of a real fixture must not panic, wherever it is cut.
    for cut in 0..DEGRADED_SCRUB.len() {
        if DEGRADED_SCRUB.is_char_boundary(cut) {
            let _ = text::parse(&DEGRADED_SCRUB[..cut]);
        }
    }
    assert!(json::parse("").is_err());
    assert!(json::parse("{\"pools\":{\"tank\":{\"name\":\"tank\"}}}").is_err(), "no state");
    assert!(json::parse("{\"pools\":[]}").is_err());
    assert!(json::parse(&DEGRADED_MIRROR_JSON[..200]).is_err());
}

#[test]
fn odd_counts_durations_and_years_are_refused_not_panics() {
    // Found by the property tests (issue 15): each of these panicked.
    let config = "  pool: tank\n state: ONLINE\nconfig:\n\n\tNAME  STATE  READ WRITE CKSUM\n\ttank  ONLINE 0 0 0\n\t  sda ONLINE 1\u{10ADC} 0 0\n";
    let pools = text::parse(config).unwrap();
    assert_eq!(pools[0].vdevs[0].read_errors, 0, "a count ending in a multi-byte character");
    let line = "scrub repaired 0B in 99999999999999h0m with 0 errors on Sun Nov  9 12:00:01 2025";
    assert_eq!(parse_scan(line).unwrap().start, None, "an hour count that overflowed i64");
    assert_eq!(parse_ctime("Sun Nov  9 12:00:01 9223372036854775807"), None, "a year that overflowed");
    assert_eq!(parse_ctime("Sun Nov  9 12:00:01 2025"), Some(1_762_689_601));
}
