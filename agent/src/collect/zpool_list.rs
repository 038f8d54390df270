//! `zpool list -Hp`: pool sizes, fragmentation, capacity and dedup ratio, merged into the pools
//! of `zpool status` by name.

use wire::{Pool, PoolState};

use super::ParseError;

pub const ARGS: &[&str] = &["list", "-Hp", "-o", "name,size,alloc,free,frag,cap,dedup,health"];

/// One tab-separated row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListRow {
    pub name: String,
    pub size: Option<u64>,
    pub alloc: Option<u64>,
    pub free: Option<u64>,
    pub frag_pct: Option<f64>,
    pub cap_pct: Option<f64>,
    pub dedup_ratio: Option<f64>,
    pub health: PoolState,
}

pub fn parse(text: &str) -> Result<Vec<ListRow>, ParseError> {
    let mut rows = Vec::new();
    // zpool prints this to stdout, even with -H, when there is no pool.
    for line in text.lines().filter(|l| !l.trim().is_empty() && l.trim() != "no pools available") {
        // -H separates columns by one tab; split on any whitespace in case a wrapper changed that.
        let cols: Vec<&str> =
            if line.contains('\t') { line.split('\t').collect() } else { line.split_whitespace().collect() };
        let [name, size, alloc, free, frag, cap, dedup, health] = cols[..] else {
            return Err(ParseError::new(format!("expected 8 columns, got {}: {:?}", cols.len(), line)));
        };
        rows.push(ListRow {
            name: name.to_string(),
            size: bytes(size)?,
            alloc: bytes(alloc)?,
            free: bytes(free)?,
            frag_pct: number(frag, '%')?,
            cap_pct: number(cap, '%')?,
            dedup_ratio: number(dedup, 'x')?,
            health: health.into(),
        });
    }
    Ok(rows)
}

/// A byte count; `-` (not applicable) is `None`.
fn bytes(s: &str) -> Result<Option<u64>, ParseError> {
    match s.trim() {
        "-" | "" => Ok(None),
        s => s.parse().map(Some).map_err(|_| ParseError::new(format!("bad byte count {s:?}"))),
    }
}

/// A number that may carry a unit suffix when `-p` was ignored (`12%`, `1.00x`); `-` is `None`.
fn number(s: &str, suffix: char) -> Result<Option<f64>, ParseError> {
    match s.trim() {
        "-" | "" => Ok(None),
        s => s
            .trim_end_matches(suffix)
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| ParseError::new(format!("bad number {s:?}"))),
    }
}

/// Copies sizes into the pools of the same name. A pool only `zpool list` knows (it appeared
/// between the two commands) is added with its health as state and no vdevs.
pub fn merge(pools: &mut Vec<Pool>, rows: Vec<ListRow>) {
    for row in rows {
        let index = match pools.iter().position(|p| p.name == row.name) {
            Some(i) => i,
            None => {
                pools.push(Pool { name: row.name.clone(), state: row.health.clone(), ..Pool::default() });
                pools.len() - 1
            }
        };
        let pool = &mut pools[index];
        pool.size = row.size;
        pool.alloc = row.alloc;
        pool.free = row.free;
        pool.frag_pct = row.frag_pct;
        pool.cap_pct = row.cap_pct;
        pool.dedup_ratio = row.dedup_ratio;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = include_str!("../../tests/fixtures/zpool_list.txt");

    #[test]
    fn parses_sizes_and_lenient_percentages() {
        let rows = parse(LIST).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[2],
            ListRow {
                name: "store".into(),
                size: Some(9_981_503_995_904),
                alloc: Some(3_046_188_658_688),
                free: Some(6_935_315_337_216),
                frag_pct: Some(9.0),
                cap_pct: Some(30.0),
                dedup_ratio: Some(1.0),
                health: "DEGRADED".into(),
            }
        );
        assert_eq!(rows[1].name, "rpool");
        assert_eq!(rows[1].frag_pct, None);
        assert_eq!(rows[1].dedup_ratio, Some(1.0));
        assert_eq!(rows[1].cap_pct, Some(36.0));
    }

    #[test]
    fn accepts_human_suffixes() {
        let rows = parse("tank\t100\t50\t50\t12%\t50%\t1.25x\tONLINE\n").unwrap();
        assert_eq!((rows[0].frag_pct, rows[0].cap_pct, rows[0].dedup_ratio), (Some(12.0), Some(50.0), Some(1.25)));
    }

    #[test]
    fn merges_by_name_and_keeps_unknown_pools() {
        let mut pools = vec![Pool { name: "rpool".into(), state: "DEGRADED".into(), ..Pool::default() }];
        merge(&mut pools, parse(LIST).unwrap());
        assert_eq!(pools.len(), 3);
        assert_eq!(pools[0].name, "rpool");
        assert_eq!(pools[0].state, PoolState::Degraded);
        assert_eq!(pools[0].size, Some(59_055_800_320));
        assert_eq!(pools[0].alloc, Some(21_474_836_480));
        assert_eq!(pools[1].name, "lwastor04");
        assert_eq!(pools[1].state, PoolState::Online);
        assert!(pools[1].vdevs.is_empty());
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse("pool: tank\n").is_err());
        assert!(parse("tank\t100\t50\n").is_err());
        assert!(parse("tank\tbig\t50\t50\t1\t50\t1.00\tONLINE\n").is_err());
        assert!(parse("tank\t100\t50\t50\t1\t50\tlots\tONLINE\n").is_err());
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("no pools available\n").unwrap(), vec![]);
    }
}
