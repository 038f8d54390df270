//! Memory and swap from `/proc/meminfo`, defined as Proxmox VE defines them, so the dashboard
//! shows the numbers the Proxmox GUI shows.
//!
//! pve-common `src/PVE/ProcFSTools.pm`, `read_meminfo` (what pve-manager's
//! `GET /nodes/{node}/status` reports as `memory.used` and `swap.used`):
//! `memused = MemTotal - MemAvailable` and `swapused = SwapTotal - SwapFree`. Older pve-common
//! releases used `MemTotal - (MemFree + Buffers + Cached)`; the current one says only the
//! kernel's `MemAvailable` tells how much a new workload can get without swapping. The ZFS ARC
//! is not page cache, so `MemAvailable` leaves it out and it counts as used, as in the GUI.

use super::ParseError;

/// Bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub mem_total: u64,
    pub mem_used: u64,
    pub swap_total: u64,
    pub swap_used: u64,
}

pub fn parse(text: &str) -> Result<Memory, ParseError> {
    let (mut total, mut available, mut swap_total, mut swap_free) = (None, None, None, None);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else { continue };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            "SwapTotal" => &mut swap_total,
            "SwapFree" => &mut swap_free,
            _ => continue,
        };
        *slot = Some(kib(key, rest)?);
    }
    let need = |v: Option<u64>, key: &str| v.ok_or_else(|| ParseError::new(format!("no {key} line")));
    let (total, available) = (need(total, "MemTotal")?, need(available, "MemAvailable")?);
    let (swap_total, swap_free) = (need(swap_total, "SwapTotal")?, need(swap_free, "SwapFree")?);
    Ok(Memory {
        mem_total: total,
        mem_used: total.saturating_sub(available),
        swap_total,
        swap_used: swap_total.saturating_sub(swap_free),
    })
}

/// `   24684100 kB` → bytes.
fn kib(key: &str, rest: &str) -> Result<u64, ParseError> {
    let mut cols = rest.split_whitespace();
    // A value whose bytes do not fit in u64 is as malformed as a missing one (found by fuzzing).
    let value = cols.next().and_then(|v| v.parse::<u64>().ok()).and_then(|v| v.checked_mul(1024));
    match (value, cols.next()) {
        (Some(v), Some("kB")) => Ok(v),
        _ => Err(ParseError::new(format!("bad {key} line {:?}", rest.trim()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = include_str!("../../tests/fixtures/meminfo.txt");

    #[test]
    fn used_is_total_minus_available_as_in_pve() {
        // MemTotal 24684100 kB, MemAvailable 23498076 kB, no swap.
        let m = parse(MEMINFO).unwrap();
        assert_eq!(m.mem_total, 24_684_100 * 1024);
        assert_eq!(m.mem_used, (24_684_100 - 23_498_076) * 1024);
        assert_eq!((m.swap_total, m.swap_used), (0, 0));
    }

    #[test]
    fn swap_used_is_total_minus_free() {
        let text = MEMINFO
            .replace("SwapTotal:             0 kB", "SwapTotal:       8388604 kB")
            .replace("SwapFree:              0 kB", "SwapFree:        8257532 kB");
        let m = parse(&text).unwrap();
        assert_eq!((m.swap_total, m.swap_used), (8_388_604 * 1024, 131_072 * 1024));
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("MemTotal: 10 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n").is_err(), "no MemAvailable");
        assert!(parse("MemTotal: x kB\nMemAvailable: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n").is_err());
        assert!(parse("MemTotal: 10\nMemAvailable: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n").is_err());
    }

    #[test]
    fn a_value_too_large_for_bytes_is_an_error_not_a_panic() {
        // Found by the property tests (issue 15): `v * 1024` overflowed.
        let text = "MemTotal: 18446744073709551615 kB\nMemAvailable: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n";
        assert!(parse(text).is_err());
    }
}
