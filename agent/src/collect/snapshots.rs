//! `zfs list -t snapshot -Hp -o name,used,creation`, summarised per dataset.

use std::collections::BTreeMap;

use wire::{DatasetSnapshots, Snapshot, Snapshots};

use super::ParseError;

pub const ARGS: &[&str] = &["list", "-t", "snapshot", "-Hp", "-o", "name,used,creation"];

pub fn parse(text: &str) -> Result<Snapshots, ParseError> {
    let mut all = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // Dataset names cannot contain tabs, so a tab split is exact (-H).
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, used, creation] = cols[..] else {
            return Err(ParseError::new(format!("expected 3 columns, got {}: {line:?}", cols.len())));
        };
        if !name.contains('@') {
            return Err(ParseError::new(format!("not a snapshot name: {name:?}")));
        }
        let used = used.parse().map_err(|_| ParseError::new(format!("bad used bytes {used:?}")))?;
        let creation = creation.parse().map_err(|_| ParseError::new(format!("bad creation time {creation:?}")))?;
        all.push(Snapshot { name: name.to_string(), used, creation });
    }
    Ok(summarise(all))
}

/// Totals per dataset (sorted by name) and the newest [`Snapshots::LIST_CAP`] snapshots, newest first.
pub fn summarise(mut all: Vec<Snapshot>) -> Snapshots {
    let mut datasets: BTreeMap<&str, DatasetSnapshots> = BTreeMap::new();
    for snap in &all {
        // A name without '@' (parse() rejects them) counts as its own dataset.
        let dataset = snap.name.split_once('@').map_or(snap.name.as_str(), |(d, _)| d);
        let entry = datasets.entry(dataset).or_insert_with(|| DatasetSnapshots {
            dataset: dataset.to_string(),
            oldest: snap.creation,
            newest: snap.creation,
            ..DatasetSnapshots::default()
        });
        entry.count += 1;
        // Saturating: sizes from a broken `zfs` must not panic the agent (found by fuzzing).
        entry.used = entry.used.saturating_add(snap.used);
        entry.oldest = entry.oldest.min(snap.creation);
        entry.newest = entry.newest.max(snap.creation);
    }
    let datasets: Vec<DatasetSnapshots> = datasets.into_values().collect();
    let total = all.len() as u64;
    all.sort_by(|a, b| b.creation.cmp(&a.creation).then_with(|| a.name.cmp(&b.name)));
    let truncated = all.len() > Snapshots::LIST_CAP;
    all.truncate(Snapshots::LIST_CAP);
    Snapshots { total, datasets, recent: all, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOTS: &str = include_str!("../../tests/fixtures/zfs_list_snapshots.txt");

    #[test]
    fn summarises_captured_snapshots_per_dataset() {
        let s = parse(SNAPSHOTS).unwrap();
        assert_eq!(s.total, 9);
        assert!(!s.truncated);
        let names: Vec<&str> = s.datasets.iter().map(|d| d.dataset.as_str()).collect();
        assert_eq!(
            names,
            [
                "rpool/ROOT/pve-1",
                "rpool/data/subvol-733-disk-0",
                "rpool/data/vm-100-disk-0",
                "rpool/data/vm-101-disk-0",
                "tank/backup"
            ]
        );
        assert_eq!(
            s.datasets[2],
            DatasetSnapshots {
                dataset: "rpool/data/vm-100-disk-0".into(),
                count: 4,
                oldest: 1_762_473_602,
                newest: 1_762_689_601,
                used: 523_239_424 + 419_430_400 + 104_857_600,
            }
        );
        assert_eq!(s.recent.len(), 9);
        assert_eq!(s.recent[0].name, "rpool/data/vm-100-disk-0@autosnap_2025-11-09_12:00:01_hourly");
        assert_eq!(s.recent[8].name, "rpool/ROOT/pve-1@before-8to9-upgrade");
        assert_eq!(s.recent[8].used, 1_287_651_328);
    }

    #[test]
    fn the_recent_list_is_capped_at_the_newest() {
        let all: Vec<Snapshot> = (0..Snapshots::LIST_CAP as i64 + 50)
            .map(|i| Snapshot { name: format!("tank/ds@s{i}"), used: 1, creation: 1_700_000_000 + i })
            .collect();
        let s = summarise(all);
        assert_eq!(s.total, 250);
        assert!(s.truncated);
        assert_eq!(s.recent.len(), Snapshots::LIST_CAP);
        assert_eq!(s.recent[0].creation, 1_700_000_249);
        assert_eq!(s.recent.last().unwrap().creation, 1_700_000_050);
        assert_eq!(s.datasets[0].count, 250);
        assert_eq!(s.datasets[0].used, 250);
    }

    #[test]
    fn no_snapshots_is_an_empty_summary() {
        assert_eq!(parse("").unwrap(), Snapshots::default());
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse("rpool@a\t1\n").is_err());
        assert!(parse("rpool\t1\t2\n").is_err());
        assert!(parse("rpool@a\t1.5K\t2\n").is_err());
        assert!(parse("rpool@a\t1\tyesterday\n").is_err());
    }

    #[test]
    fn sizes_that_overflow_saturate() {
        // Found by the property tests (issue 15): the per-dataset sum overflowed.
        let s = parse("tank@a\t18446744073709551615\t1\ntank@b\t5\t2\n").unwrap();
        assert_eq!(s.datasets[0].used, u64::MAX);
    }
}
