//! Busy and iowait CPU percentages from two samples of the `cpu` line of `/proc/stat`, and the
//! number of online CPUs (its `cpuN` lines: what pve-common's `read_cpuinfo` counts as
//! `processor` lines of `/proc/cpuinfo`, without reading a second, larger file).

use super::ParseError;

/// Cumulative jiffies of the aggregate `cpu` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// user + nice + system + idle + iowait + irq + softirq + steal. `guest` and `guest_nice` are
    /// left out because the kernel already counts them in `user` and `nice`.
    pub total: u64,
    /// idle + iowait: time the CPU had nothing to run.
    pub idle: u64,
    pub iowait: u64,
    /// Online CPUs: the `cpuN` lines.
    pub cpus: u32,
}

/// Percentages over the interval between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUsage {
    pub busy_pct: f64,
    pub iowait_pct: f64,
}

pub fn parse(text: &str) -> Result<CpuSample, ParseError> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))
        .ok_or_else(|| ParseError::new("no aggregate cpu line"))?;
    let cpus = text
        .lines()
        .filter(|l| l.strip_prefix("cpu").is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())))
        .count();
    let fields = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse::<u64>().map_err(|_| ParseError::new(format!("bad cpu field {f:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    // Kernels since 2.6.11 print at least 8 fields (up to `steal`); older ones are not supported.
    if fields.len() < 8 {
        return Err(ParseError::new(format!("cpu line has {} fields, expected at least 8", fields.len())));
    }
    let (idle, iowait) = (fields[3], fields[4]);
    let cpus = u32::try_from(cpus).unwrap_or(u32::MAX);
    // Counters whose sum overflows are not jiffies (found by fuzzing): an error, not a panic.
    let overflow = || ParseError::new("cpu counters overflow");
    let total = fields[..8].iter().try_fold(0u64, |sum, f| sum.checked_add(*f)).ok_or_else(overflow)?;
    Ok(CpuSample { total, idle: idle.checked_add(iowait).ok_or_else(overflow)?, iowait, cpus })
}

/// The usage between `prev` and `now`; `None` when no time passed or the counters went backwards
/// (a CPU was hot-unplugged), so a bogus value is never reported.
pub fn usage(prev: CpuSample, now: CpuSample) -> Option<CpuUsage> {
    let total = now.total.checked_sub(prev.total).filter(|t| *t > 0)? as f64;
    let idle = now.idle.checked_sub(prev.idle)? as f64;
    let iowait = now.iowait.checked_sub(prev.iowait)? as f64;
    let clamp = |v: f64| v.clamp(0.0, 100.0);
    Some(CpuUsage { busy_pct: clamp((total - idle) / total * 100.0), iowait_pct: clamp(iowait / total * 100.0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = include_str!("../../tests/fixtures/proc_stat_1.txt");
    const SECOND: &str = include_str!("../../tests/fixtures/proc_stat_2.txt");

    #[test]
    fn parses_the_aggregate_line_of_captured_samples() {
        // cpu  63416 0 12785 639756 883 0 160 219 0 0
        let first = parse(FIRST).unwrap();
        assert_eq!(first, CpuSample { total: 717_219, idle: 640_639, iowait: 883, cpus: 2 });
    }

    #[test]
    fn usage_between_captured_samples() {
        // Deltas: user 4, system 2, idle 394, nothing else: 6 busy jiffies of 400.
        let u = usage(parse(FIRST).unwrap(), parse(SECOND).unwrap()).unwrap();
        assert!((u.busy_pct - 1.5).abs() < 1e-9, "{u:?}");
        assert_eq!(u.iowait_pct, 0.0);
    }

    #[test]
    fn iowait_counts_as_idle_but_is_reported() {
        let a = parse("cpu  100 0 100 700 100 0 0 0 0 0\n").unwrap();
        let b = parse("cpu  150 0 150 800 300 0 0 0 0 0\n").unwrap();
        let u = usage(a, b).unwrap();
        assert!((u.busy_pct - 25.0).abs() < 1e-9, "{u:?}");
        assert!((u.iowait_pct - 50.0).abs() < 1e-9, "{u:?}");
    }

    #[test]
    fn no_elapsed_time_or_backwards_counters_give_none() {
        let a = parse(FIRST).unwrap();
        assert_eq!(usage(a, a), None);
        assert_eq!(usage(parse(SECOND).unwrap(), a), None);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("cpu0 1 2 3 4 5 6 7 8\n").is_err());
        assert!(parse("cpu  1 2 3\n").is_err());
        assert!(parse("cpu  1 2 x 4 5 6 7 8\n").is_err());
    }

    #[test]
    fn counters_whose_sum_overflows_are_an_error_not_a_panic() {
        // Found by the property tests (issue 15): the sum of the fields overflowed.
        assert!(parse("cpu  18446744073709551615 1 0 0 0 0 0 0\n").is_err());
        assert!(parse("cpu  0 0 0 18446744073709551615 1 0 0 0\n").is_err(), "idle + iowait");
    }
}
